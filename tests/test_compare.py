"""Compare mode under Xvfb: panels, shared camera, difference view, capture."""
import numpy as np
import pytest

from viz.compare import Panel, difference_heatmap

from conftest import frames, record_orbit


@pytest.fixture
def compare_viewer(xvfb_display, fixture_pkl, user_dirs, tmp_path):
    import glfw

    from gui_utils import platform
    platform.configure(False)
    from viz.app import Visualizer
    from visualizer import build_parser
    other = tmp_path / 'other.pkl'
    other.write_bytes(fixture_pkl.read_bytes())
    options = build_parser().parse_args([str(fixture_pkl), str(other), '--compare', '--nrr', '16',
                                         '--render-type', 'image_raw', '--width', '1200',
                                         '--height', '700'])
    viz = Visualizer(options)
    viz.render_widget.depth_mult = viz.render_widget.importance_mult = 0.25
    glfw.set_window_pos(viz.window.handle, 0, 0)
    yield viz
    viz.close()


def test_two_pickles_in_two_panels(compare_viewer, fixture_pkl):
    viz = compare_viewer
    assert viz.comparing
    assert [p.name for p in viz.compare.panels] == ['ffhq-micro.pkl', 'other.pkl']
    assert len(viz.compare.workers) == 2
    assert viz.settle(timeout=300)
    assert set(viz.compare.images) == {0, 1}


def test_a_drag_moves_every_panel_identically(compare_viewer):
    import subprocess
    viz = compare_viewer
    frames(viz, 3)
    x0, y0 = viz.pane_w + 200, 300
    for args in (['mousemove', x0, y0], ['mousedown', 1], ['mousemove', x0 + 120, y0 + 30],
                 ['mousemove', x0 + 150, y0 + 40], ['mouseup', 1]):
        subprocess.run(['xdotool', *map(str, args)], check=True, timeout=10)
        frames(viz, 2)
    assert viz.pose_widget.yaw < 0
    assert viz.settle(timeout=300)
    yaws = {viz.compare.results[i].args.yaw for i in range(2)}
    pitches = {viz.compare.results[i].args.pitch for i in range(2)}
    assert yaws == {viz.pose_widget.yaw} and pitches == {viz.pose_widget.pitch}


def test_difference_of_a_network_with_itself_is_zero(compare_viewer, fixture_pkl):
    viz = compare_viewer
    viz.compare_widget._edit([Panel(str(fixture_pkl)), Panel(str(fixture_pkl))])
    viz.compare_widget.show_difference = True
    assert viz.settle(timeout=300)
    assert len(viz.compare.workers) == 1                 # one network: one worker, one cache
    heat = viz.compare.difference_image()
    assert heat is not None and heat.max() == 0
    assert difference_heatmap(np.zeros((4, 4, 3), np.uint8),
                              np.full((4, 4, 3), 255, np.uint8)).min() == 255


def test_same_network_at_two_resolutions_and_capture(compare_viewer, fixture_pkl, tmp_path):
    from PIL import Image
    viz = compare_viewer
    viz.compare_widget.same_network_two_resolutions(str(fixture_pkl))
    viz.compare_widget.wipe_on = True
    assert viz.settle(timeout=300)
    assert [viz.compare.results[i].nrr for i in range(2)] == [64, 128]
    viz.capture_widget.directory = str(tmp_path / 'caps')
    viz.capture_widget.save_image(viz.current_image())
    image = Image.open(tmp_path / 'caps' / '00001.png')
    assert image.size == (64 + 128, 128 + 24)          # both panels, under a label banner
    banner = np.asarray(image)[:24]
    assert banner[:, :64].max() > 200 and banner[:, 64:].max() > 200     # labels are drawn


def test_orbit_video_of_all_panels(compare_viewer, tmp_path, monkeypatch):
    from PIL import Image
    compare_viewer.render_widget.render_type = 'image_depth'   # frames differ clearly per pose
    video = Image.open(record_orbit(compare_viewer, tmp_path / 'caps', monkeypatch, 2))
    assert video.n_frames == 2 and video.size == (16 + 16, 16 + 24)
