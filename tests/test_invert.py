"""Inverting a photo: inputs and their one-line errors, the losses, that both optimisations
really lower the loss, and the command's files (the pickle reopens and reproduces proj.png)."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from eg3d_runtime import cameras, progress, views
from eg3d_runtime.commands import invert
from eg3d_runtime.inversion.outputs import reconstruction
from eg3d_runtime.engine import Session
from eg3d_runtime.views import render_seed
from eg3d_runtime.inversion.losses import LpipsDistance, ReconstructionLoss, ms_ssim
from eg3d_runtime.inversion.optimise import EstimatedCamera, latent_stats, project, psnr, tune
from eg3d_runtime.inversion.targets import (InversionError, dataset_camera, load_camera,
                                            load_image)
from eg3d_runtime.pickles import load_generator

from conftest import REPO

DEMO = REPO / 'checkpoints' / 'demo.pkl'


@pytest.fixture(scope='module')
def demo_G():
    return load_generator(DEMO)


@pytest.fixture(scope='module')
def target(demo_G):
    """A picture the demo network made, with its camera."""
    return (render_seed(Session(demo_G), 11, 0.25, -0.05, 0.7).image,
            views.camera(demo_G, 0.25, -0.05))


def save_picture(image, path):
    Image.fromarray(views.image_to_uint8(image).numpy(), 'RGB').save(path)


def test_ms_ssim():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    noisy = (a + 0.3 * torch.randn(a.shape, generator=g)).clamp(-1, 1)
    assert ms_ssim(a, a).item() == pytest.approx(1, abs=1e-5)
    assert 0 < ms_ssim(a, noisy).item() < 0.9
    assert ms_ssim(a, (a + 0.05).clamp(-1, 1)).item() > ms_ssim(a, noisy).item()
    moved = noisy.clone().requires_grad_(True)
    ms_ssim(a, moved).backward()
    assert torch.isfinite(moved.grad).all() and moved.grad.abs().sum() > 0


def test_image_is_centre_cropped_and_resized(tmp_path):
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = 255                       # the centre square is white, the sides black
    Image.fromarray(wide).save(tmp_path / 'wide.png')
    image = load_image(tmp_path / 'wide.png', 16)
    assert image.shape == (1, 3, 16, 16)
    assert image.min().item() > 0.95           # nothing of the black sides is left


def test_inputs_that_are_not_images_or_cameras(tmp_path):
    text = tmp_path / 'notes.png'
    text.write_text('not a picture')
    with pytest.raises(InversionError, match=r'notes\.png: not an image$'):
        load_image(text, 64)
    short = tmp_path / 'short.json'
    short.write_text(json.dumps([0.0] * 24))
    with pytest.raises(InversionError, match=r'short\.json: the camera has 24 numbers, expected 25'):
        load_camera(short)
    nan = tmp_path / 'nan.npy'
    np.save(nan, np.full(25, np.nan, np.float32))
    with pytest.raises(InversionError, match=r'nan\.npy: the camera contains NaN'):
        load_camera(nan)
    broken = tmp_path / 'broken.json'
    broken.write_text('[1, 2,')
    with pytest.raises(InversionError, match=r'broken\.json: not a JSON list'):
        load_camera(broken)
    good = cameras.orbit_camera(0.1, 0.2)
    np.save(tmp_path / 'good.npy', good.numpy())
    assert torch.equal(load_camera(tmp_path / 'good.npy'), good)


def _png(width, height, bit_depth, colour_type, pixels):
    """A PNG written by hand (Pillow cannot write 16-bit colour): rows of big-endian samples."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack(
            '>I', zlib.crc32(kind + data) & 0xffffffff)
    raw = b''.join(b'\x00' + row for row in pixels)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height,
                                                                 bit_depth, colour_type, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def test_pictures_of_every_mode_become_rgb_with_the_right_scaling(tmp_path):
    """16-bit grey used to become all white (Pillow clips I;16 in convert('RGB'))."""
    grey16 = np.full((8, 8), 32896, np.uint16)          # 128 * 257
    Image.fromarray(grey16).save(tmp_path / 'grey16.png')
    (tmp_path / 'rgb16.png').write_bytes(_png(8, 8, 16, 2, [np.array(
        [40000, 20000, 1000] * 8, '>u2').tobytes()] * 8))
    (tmp_path / 'la16.png').write_bytes(_png(8, 8, 16, 4, [np.array(
        [0, 32896] * 8, '>u2').tobytes()] * 8))        # black at alpha 128/255 over white
    palette = Image.new('P', (8, 8), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / 'palette.png')
    Image.new('CMYK', (8, 8), (0, 255, 255, 0)).save(tmp_path / 'cmyk.jpg')
    Image.new('F', (8, 8), 0.5).save(tmp_path / 'float.tif')
    expected = {'grey16.png': (128, 128, 128), 'rgb16.png': (156, 78, 4),
                'la16.png': (127, 127, 127), 'palette.png': (10, 200, 30),
                'cmyk.jpg': (255, 0, 0), 'float.tif': (128, 128, 128)}
    for name, rgb in expected.items():
        pixels = ((load_image(tmp_path / name, 8)[0, :, 4, 4] + 1) * 127.5).round()
        assert pixels.tolist() == pytest.approx(list(rgb), abs=2), name


