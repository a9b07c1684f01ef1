"""Every widget changes what is rendered (or what is saved)."""
import numpy as np
import pytest
from PIL import Image

from eg3d_runtime.frames.frame_renderer import FrameRenderer

from conftest import frames, record_orbit


@pytest.fixture(scope='module')
def engine():
    return FrameRenderer('cpu')


def render(engine, viz):
    result = engine.render(viz.render_args())
    assert result.error is None, result.error
    return result


def pick_pivot(viz, name, manual=None):
    from viz.pose_widget import PIVOTS
    viz.pose_widget.pivot_choice = list(PIVOTS).index(name)
    if manual:
        viz.pose_widget.manual_pivot = manual


MUTATIONS = {
    'pose': lambda viz: setattr(viz.pose_widget, 'yaw', 0.6),
    'look-at': lambda viz: pick_pivot(viz, 'Manual', [0.15, 0.1, 0.2]),
    'fov': lambda viz: setattr(viz.fov_widget, 'fov', 30.0),
    'cond pose': lambda viz: setattr(viz.cond_pose_widget, 'yaw', 0.8),
    'seed': lambda viz: viz.latent_widget.set_seed(5),
    'seed grid blend': lambda viz: setattr(viz.latent_widget, 'x', 0.5),
    'stylemix': lambda viz: viz.stylemix_widget.enabled.__setitem__(slice(0, 7), [True] * 7),
    'psi': lambda viz: setattr(viz.trunc_widget, 'psi', -0.5),
    'cutoff': lambda viz: setattr(viz.trunc_widget, 'cutoff', 2),
    'render type depth': lambda viz: setattr(viz.render_widget, 'render_type', 'image_depth'),
    'render type normals': lambda viz: setattr(viz.render_widget, 'render_type', 'normals'),
    'depth samples': lambda viz: setattr(viz.render_widget, 'depth_mult', 0.25),
    'importance samples': lambda viz: setattr(viz.render_widget, 'importance_mult', 0.25),
}


@pytest.mark.parametrize('name', list(MUTATIONS))
def test_widget_changes_the_frame(viewer, engine, name):
    viz = viewer
    viz.render_widget.render_type = 'image_raw'
    frames(viz, 2)
    before = render(engine, viz).image.numpy()
    MUTATIONS[name](viz)
    frames(viz, 2)
    after = render(engine, viz).image.numpy()
    assert not np.array_equal(after, before), name


def test_neural_rendering_resolution(viewer, engine):
    viz = viewer
    viz.render_widget.render_type = 'image_raw'
    viz.render_widget.nrr = 32
    assert render(engine, viz).image.shape == (32, 32, 3)
    viz.render_widget.nrr = None                 # back to the network's own (64)
    assert render(engine, viz).nrr == 64


def test_look_at_presets(viewer):
    viz = viewer
    assert viz.render_args().lookat is None                    # Auto: the network's pivot
    pick_pivot(viz, 'AFHQ (0, 0, -0.06)')                      # the trained pivot, not (0,0,0)
    assert viz.render_args().lookat == (0.0, 0.0, -0.06)


def test_noise_widget_selects_the_noise_mode(viewer):
    viz = viewer
    assert viz.render_args().noise_mode == 'const'
    viz.trunc_widget.noise_seed = 3
    assert viz.render_args().noise_mode == 'random'
    viz.trunc_widget.noise = False
    assert viz.render_args().noise_mode == 'none'


def test_backbone_cache_toggle(viewer, engine):
    viz = viewer
    viz.render_widget.render_type = 'image_raw'
    render(engine, viz)
    viz.pose_widget.yaw = 0.3
    assert render(engine, viz).backbone_reused
    viz.render_widget.cache_backbone = False
    viz.pose_widget.yaw = 0.4
    assert not render(engine, viz).backbone_reused


def test_layer_viewer_shows_an_intermediate_layer(viewer, engine):
    viz = viewer
    viz.render_widget.render_type = 'image_raw'
    viz.render_widget.cache_backbone = False
    viz.layer_widget.open = True
    layers = render(engine, viz).layers
    names = [name for name, _ in layers]
    assert 'backbone.synthesis.b64' in names[0:40] or any(n.startswith('backbone') for n in names)
    viz.layer_widget.layer = next(n for n in names if n.startswith('backbone.synthesis.b32'))
    shape = dict(layers)[viz.layer_widget.layer]
    image = render(engine, viz).image
    assert image.shape[:2] == shape[1:]
    viz.layer_widget.channel = 1
    assert not np.array_equal(render(engine, viz).image.numpy(), image.numpy())
    G = engine.network(viz.pickle_widget.pkl)
    assert not any(m._forward_hooks for m in G.modules())     # no hooks left behind


def test_capture_saves_image_and_gui(viewer, tmp_path):
    viz = viewer
    viz.capture_widget.directory = str(tmp_path / 'caps')
    assert viz.settle(timeout=300)
    viz.capture_widget.save_image(viz.viewport.last_image)
    viz.capture_widget.want_gui_grab = True
    frames(viz, 1)
    saved = sorted(p.name for p in (tmp_path / 'caps').iterdir())
    assert saved == ['00001.png', '00002.png']
    gui = Image.open(tmp_path / 'caps' / '00002.png')
    assert gui.size == tuple(viz.window.framebuffer_size)


