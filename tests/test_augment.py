import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eg3d_runtime.networks.augment import SYM6, AugmentPipe

GEOMETRIC = ['xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac']
COLOUR = ['brightness', 'contrast', 'lumaflip', 'hue', 'saturation']
OTHER = ['imgfilter', 'noise', 'cutout']
BGC = dict.fromkeys(GEOMETRIC + COLOUR, 1)   # train.py's --aug=ada preset

# Official AugmentPipe.state_dict(): p is a scalar, Hz_geom the normalised 12-tap sym6 kept 1-D
# (setup_filter keeps filters of >= 8 taps separable), Hz_fbank 4 bands of 43 taps.
OFFICIAL_STATE = [('p', ()), ('Hz_geom', (12,)), ('Hz_fbank', (4, 43))]

# Official constructor defaults.
OFFICIAL_DEFAULTS = dict(
    xflip=0, rotate90=0, xint=0, xint_max=0.125, scale=0, rotate=0, aniso=0, xfrac=0,
    scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125, brightness=0, contrast=0,
    lumaflip=0, hue=0, saturation=0, brightness_std=0.2, contrast_std=0.5, hue_max=1,
    saturation_std=1, imgfilter=0, imgfilter_bands=[1, 1, 1, 1], imgfilter_std=1, noise=0,
    cutout=0, noise_std=0.1, cutout_size=0.5)


def smooth_images(n=8, c=3, size=64, seed=1):
    """Band-limited images, so that resampling round trips are nearly exact."""
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, c, 4, 4, generator=g), size=size, mode='bilinear',
                         align_corners=False)


def run(pipe, images, seed=0, **kwargs):
    torch.manual_seed(seed)
    return pipe(images, **kwargs)


def test_constructor_defaults_and_attributes():
    pipe = AugmentPipe()
    for name, value in OFFICIAL_DEFAULTS.items():
        assert getattr(pipe, name) == value, name
    assert isinstance(pipe.xflip, float) and isinstance(pipe.imgfilter_bands, list)
    with pytest.raises(ValueError, match='imgfilter_bands'):
        AugmentPipe(imgfilter_bands=[1, 1])


def test_state_dict_matches_official_and_round_trips():
    pipe = AugmentPipe(**BGC)
    assert [(k, tuple(v.shape)) for k, v in pipe.state_dict().items()] == OFFICIAL_STATE
    hz = np.asarray(SYM6, dtype=np.float32)
    np.testing.assert_allclose(pipe.Hz_geom.numpy(), hz / hz.sum(), rtol=1e-6)
    # The bands split the spectrum: together an identity filter; only the lowest passes DC.
    bank = pipe.Hz_fbank.double()
    delta = torch.zeros(43, dtype=torch.float64)
    delta[21] = 1
    torch.testing.assert_close(bank.sum(0), delta, atol=1e-6, rtol=0)
    torch.testing.assert_close(bank.sum(1), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64),
                               atol=1e-6, rtol=0)
    state = {k: v.clone() for k, v in pipe.state_dict().items()}
    state['p'] = torch.tensor(0.25)
    other = AugmentPipe()
    other.load_state_dict(state, strict=True)
    assert float(other.p) == 0.25


def test_p_zero_is_exact_identity():
    pipe = AugmentPipe(**BGC, imgfilter=1, noise=1, cutout=1)
    pipe.p.zero_()
    x = torch.rand(4, 6, 32, 32)
    assert torch.equal(run(pipe, x), x)


@pytest.mark.parametrize('name', GEOMETRIC + COLOUR + OTHER)
def test_each_transform_changes_image(name):
    pipe = AugmentPipe(**{name: 1})
    x = smooth_images()
    y = run(pipe, x)
    assert y.shape == x.shape and y.dtype == x.dtype
    changed = (y - x).abs().amax(dim=(1, 2, 3)) > 1e-2
    assert changed.any(), name
    if name in GEOMETRIC:
        flat = run(pipe, torch.full([8, 3, 64, 64], 0.5))
        assert abs(float(flat.mean()) - 0.5) < 0.01, name