def test_small_pictures_warn_and_bombs_are_refused_from_the_header(tmp_path):
    Image.new('RGB', (1, 1), (0, 255, 0)).save(tmp_path / 'dot.png')
    heard = []
    assert load_image(tmp_path / 'dot.png', 16, warn=heard.append).shape == (1, 3, 16, 16)
    assert heard == [f"{tmp_path / 'dot.png'}: 1x1 pixels, smaller than the network's 16x16; "
                     'it is upscaled, so expect a blurry target']
    (tmp_path / 'bomb.png').write_bytes(_png(60000, 60000, 8, 2, []))    # 65 bytes
    with pytest.raises(InversionError, match=r'bomb\.png: claims 3,600,000,000 pixels, more '
                                             r'than the 178,956,970 a picture may have'):
        load_image(tmp_path / 'bomb.png', 16)


def test_numbers_that_are_no_camera_are_refused(tmp_path):
    scaled = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))
    for values, problem in (([0.0] * 25, 'the cam2world bottom row is not 0 0 0 1'),
                            (torch.cat([scaled.reshape(-1), torch.zeros(9)]),
                             'the cam2world 3x3 part is not a rotation'),
                            (torch.cat([torch.eye(4).reshape(-1), torch.zeros(9)]),
                             'the intrinsics have no positive focal lengths')):
        path = tmp_path / 'c.json'
        path.write_text(json.dumps([float(v) for v in values]))
        with pytest.raises(InversionError, match=f'c.json: not a camera: {problem}$'):
            load_camera(path)


def test_camera_from_dataset_json(tmp_path):
    label = cameras.orbit_camera(0.3, -0.1)[0].tolist()
    (tmp_path / '00000').mkdir()
    picture = tmp_path / '00000' / 'img00000003.png'
    Image.new('RGB', (8, 8)).save(picture)
    (tmp_path / 'dataset.json').write_text(json.dumps(
        {'labels': [['00000/img00000001.png', [0.0] * 25], ['00000/img00000003.png', label]]}))
    assert torch.allclose(dataset_camera(picture), torch.tensor([label]))
    assert dataset_camera(tmp_path / 'elsewhere.png') is None


def test_estimated_camera_starts_frontal_and_has_gradients(demo_G):
    cam = EstimatedCamera(demo_G)
    assert torch.allclose(cam(), views.camera(demo_G), atol=1e-6)
    cam()[0].sum().backward()
    assert cam.yaw.grad.abs() > 0 and cam.pitch.grad.abs() > 0 and cam.log_focal.grad.abs() > 0


def test_latent_and_tuning_lower_the_loss(demo_G, target):
    image, c = target
    loss = ReconstructionLoss(image)
    stats = latent_stats(demo_G)
    losses = []
    ws, _ = project(demo_G, loss, c, 20, noise=0.0, on_step=lambda s: losses.append(s.loss),
                    stats=stats)
    assert ws.shape == (1, demo_G.backbone.mapping.num_ws, demo_G.w_dim)
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    before = {k: v.clone() for k, v in demo_G.state_dict().items()}
    tuned_losses = []
    tuned = tune(demo_G, ws, c, loss, 8, lr=1e-3, on_step=lambda s: tuned_losses.append(s.loss),
                 stats=stats)
    with torch.no_grad():
        pivot = psnr(demo_G.synthesis(ws, c, noise_mode='const', deterministic=True)['image'], image)
        after = psnr(tuned.synthesis(ws, c, noise_mode='const', deterministic=True)['image'], image)
    assert after > pivot + 0.5, (pivot, after)
    assert all(torch.equal(v, demo_G.state_dict()[k]) for k, v in before.items())  # a copy


