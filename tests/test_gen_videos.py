"""The video command: the official camera path and keyframe spline, the files it writes, and
the one-line errors that leave no file."""
import dataclasses

import av
import numpy as np
import pytest
import torch
from PIL import Image

import trimesh

from eg3d_runtime import cameras, progress, views
from eg3d_runtime.commands import gen_videos
from eg3d_runtime.engine import Session
from eg3d_runtime.pickles import load_generator
from eg3d_runtime.shapes import DensityField, export_field
from eg3d_runtime.video import VideoError, keyframes, orbit
from eg3d_runtime.video import shapes as video_shapes
from eg3d_runtime.video.files import video_file
from eg3d_runtime.video.renderer import Renderer

from conftest import REPO

DEMO = REPO / 'checkpoints' / 'demo.pkl'
TINY = ['--network', DEMO, '--device', 'cpu', '--sample_mult', '1', '--w-frames', '3']


def run_cli(tmp_path, *args):
    return gen_videos.main([str(a) for a in (*TINY, '--outdir', tmp_path, *args)])


@pytest.fixture(scope='module')
def demo_G():
    return load_generator(DEMO, device='cpu')


@pytest.mark.parametrize('frame', [0, 7, 15, 30, 59])
def test_camera_path_is_the_official_one(demo_G, frame):
    n = 60
    t = 2 * 3.14 * frame / n
    rk = demo_G.rendering_kwargs
    official = cameras.look_at_orbit(3.14 / 2 + 0.35 * np.sin(t), 3.14 / 2 - 0.05 + 0.25 * np.cos(t),
                                     rk['avg_camera_pivot'], rk['avg_camera_radius'])
    yaw, pitch = orbit.orbit_angles(frame, n)
    c = views.camera(demo_G, yaw, pitch, orbit.fov_for_focal(4.2647))
    assert torch.allclose(c[0, :16].view(4, 4), official[0], atol=1e-6)
    assert c[0, 16].item() == pytest.approx(4.2647, abs=1e-5)


def test_focal_per_cfg():
    for cfg, focal in (('FFHQ', 4.2647), ('AFHQ', 4.2647), ('Shapenet', 1.7074)):
        fov = orbit.fov_for_focal(orbit.FOCALS[cfg])
        assert cameras.fov_to_intrinsics(fov)[0, 0].item() == pytest.approx(focal, abs=1e-5)


def test_spline_passes_through_keyframes_and_loops():
    keys = np.random.RandomState(0).randn(3, 2, 4).astype(np.float32)
    ws_at = keyframes.interpolator(keys)
    for k in range(3):
        np.testing.assert_allclose(ws_at(k), keys[k], atol=1e-5)
    np.testing.assert_allclose(ws_at(3), keys[0], atol=1e-5)   # the loop closes
    assert not np.allclose(ws_at(0.5), keys[0]) and not np.allclose(ws_at(0.5), keys[1])


def test_keyframe_layout():
    assert keyframes.keyframe_seeds([1, 2, 3, 4], (2, 1)).tolist() == [[[1, 2], [3, 4]]]
    assert keyframes.keyframe_seeds([5, 6], (1, 1), num_keyframes=3).tolist() == [[[5, 6, 5]]]
    shuffled = keyframes.keyframe_seeds(list(range(8)), (2, 2), shuffle_seed=1)
    assert sorted(shuffled.ravel().tolist()) == list(range(8))
    assert shuffled.ravel().tolist() != list(range(8))
    with pytest.raises(VideoError, match='divisible by grid W\\*H'):
        keyframes.keyframe_seeds([1, 2, 3], (2, 1))


def test_orbit_with_cached_planes_matches_a_one_keyframe_interpolation(demo_G):
    args = gen_videos.build_parser().parse_args(
        ['--network', str(DEMO), '--seeds', '0', '--outdir', 'x', '--sample_mult', '1',
         '--w-frames', '3'])
    renderer = Renderer(Session(demo_G), gen_videos.video_settings(args))
    # Without the sampling jitter: the two paths draw random numbers in different orders.
    renderer.settings = dataclasses.replace(renderer.settings, deterministic=True)
    orbit = list(renderer.orbit(0, 3, (1, 1)))
    interp = list(renderer.interpolation(np.array([[[0]]])))
    assert len(orbit) == 3 and not np.array_equal(orbit[0], orbit[1])
    for a, b in zip(orbit, interp):   # the spline's ~1e-7 flips a few importance samples
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 1


def test_interpolation_mp4(tmp_path, capsys, monkeypatch, demo_G):
    monkeypatch.setattr(progress, 'on_terminal', lambda stream: True)   # stderr as a terminal
    assert run_cli(tmp_path, '--seeds', '0-3', '--grid', '2x1', '--fps', 30) == 0
    assert [p.name for p in tmp_path.iterdir()] == ['interpolation.mp4']
    with av.open(str(tmp_path / 'interpolation.mp4')) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format='rgb24') for f in container.decode(stream)]
        assert stream.codec_context.name == 'h264' and stream.codec_context.pix_fmt == 'yuv420p'
        assert stream.average_rate == 30
    r = demo_G.img_resolution
    assert len(frames) == 2 * 3 and frames[0].shape == (r, 2 * r, 3)
    assert np.abs(frames[0][:, :r].astype(int) - frames[0][:, r:]).mean() > 5  # two seeds
    last = capsys.readouterr().err.rstrip('\n').split('\r')[-1]
    assert last.startswith('interpolation.mp4: 100%|') and ' 6/6 ' in last