def test_float64_keeps_dtype():
    x = smooth_images(n=2).double()
    y = run(AugmentPipe(**BGC, imgfilter=1, noise=1, cutout=1), x)
    assert y.dtype == torch.float64 and y.shape == x.shape


def test_xflip_mirrors_flipped_samples():
    x = smooth_images()
    y = run(AugmentPipe(xflip=1), x)
    to_mirror = (y - x.flip(3)).abs().amax(dim=(1, 2, 3))
    to_input = (y - x).abs().amax(dim=(1, 2, 3))
    flipped = to_mirror < 0.02           # sym6 is only nearly symmetric: a mirror is not exact
    assert flipped.any() and (~flipped).any()
    assert (to_input[~flipped] < 1e-5).all()
    assert (to_input[flipped] > 0.1).all()


def test_debug_percentile_half_is_a_vertical_flip():
    x = smooth_images()
    # At 0.5 every sample x-flips and turns by 180 degrees.
    y = AugmentPipe(xflip=1, rotate90=1)(x, debug_percentile=0.5)
    assert (y - x.flip(2)).abs().max() < 0.02


def test_six_channels_get_one_transform_on_both_halves():
    pipe = AugmentPipe(**BGC, imgfilter=1, cutout=1)
    rgb = smooth_images()
    y6 = run(pipe, torch.cat([rgb, rgb], dim=1))
    torch.testing.assert_close(y6[:, :3], y6[:, 3:], atol=1e-6, rtol=0)
    # The draws do not depend on the channel count: the RGB-only result is the same.
    torch.testing.assert_close(y6[:, :3], run(pipe, rgb), atol=1e-5, rtol=0)


def test_other_channel_counts():
    assert run(AugmentPipe(brightness=1, hue=1), smooth_images(c=1)).shape == (8, 1, 64, 64)
    with pytest.raises(ValueError, match='1, 3 or 6 channels'):
        run(AugmentPipe(brightness=1), smooth_images(c=4))
    with pytest.raises(ValueError, match='4-D'):
        AugmentPipe()(torch.zeros(3, 8, 8))


def test_gradients_flow_to_images():
    pipe = AugmentPipe(**BGC, imgfilter=1, noise=1, cutout=1)
    x = smooth_images(n=4, c=6).requires_grad_(True)
    run(pipe, x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # Exact gradients of the sampled transform, and the double backward that R1 needs.
    small = torch.rand(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    bgc = AugmentPipe(**BGC)
    assert torch.autograd.gradcheck(lambda t: run(bgc, t), (small,))
    grad, = torch.autograd.grad(run(bgc, small).square().sum(), small, create_graph=True)
    grad.square().sum().backward()
    assert small.grad.abs().sum() > 0


def test_bgc_preset_speed():
    pipe = AugmentPipe(**BGC)
    x = torch.rand(4, 6, 64, 64)
    run(pipe, x)
    start = time.perf_counter()
    for seed in range(5):
        y = run(pipe, x, seed=seed)
    per_call = (time.perf_counter() - start) / 5
    print(f'bgc AugmentPipe on 4x6x64x64 (CPU): {per_call * 1e3:.1f} ms per call')
    assert y.shape == x.shape and per_call < 2.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_follows_input_device():
    pipe = AugmentPipe(**BGC, imgfilter=1, noise=1, cutout=1).cuda()
    x = smooth_images(n=4, c=6)
    y = run(pipe, x.cuda())
    assert y.device.type == 'cuda' and y.shape == x.shape
    torch.cuda.synchronize()
    start = time.perf_counter()
    for seed in range(20):
        run(pipe, x.cuda(), seed=seed)
    torch.cuda.synchronize()
    print(f'full AugmentPipe on 4x6x64x64 (CUDA): '
          f'{(time.perf_counter() - start) / 20 * 1e3:.2f} ms per call')