def test_captures_go_to_pictures_even_without_it(tmp_path, monkeypatch):
    """~/Pictures/eg3d-captures, as the README says, also where ~/Pictures does not exist yet."""
    from viz.capture_widget import CaptureWidget
    monkeypatch.setenv('HOME', str(tmp_path))
    widget = CaptureWidget(viz=None)
    assert widget.directory == str(tmp_path / 'Pictures' / 'eg3d-captures')
    assert not (tmp_path / 'Pictures').exists()             # made by the first capture only
    widget.save_image(np.zeros((4, 4, 3), np.uint8))
    assert (tmp_path / 'Pictures' / 'eg3d-captures' / '00001.png').is_file()


def test_orbit_video(viewer, tmp_path, monkeypatch):
    viewer.render_widget.render_type = 'image_raw'
    assert Image.open(record_orbit(viewer, tmp_path / 'caps', monkeypatch, 3)).n_frames == 3


def read_mp4(path):
    """The frames of an H.264 MP4 at 24 frames/s (the viewer's videos)."""
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == 'h264' and stream.average_rate == 24
        return [f.to_ndarray(format='rgb24') for f in container.decode(stream)]


def test_orbit_mp4(viewer, tmp_path, monkeypatch):
    from viz.capture_widget import even_size
    viewer.render_widget.render_type = 'image_raw'
    path = record_orbit(viewer, tmp_path / 'caps', monkeypatch, 3, 'mp4')
    decoded = read_mp4(path)
    assert len(decoded) == 3 and decoded[0].shape == viewer.current_image().shape
    assert viewer.capture_widget.message == f'saved {path} (3 frames)'
    assert even_size(np.zeros((5, 7, 3), np.uint8)).shape == (4, 6, 3)


def test_keyframe_camera_path(viewer, tmp_path, monkeypatch):
    from viz.capture_widget import path_poses
    poses = path_poses([(0.0, 0.0), (0.4, 0.2), (-0.2, 0.1)], 4)
    assert len(poses) == 12 and poses[4] == pytest.approx((0.4, 0.2), abs=1e-6)
    assert poses[8] == pytest.approx((-0.2, 0.1), abs=1e-6) and 0 < poses[2][0] < 0.4
    widget = viewer.capture_widget
    for yaw, pitch in ((0.0, 0.0), (0.5, 0.2)):
        viewer.pose_widget.yaw, viewer.pose_widget.pitch = yaw, pitch
        widget.add_keyframe()
    assert widget.keyframes == [(0.0, 0.0), (0.5, 0.2)]
    viewer.render_widget.render_type = 'image_raw'
    path = record_orbit(viewer, tmp_path / 'caps', monkeypatch, 2, 'mp4', path=True)
    assert len(read_mp4(path)) == 4 and widget.poses[2] == pytest.approx((0.5, 0.2), abs=1e-6)


def test_performance_widget_settings(viewer):
    viz = viewer
    viz.perf_widget.fps_limit = 30
    viz.perf_widget.force_fp32 = True
    frames(viz, 2)
    assert viz.window.fps_limit == 30
    assert viz.render_args().force_fp32
    assert len(viz.perf_widget.gui_times) > 0
    for _ in range(600):                    # the panel names the precision of the frame shown
        frames(viz, 1)
        result = viz.viewport.result
        if (result is not None and result.image is not None and result.args.force_fp32
                and result.quality == 'full'):      # a preview runs no super-resolution
            break
    assert result.precision == 'backbone fp32, super-resolution fp32'


def test_mesh_export_runs_in_the_background_and_cancels(viewer, tmp_path):
    import trimesh
    viz = viewer
    assert viz.settle(timeout=300)
    mesh = viz.mesh_widget
    mesh.directory = str(tmp_path / 'meshes')
    mesh.resolution, mesh.format, mesh.level, mesh.coarse_to_fine = 64, 'ply', -1.5, False
    assert mesh.start()
    while mesh.running:
        frames(viz, 1)                       # the window keeps drawing during the export
    assert mesh.message.startswith('saved '), mesh.message
    loaded = trimesh.load(tmp_path / 'meshes' / '00001.ply')
    assert len(loaded.vertices) > 0
    assert np.abs(loaded.vertices).max() <= 0.5 + 1e-3       # world units inside the box
    mesh.resolution = 256
    assert mesh.start()
    mesh.cancel()
    mesh.join(timeout=120)
    assert mesh.message == 'export cancelled (no file written)'
    assert sorted(p.name for p in (tmp_path / 'meshes').iterdir()) == ['00001.ply']


def test_long_messages_wrap_instead_of_being_cut():
    """The offline message of a released network ends in the path to put the file at; the
    view wraps it (here with 1 pixel per character) rather than cutting it at the edge."""
    from viz.gui_helpers import wrap
    text = ('error: ffhq512-128.pkl: cannot download https://api.ngc.nvidia.com/v2/models/x '
            '(no network); offline, put the file at /home/me/.cache/eg3d-app/checkpoints/'
            'ffhq512-128.pkl')
    lines = wrap(text, 30, measure=len)
    assert all(len(line) <= 30 for line in lines)
    assert ''.join(lines).replace(' ', '') == text.replace(' ', '')
    assert wrap('two words', 30, measure=len) == ['two words']