@pytest.mark.parametrize('fmt', ['webp', 'gif'])
def test_one_orbit_per_seed(tmp_path, fmt):
    assert run_cli(tmp_path, '--seeds', '3,5', '--interpolate', 'False', '--format', fmt,
                   '--image-mode', 'image_depth', '--nrr', 16) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f'3.{fmt}', f'5.{fmt}']
    with Image.open(tmp_path / f'3.{fmt}') as im:
        assert im.n_frames == 3 and im.size == (16, 16)


def test_one_orbit_per_seed_on_a_grid(tmp_path, capsys, demo_G):
    # As official: each seed alone on the grid, so every cell shows it; no shapes per seed.
    assert run_cli(tmp_path, '--seeds', '3,5', '--interpolate', 'False', '--grid', '2x1',
                   '--num-keyframes', '1', '--format', 'webp', '--shapes',
                   'True') == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ['3.webp', '5.webp']
    assert 'no shapes written' in capsys.readouterr().err
    r = demo_G.img_resolution
    with Image.open(tmp_path / '5.webp') as im:
        assert im.n_frames == 3 and im.size == (2 * r, r)
        frame = np.asarray(im.convert('RGB')).astype(int)
    assert np.abs(frame[:, :r] - frame[:, r:]).mean() < 1
    assert run_cli(tmp_path / 'no', '--seeds', '3', '--interpolate', 'False', '--grid',
                   '2x1') == 1
    assert '--num-keyframes' in capsys.readouterr().err


def test_shapes_of_the_interpolation(tmp_path, demo_G):
    assert run_cli(tmp_path, '--seeds', '0-1', '--w-frames', 1, '--nrr', 16, '--format', 'webp',
                   '--shapes', 'True', '--shape-res', 32) == 0
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*'))
    assert names == ['interpolation.webp', 'interpolation_0_1', 'interpolation_0_1/0000_shape.ply',
                     'interpolation_0_1/0001_shape.ply', 'interpolation_trajectory.npy']
    mesh = trimesh.load(tmp_path / 'interpolation_0_1/0001_shape.ply')
    assert len(mesh.faces) > 100                      # official voxel units in a 32^3 grid
    assert mesh.vertices.min() > 0 and mesh.vertices.max() < 31
    poses = np.load(tmp_path / 'interpolation_trajectory.npy')
    yaw, pitch = orbit.orbit_angles(1, 2)
    c = views.camera(demo_G, yaw, pitch, orbit.fov_for_focal(4.2647))
    assert poses.shape == (2, 4, 4) and np.allclose(poses[1], c[0, :16].reshape(4, 4))


class Solid(DensityField):
    def sigma(self, points):
        return torch.full(points.shape[:1], 100.0)


def test_video_shapes_clear_the_official_border(tmp_path):
    # gen_videos clears int(30 N/256) voxels at each face, int(38 N/256) at the top of y.
    options = gen_videos.shape_options(64)
    export_field(video_shapes._VideoTrim(Solid(), 64), tmp_path / 's.ply', options)
    z, y, x = trimesh.load(tmp_path / 's.ply').vertices.T      # voxel units: (z, y, N-1-x)
    for axis, last in ((x, 56), (y, 54), (z, 56)):     # the last voxel kept: 63 - 7, 63 - 9
        assert 6.5 < axis.min() < 7 and last < axis.max() < last + 0.5


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with video_file(tmp_path / 'v.mp4', 'mp4', 60) as write:
            write(np.zeros((16, 16, 3), np.uint8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_options_have_both_spellings():
    p = gen_videos.build_parser()
    base = ['--network', str(DEMO), '--seeds', '0', '--outdir', 'x']
    a = p.parse_args(base + ['--image-mode', 'image_raw', '--sample-mult', '3',
                             '--num_keyframes', '2', '--interpolate', 'false'])
    assert (a.image_mode, a.sample_mult, a.num_keyframes, a.interpolate) == ('image_raw', 3, 2,
                                                                             False)
    a = p.parse_args(base)
    assert (a.grid, a.w_frames, a.trunc, a.trunc_cutoff, a.cfg, a.sample_mult, a.fps,
            a.format, a.interpolate) == ((1, 1), 120, 1, 14, 'FFHQ', 2, 60, 'mp4', True)
    with pytest.raises(SystemExit):
        p.parse_args(base + ['--grid', '0x2'])
    assert p.parse_args(base + ['--grid', '4,3']).grid == (4, 3)


def test_the_viewer_records_the_video_command_s_orbit():
    """One orbit (video.orbit.orbit_pose) for the command and the viewer's recording: the same
    swing, the command with the official 3.14 (its loop does not quite close), the viewer's
    closing."""
    from viz.capture_widget import orbit_pose as viewer_pose
    n = 48
    command = [orbit.orbit_angles(k, n) for k in range(n + 1)]
    viewer = [viewer_pose(k, n, orbit.OFFSET, orbit.OFFSET) for k in range(n + 1)]
    for poses in (command, viewer):
        yaws, pitches = np.array(poses).T - orbit.OFFSET
        assert np.isclose(yaws.max(), 0.35, atol=2e-3) and np.isclose(yaws.min(), -0.35, atol=2e-3)
        assert np.isclose(pitches.max(), 0.2) and np.isclose(pitches.min(), -0.3, atol=2e-3)
    assert np.allclose(viewer[0], viewer[-1], atol=1e-12)
    assert not np.allclose(command[0], command[-1], atol=1e-4)
    assert np.allclose(command[:-1], viewer[:-1], atol=0.02)
