"""The commands on PanoHead networks: generate (pose_cond, mask), gen_videos (--cfg Head,
--pose_cond), invert (latent + tuning, camera from a PanoHead-style dataset.json or
estimated; the written pickle reopens, also by PanoHead's structure), and the writer."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from eg3d_runtime import cameras, load_network_pkl, views
from eg3d_runtime.commands import gen_videos, generate, invert
from eg3d_runtime.inversion.outputs import reconstruction
from eg3d_runtime.video import orbit
from eg3d_runtime.video.renderer import Renderer, to_frame
from eg3d_runtime.networks.panohead import PanoHeadGenerator
from eg3d_runtime.pickles import load_generator, save_network_pkl
from eg3d_runtime.pickles.safe_unpickle import safe_load

from conftest import relative_rms


def test_generate_writes_image_depth_and_mask(panohead_pkl, panohead_G, tmp_path):
    common = ['--network', str(panohead_pkl), '--seeds', '3', '--nrr', '32', '--device', 'cpu',
              '--deterministic']
    assert generate.main(common + ['--outdir', str(tmp_path / 'a')]) == 0
    assert generate.main(common + ['--outdir', str(tmp_path / 'b'), '--pose-cond', '150']) == 0
    names = sorted(p.name for p in (tmp_path / 'a').iterdir())
    assert names == ['seed0003.png', 'seed0003_depth.png', 'seed0003_mask.png']
    frame = views.render_seed(panohead_G.session, 3, nrr=32, deterministic=True)
    picture = np.asarray(Image.open(tmp_path / 'a' / 'seed0003.png'), dtype=int)
    assert np.abs(picture - views.image_to_uint8(frame.image).numpy()).max() <= 1
    mask = np.asarray(Image.open(tmp_path / 'a' / 'seed0003_mask.png'), dtype=int)
    assert np.abs(mask - views.mask_to_uint8(frame.image_mask).numpy()).max() <= 1
    other = np.asarray(Image.open(tmp_path / 'b' / 'seed0003.png'), dtype=int)
    assert np.abs(other - picture).mean() > 1                   # another conditioning pose


def test_pose_cond_convention():
    assert cameras.pose_cond_yaw(90) == 0
    assert math.isclose(cameras.pose_cond_yaw(0), -math.pi / 2)
    assert math.isclose(cameras.wrap_yaw(3 * math.pi / 2), -math.pi / 2)


@pytest.mark.parametrize('frame', [0, 10, 20, 30])
def test_head_orbit_is_panohead_s(panohead_G, frame):
    n = 40
    t = 2 * 3.14 * frame / n
    official = cameras.look_at_orbit(3.14 / 2 + t, 3.14 / 2 - 0.05 + 0.5 * np.sin(t),
                                     (0, 0, 0), 2.7)
    yaw, pitch = orbit.orbit_angles(frame, n, 'Head')
    c = views.camera(panohead_G, yaw, pitch, orbit.fov_for_focal(4.2647),
                     orbit.HEAD_PIVOT)
    assert torch.allclose(c[0, :16].view(4, 4), official[0], atol=1e-5)


def test_gen_videos_head_orbit_and_pose_cond(panohead_pkl, panohead_G, tmp_path):
    args = ['--network', str(panohead_pkl), '--seeds', '5', '--interpolate', 'False',
            '--cfg', 'Head', '--pose_cond', '60', '--w-frames', '4', '--nrr', '16',
            '--sample_mult', '0.5', '--image_mode', 'image_depth', '--format', 'webp',
            '--device', 'cpu', '--outdir', str(tmp_path)]
    assert gen_videos.main(args) == 0
    frames = []
    with Image.open(tmp_path / '5.webp') as im:
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert('RGB')))
    assert len(frames) == 4
    # frame k of 4 is a quarter turn after frame k-1 (frame 2: the back of the head),
    # conditioned at pose_cond 60
    parsed = gen_videos.build_parser().parse_args(args)
    renderer = Renderer(panohead_G.session, gen_videos.video_settings(parsed))
    torch.manual_seed(0)
    with torch.no_grad():
        ws = views.seed_ws(panohead_G, 5, 1.0, 14, renderer.fov, cameras.pose_cond_yaw(60))
        expected = [renderer.frame(ws, renderer.camera(k, 4, 1)) for k in range(4)]
    assert torch.allclose(renderer.ws(5), ws)
    pictures = [to_frame(e, 'image_depth', 1)[0].numpy().astype(int) for e in expected]
    for k, frame in enumerate(frames):               # WebP is lossy: each frame is nearest its own
        distance = [np.abs(frame.astype(int) - p).mean() for p in pictures]
        assert int(np.argmin(distance)) == k and distance[k] < 8, distance


def test_dataset_json_with_panohead_labels(tmp_path):
    """PanoHead's dataset.json writes the 25 numbers as strings."""
    from eg3d_runtime.inversion.targets import dataset_camera
    label = ['0.980169', '-0.004075', '-0.198125', '0.534939', '-0.003572', '-0.999991',
             '0.001775', '-0.004793', '-0.198131', '-0.000988', '-0.980175', '2.646472',
             '0', '0', '0', '1', '4.2647', '0', '0.5', '0', '4.2647', '0.5', '0', '0', '1']
    (tmp_path / 'dataset.json').write_text(json.dumps({'labels': [['000134.jpg', label]]}))
    c = dataset_camera(tmp_path / '000134.jpg')
    assert c.shape == (1, 25) and c[0, 11].item() == pytest.approx(2.646472)


