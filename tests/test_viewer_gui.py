"""The viewer in real windows: offscreen (--headless) and under Xvfb with simulated input."""
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, frames


def run_visualizer(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, 'visualizer.py', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def viewport_pixels(path, pane_fraction=0.4):
    image = np.asarray(Image.open(path).convert('RGB'))
    return image, image[:, int(image.shape[1] * pane_fraction):]


def test_headless_screenshot(tmp_path, fixture_pkl, user_dirs):
    shot = tmp_path / 'shot.png'
    r = run_visualizer(fixture_pkl, '--headless', '--screenshot', shot, '--frames', 3,
                       '--nrr', 16, '--width', 1000, '--height', 600, '--render-type', 'image_depth')
    assert r.returncode == 0, r.stderr
    image, view = viewport_pixels(shot)
    assert image.shape == (600, 1000, 3)
    assert view.std() > 10          # the depth map is drawn, not an empty viewport


def test_no_display_is_one_line(monkeypatch):
    env = {k: v for k, v in __import__('os').environ.items() if k not in ('DISPLAY',
                                                                           'WAYLAND_DISPLAY')}
    r = run_visualizer('--frames', 1, env=env, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == ('error: no display found (DISPLAY is not set): run with '
                                '--headless to render offscreen')


def test_start_prints_no_opengl_notice(user_dirs):
    """PyOpenGL-accelerate is installed, so PyOpenGL has nothing to say at INFO level."""
    r = run_visualizer('--headless', '--frames', 1, '--width', 400, '--height', 300, timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'OpenGL_accelerate' not in r.stderr


def test_bad_pickle_keeps_window_alive_and_fails_the_headless_run(tmp_path, user_dirs):
    """The window survives a bad pickle; a scripted run says in its exit status and one
    stderr line that it could not make the view, and writes no screenshot of the error."""
    bad = tmp_path / 'broken.pkl'
    bad.write_bytes(b'\x80\x04garbage')
    shot = tmp_path / 'shot.png'
    r = run_visualizer(bad, '--headless', '--screenshot', shot, '--frames', 3, '--width', 900,
                       '--height', 500)
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    assert r.stderr.splitlines()[-1].startswith(f'error: {bad}: ')
    assert not shot.exists() and not list(tmp_path.glob('.*'))


def xdotool(*args):
    subprocess.run(['xdotool', *map(str, args)], check=True, timeout=10)


def test_drag_orbits_and_right_drag_moves_latent(viewer):
    viz = viewer
    frames(viz, 5)
    x0, y0 = viz.pane_w + 300, 300
    yaw, pitch, seed_x = viz.pose_widget.yaw, viz.pose_widget.pitch, viz.latent_widget.x
    xdotool('mousemove', x0, y0)
    frames(viz)
    xdotool('mousedown', 1)
    frames(viz)
    for step in range(1, 6):
        xdotool('mousemove', x0 + 20 * step, y0 + 10 * step)
        frames(viz, 2)
    assert viz.viewport.interacting
    xdotool('mouseup', 1)
    frames(viz)
    assert viz.pose_widget.yaw < yaw and viz.pose_widget.pitch < pitch
    assert viz.latent_widget.x == seed_x
    xdotool('mousedown', 3)
    frames(viz)
    xdotool('mousemove', x0 + 200, y0)
    frames(viz, 3)
    xdotool('mouseup', 3)
    frames(viz)
    assert viz.latent_widget.x > seed_x


def test_gui_keeps_drawing_while_a_frame_renders(viewer):
    """A renderer that never finishes must not stop the GUI loop (no timing involved)."""
    import threading
    viz = viewer
    from viz.render_worker import RenderWorker
    release = threading.Event()

    class Stuck:
        def render(self, args, should_abort, on_progress):
            release.wait(timeout=30)
            from eg3d_runtime.frames.frame_renderer import RenderResult
            return RenderResult(args=args)
    viz.worker.close()
    viz.worker = RenderWorker(Stuck())
    frames(viz, 2)
    assert viz.worker.busy
    for _ in range(20):
        viz.pose_widget.yaw += 0.05
        viz.draw_frame()
    assert viz.worker.busy
    release.set()


def test_progressive_refinement(viewer):
    viz = viewer
    assert viz.settle(timeout=300)
    assert viz.viewport.result.quality == 'full'
    viz.pose_widget.yaw += 0.2
    viz.draw_frame()
    assert viz.worker._last_submitted.preview          # moving: a preview is requested
    assert viz.settle(timeout=300)
    assert viz.viewport.result.quality == 'full' and viz.viewport.result.args.yaw == \
        pytest.approx(viz.pose_widget.yaw)


def test_escape_closes(viewer):
    import glfw
    viz = viewer
    frames(viz, 3)
    xdotool('key', '--window', glfw.get_x11_window(viz.window.handle), 'Escape')
    frames(viz, 3)
    assert viz.window.should_close


def test_typing_a_seed_changes_the_image(viewer):
    viz = viewer
    assert viz.settle(timeout=300)
    before = viz.viewport.last_image.copy()
    pos = viz.latent_widget.seed_field_pos
    xdotool('mousemove', int(pos.x) + 10, int(pos.y) + 5)
    frames(viz)
    xdotool('click', 1)
    frames(viz)
    xdotool('key', 'ctrl+a')
    frames(viz)
    xdotool('type', '7')
    frames(viz)
    xdotool('key', 'Return')
    frames(viz)
    assert viz.latent_widget.seed == 7
    assert viz.settle(timeout=300)
    assert np.abs(viz.viewport.last_image.astype(int) - before).mean() > 1


def test_screenshot_matches_the_runtime_render(viewer, tmp_path):
    from eg3d_runtime.frames.frame_renderer import FrameRenderer
    viz = viewer
    viz.render_widget.render_type = 'image_depth'
    assert viz.settle(timeout=300)
    shot = tmp_path / 'window.png'
    viz.draw_frame(screenshot=shot)
    expected = FrameRenderer('cpu').render(viz.render_args()).image.numpy()
    assert np.array_equal(viz.viewport.last_image, expected)
    x0, y0, x1, y1 = viz.viewport.image_rect
    window = np.asarray(Image.open(shot).convert('RGB'))
    h, w = expected.shape[:2]
    rows = (y0 + (np.arange(h) + 0.5) * (y1 - y0) / h).astype(int)    # texel centres on screen
    cols = (x0 + (np.arange(w) + 0.5) * (x1 - x0) / w).astype(int)
    drawn = window[rows][:, cols].astype(int)
    assert np.abs(drawn - expected).mean() < 3
    assert window.std() > 10


def test_corrupt_pickle_in_the_window_keeps_the_previous_network(viewer, tmp_path):
    viz = viewer
    assert viz.settle(timeout=300)
    good = viz.pickle_widget.pkl
    bad = tmp_path / 'corrupt.pkl'
    bad.write_bytes(b'\x80\x04\x95garbage')
    viz.pickle_widget.load(str(bad))
    for _ in range(200):
        viz.draw_frame()
        if viz.pickle_widget.error:
            break
        time.sleep(0.02)
    assert viz.pickle_widget.error.startswith(f'{bad}: ')
    assert viz.pickle_widget.pkl == good
    assert viz.settle(timeout=300) and viz.viewport.result.error is None
    assert not viz.window.should_close