def test_camera_is_estimated_with_the_latent(demo_G, target):
    image, _ = target
    _, c = project(demo_G, ReconstructionLoss(image), None, 6)
    assert not torch.allclose(c, views.camera(demo_G))


def test_w_plus_gives_each_layer_its_own_w(demo_G, target):
    image, c = target
    ws, _ = project(demo_G, ReconstructionLoss(image), c, 3, w_plus=True)
    assert not torch.allclose(ws[:, 0], ws[:, -1])
    ws, _ = project(demo_G, ReconstructionLoss(image), c, 3)
    assert torch.equal(ws[:, 0], ws[:, -1])


def test_lpips_weights(tmp_path, demo_G, target):
    class Features(torch.nn.Module):
        def forward(self, x, resize_images: bool = True, return_lpips: bool = False):
            f = torch.nn.functional.avg_pool2d(x / 255, 8).flatten(1)
            return f / f.square().sum(1, keepdim=True).sqrt()
    torch.jit.script(Features()).save(str(tmp_path / 'lpips.pt'))
    image, c = target
    lpips = LpipsDistance(tmp_path / 'lpips.pt', 'cpu')
    loss = ReconstructionLoss(image, lpips)
    out = {'image': image.clone(), 'image_raw': torch.nn.functional.interpolate(image, size=32,
                                                                                 mode='area')}
    assert loss(out).item() == pytest.approx(0, abs=1e-6)
    out['image'] = -image
    assert loss(out).item() > 0.01
    (tmp_path / 'junk.pt').write_bytes(b'junk')
    with pytest.raises(InversionError, match=r'junk\.pt: not TorchScript LPIPS weights'):
        LpipsDistance(tmp_path / 'junk.pt', 'cpu')


def run_invert(capsys, *args):
    code = invert.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_command_writes_a_pickle_that_reproduces_proj(tmp_path, capsys, monkeypatch, demo_G,
                                                      target):
    monkeypatch.setattr(progress, 'on_terminal', lambda stream: True)   # stderr as a terminal
    image, c = target
    save_picture(image, tmp_path / 'photo.png')
    np.save(tmp_path / 'cam.npy', c.numpy())
    out = tmp_path / 'out'
    code, stdout, err = run_invert(capsys, '--network', DEMO, '--target', tmp_path / 'photo.png',
                                   '--camera', tmp_path / 'cam.npy', '--outdir', out,
                                   '--num-steps', 8, '--pti-steps', 3, '--video-frames', 4,
                                   '--device', 'cpu')
    assert code == 0, err
    assert 'loss: pixel L2 + multi-scale SSIM' in stdout
    assert re.search(r'\rw: 100%\|[^\r]*\| 8/8 \[[^\r]*loss \d\.\d{4}\]\n', err), err
    assert re.search(r'\rtuning: 100%\|[^\r]*\| 3/3 \[[^\r]*loss \d\.\d{4}\]\n', err), err
    assert sorted(p.name for p in out.iterdir()) == ['camera.json', 'inverted.pkl', 'orbit.mp4',
                                                     'proj.png', 'w.npy']
    ws = np.load(out / 'w.npy')
    assert ws.dtype == np.float32 and ws.shape == (1, demo_G.backbone.mapping.num_ws, demo_G.w_dim)
    G = load_generator(out / 'inverted.pkl')
    assert any(not torch.equal(a, b) for a, b in zip(G.parameters(), demo_G.parameters()))
    camera = torch.tensor([json.loads((out / 'camera.json').read_text())])
    assert torch.allclose(camera, c)
    again = reconstruction(Session(G), torch.from_numpy(ws), camera).astype(int)
    proj = np.asarray(Image.open(out / 'proj.png'), dtype=int)
    assert np.abs(again - proj).max() <= 1