def test_invert_and_reopen(panohead_pkl, panohead_G, tmp_path, capsys):
    yaw, pitch = 0.3, -0.05
    with torch.no_grad():
        target = views.render_seed(panohead_G.session, 11, yaw, pitch, 0.7, nrr=32).image
    folder = tmp_path / 'photos'
    folder.mkdir()
    Image.fromarray(views.image_to_uint8(target).numpy(), 'RGB').save(folder / 'me.png')
    c = views.camera(panohead_G, yaw, pitch)
    (folder / 'dataset.json').write_text(json.dumps(
        {'labels': [['me.png', [f'{v:.6f}' for v in c[0].tolist()]]]}))
    out = tmp_path / 'out'
    code = invert.main(['--network', str(panohead_pkl), '--target', str(folder / 'me.png'),
                        '--outdir', str(out), '--num-steps', '6', '--pti-steps', '2',
                        '--video-frames', '0', '--device', 'cpu'])
    assert code == 0, capsys.readouterr().err
    tuned = load_network_pkl(out / 'inverted.pkl')
    assert isinstance(tuned['G_ema'], PanoHeadGenerator)
    assert type(tuned['D']).__name__ == 'MaskDualDiscriminatorV2'
    assert safe_load(out / 'inverted.pkl')['G_ema'].class_name == 'PanoHeadGenerator'
    camera = torch.tensor([json.loads((out / 'camera.json').read_text())])
    assert torch.allclose(camera, c, atol=1e-5)
    ws = torch.from_numpy(np.load(out / 'w.npy'))
    proj = np.asarray(Image.open(out / 'proj.png'), dtype=int)
    again = reconstruction(tuned['G_ema'].session, ws, camera).astype(int)
    assert np.abs(again - proj).max() <= 1
    code = invert.main(['--network', str(panohead_pkl), '--target', str(folder / 'me.png'),
                        '--outdir', str(tmp_path / 'estimated'), '--estimate-camera',
                        '--num-steps', '3', '--pti-steps', '0', '--video-frames', '0',
                        '--device', 'cpu'])
    assert code == 0, capsys.readouterr().err
    estimated = json.loads((tmp_path / 'estimated' / 'camera.json').read_text())
    assert len(estimated) == 25 and not np.allclose(estimated, c[0].numpy())


def test_writer_round_trip_renders_the_same(panohead_networks, panohead_reference, tmp_path):
    save_network_pkl(tmp_path / 'resaved.pkl', panohead_networks)
    again = load_generator(tmp_path / 'resaved.pkl')
    record = safe_load(tmp_path / 'resaved.pkl')['G_ema']
    renderer = record.state['_modules']['renderer']
    assert renderer.qualname == 'training.volumetric_rendering.renderer.ImportanceRenderer'
    axes = renderer.state['plane_axes']          # PanoHead's third plane: rows y, z, x
    assert torch.equal(axes[2], torch.tensor([[0., 1, 0], [0, 0, 1], [1, 0, 0]]))
    ref, _ = panohead_reference
    with torch.no_grad():
        out = again.synthesis(torch.from_numpy(ref['ws1']), torch.from_numpy(ref['c1']),
                              neural_rendering_resolution=64, noise_mode='const',
                              deterministic=True, faithful=True)
    for key in ('image', 'image_raw', 'image_depth', 'image_mask'):
        assert relative_rms(out[key], ref[f'{key}1']) < 1e-6, key


def test_training_a_panohead_network_is_refused(panohead_pkl):
    from eg3d_runtime.training.options import TrainError
    from eg3d_runtime.training.resume import load_resume
    with pytest.raises(TrainError, match='a PanoHead network; this trainer trains EG3D'):
        load_resume({'resume_pkl': str(panohead_pkl)}, False)
