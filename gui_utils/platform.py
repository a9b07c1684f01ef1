"""Choose the GL platform before PyOpenGL is imported: OSMesa offscreen for --headless."""
import os


def configure(headless: bool):
    if headless:
        os.environ['PYOPENGL_PLATFORM'] = 'osmesa'


def display_problem(headless: bool):
    """Why a window cannot open here, or None."""
    if headless:
        return None
    if not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
        return 'no display found (DISPLAY is not set): run with --headless to render offscreen'
    return None
