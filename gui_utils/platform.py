"""Choose the GL platform before PyOpenGL and imgui-bundle are imported: OSMesa offscreen for
--headless."""
import os


def configure(headless: bool):
    if headless:
        os.environ['PYOPENGL_PLATFORM'] = 'osmesa'
        # Importing imgui-bundle 1.5.2 (the one for Python 3.10) points pip's glfw at its own
        # GLFW 3.3, which has no null platform; glfw loaded first keeps its bundled GLFW 3.4.
        import glfw  # noqa: F401


def display_problem(headless: bool):
    """Why a window cannot open here, or None."""
    if headless:
        return None
    if not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
        return 'no display found (DISPLAY is not set): run with --headless to render offscreen'
    return None
