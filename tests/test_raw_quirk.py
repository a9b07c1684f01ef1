"""The official image_raw quirk (docs/eg3d-reference.md 2.8): a super-resolution whose block0 does
not up-sample (SynthesisBlockNoUp: ShapeNet's Hybrid2X, Hybrid4X) adds block0's RGB in place to the
skip image, which is the returned image_raw itself when no resize happened before it. The reference
path, the fast path, training and the embedded network source all return that image_raw; up-sampling
block0s (FFHQ's 8XDC) and our demo class do not."""
import copy
import types

import pytest
import torch

from eg3d_runtime import cameras, configs, views
from eg3d_runtime.engine import FastTriPlaneGenerator, RenderSettings, Session
from eg3d_runtime.pickles import module_source
from eg3d_runtime.networks.superresolution import (
    SuperresolutionDemo2X, SuperresolutionHybrid2X, SuperresolutionHybrid4X,
    SuperresolutionHybrid8XDC)
from eg3d_runtime.networks.triplane import TriPlaneGenerator
from eg3d_runtime.training.loss import EG3DLoss

from conftest import relative_rms

FP32 = 1e-4
SAMPLES = {'depth_resolution': 12, 'depth_resolution_importance': 8}
SMALL = dict(channel_base=1024, channel_max=32)


def _generator(cfg, resolution):
    """A small random generator of `cfg` whose output `resolution` picks the super-resolution
    class (configs.SR_MODULES); the super-resolution itself keeps its official width."""
    torch.manual_seed(0)
    rendering = configs.rendering_kwargs(cfg, resolution)
    rendering.update(SAMPLES)
    G = TriPlaneGenerator(**configs.generator_kwargs(rendering, resolution, **SMALL),
                          plane_resolution=64)
    return G.eval().requires_grad_(False)


@pytest.fixture(scope='module')
def make():
    """_generator, built once per (cfg, resolution) in this module."""
    built = {}

    def get(cfg, resolution):
        if (cfg, resolution) not in built:
            built[cfg, resolution] = _generator(cfg, resolution)
        return built[cfg, resolution]
    return get


def _inputs(G):
    torch.manual_seed(1)
    c = cameras.orbit_camera_for(G.rendering_kwargs, 0.3, -0.1)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim), c)
    return ws, c


class _SrInputs:
    """Records the (rgb, features, ws) each call of G.superresolution receives."""

    def __init__(self, G):
        self.G, self.calls = G, []

    def __enter__(self):
        self.handle = self.G.superresolution.register_forward_pre_hook(
            lambda _module, args: self.calls.append(args))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _rgb_plus_block0_rgb(G, rgb, x, ws):
    """block0's layers run by hand on the features as rendered: rgb + block0's torgb output."""
    block = G.superresolution.block0
    noise_mode = G.rendering_kwargs['superresolution_noise_mode']
    w = ws[:, -1]
    with torch.no_grad():
        h = block.conv1(block.conv0(x, w, noise_mode=noise_mode), w, noise_mode=noise_mode)
        return rgb + block.torgb(h, w)


def _synthesis(G, nrr, **kwargs):
    """The reference path's outputs, the super-resolution's inputs and ws."""
    ws, c = _inputs(G)
    with torch.no_grad(), _SrInputs(G) as seen:
        out = G.synthesis(ws, c, neural_rendering_resolution=nrr, noise_mode='const',
                          deterministic=True, **kwargs)
    return out, seen.calls, ws


def _frame(G, nrr):
    """The engine's outputs (float32)."""
    ws, c = _inputs(G)
    frame = Session(G, precision='fp32').frame(ws, c, RenderSettings(nrr=nrr, deterministic=True))
    return frame.as_dict()


def _plain_raw(G, nrr):
    """The neural rendering's first three channels, without any super-resolution."""
    return _synthesis(G, nrr, superresolution=False)[0]['image_raw']


def test_which_modules_and_resolutions_show_the_quirk():
    cases = {SuperresolutionHybrid2X: (128, {64: True, 32: False, 128: False}),
             SuperresolutionHybrid4X: (256, {128: True, 64: False, 256: True}),  # < 128 resized
             SuperresolutionHybrid8XDC: (512, {128: False, 64: False}),          # block0 ups
             SuperresolutionDemo2X: (64, {32: False, 16: False})}               # trained without
    for cls, (resolution, expected) in cases.items():
        sr = cls(channels=32, img_resolution=resolution, sr_num_fp16_res=0)
        assert {size: sr.raw_is_block0_output(size) for size in expected} == expected, cls


@pytest.mark.parametrize('resolution, nrr', [(128, 64), (256, 128)])
def test_raw_includes_block0_rgb_at_the_sr_input_resolution(make, resolution, nrr):
    G = make('shapenet', resolution)
    faithful, calls, ws = _synthesis(G, nrr)
    (rgb, x, _), = calls
    assert x.shape[-1] == nrr                            # the features reach block0 un-resized
    plain = _plain_raw(G, nrr)
    assert torch.equal(rgb, plain)
    expected = _rgb_plus_block0_rgb(G, plain, x, ws)
    assert relative_rms(expected, plain) > 0.1           # the quirk changes the raw image
    assert relative_rms(faithful['image_raw'], expected) < 1e-6
    fast = _frame(G, nrr)
    for key in faithful:
        assert relative_rms(fast[key], faithful[key]) < FP32, key


@pytest.mark.parametrize('cfg, resolution, nrr', [
    ('shapenet', 128, 32), ('shapenet', 128, 128),       # 2X resizes any other size
    ('shapenet', 256, 64),                               # 4X resizes smaller ones
    # 8XDC's block0 up-samples its skip image (the fixture's nrr-128 case in test_parity.py
    # checks that against official numbers without a full-width 512 module here)
    pytest.param('ffhq', 512, 128, marks=pytest.mark.slow),
    ('demo', 64, 32)])                                   # our demo class: trained without it
def test_raw_is_untouched_otherwise(make, cfg, resolution, nrr):
    G = make(cfg, resolution)
    faithful, _, _ = _synthesis(G, nrr)
    assert torch.equal(faithful['image_raw'], _plain_raw(G, nrr))
    fast = _frame(G, nrr)
    for key in faithful:
        assert relative_rms(fast[key], faithful[key]) < FP32, key


def test_training_sees_the_quirked_raw_and_backpropagates():
    """One generator step of the loss at nrr 64: the discriminator gets image_raw with block0's
    RGB, gradients flow from that raw image into block0's RGB layer, and backward works."""
    G = _generator('shapenet', 128).train().requires_grad_(True)
    D = configs.build_discriminator('shapenet', **SMALL).train().requires_grad_(False)
    loss = EG3DLoss('cpu', G, D, neural_rendering_resolution_initial=64)
    block0_rgb = G.superresolution.block0.torgb.weight
    seen_by_D = []

    def on_D_input(_module, args):
        raw = args[0]['image_raw']
        grad, = torch.autograd.grad(raw.sum(), block0_rgb, retain_graph=True)
        seen_by_D.append((raw.detach(), grad))

    torch.manual_seed(2)
    c = cameras.orbit_camera_for(G.rendering_kwargs, 0.3, -0.1)
    z = torch.randn(1, G.z_dim)
    handle = D.register_forward_pre_hook(on_D_input)
    try:
        with _SrInputs(G) as seen:
            loss.accumulate_gradients('Gmain', torch.zeros(1, 3, 128, 128), c, z, c, gain=1,
                                      cur_nimg=0)
    finally:
        handle.remove()
    (rgb, x, ws), = seen.calls
    (raw, raw_grad), = seen_by_D
    assert raw.shape[-1] == 64 and raw_grad.abs().sum() > 0
    expected = _rgb_plus_block0_rgb(G, rgb.detach(), x.detach(), ws.detach())
    assert relative_rms(raw, expected) < 1e-5              # training: unfused modulation
    assert relative_rms(expected, rgb.detach()) > 0.1
    for name, p in G.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert block0_rgb.grad.abs().sum() > 0
    assert G.backbone.synthesis.b64.torgb.weight.grad.abs().sum() > 0


def test_embedded_network_source_keeps_the_quirk(make):
    """Saved pickles run module_source's bundle (the reference classes): same image_raw."""
    G = make('shapenet', 128)
    bundle = types.ModuleType('eg3d_bundle_test')
    exec(compile(module_source.bundle_source(), bundle.__name__, 'exec'), bundle.__dict__)
    G2 = bundle.TriPlaneGenerator(*G._init_args, **G._init_kwargs).eval()
    G2.load_state_dict(G.state_dict())
    ws, c = _inputs(G)
    with torch.no_grad():
        ours = G.synthesis(ws, c, neural_rendering_resolution=64, noise_mode='const',
                           deterministic=True)
        embedded = G2.synthesis(ws, c, neural_rendering_resolution=64, noise_mode='const',
                                deterministic=True)
    for key in ours:
        assert torch.equal(embedded[key], ours[key]), key


def test_viewer_raw_view_shows_the_official_raw(make, monkeypatch):
    """The viewer's 'image_raw' view runs the super-resolution where the official raw image
    needs it (2X at nrr 64), and shows the same pixels as G.synthesis's image_raw."""
    import eg3d_runtime.frames.frame_renderer as frame_renderer
    from eg3d_runtime.frames.render_args import RenderArgs
    G = FastTriPlaneGenerator.serving(copy.deepcopy(make('shapenet', 128)))
    monkeypatch.setattr(frame_renderer, 'open_generator', lambda pkl, device, on_progress: G)
    renderer = frame_renderer.FrameRenderer('cpu')
    args = RenderArgs(pkl='cars.pkl', render_type='image_raw', noise_mode='const')
    shown = {nrr: renderer.render(args.with_(nrr=nrr)) for nrr in (64, 32)}
    assert shown[64].precision.endswith('super-resolution fp32')     # it ran for the raw view
    assert shown[32].precision.endswith('no super-resolution')
    for nrr, result in shown.items():
        assert result.error is None, result.error
        assert result.image.shape == (nrr, nrr, 3)
    ws = renderer.latent_ws(G, args)
    c = renderer.camera(G, args.yaw, args.pitch, args)
    with torch.no_grad():
        official = G.synthesis(ws, c, neural_rendering_resolution=64, noise_mode='const',
                               deterministic=True, faithful=True)
    expected = views.image_to_uint8(official['image_raw'])
    differ = (shown[64].image.int() - expected.int()).abs()
    assert differ.float().mean() < 3            # the viewer's samples are jittered
    plain = views.image_to_uint8(_plain_raw(G, 64))
    assert (shown[64].image.int() - plain.int()).abs().float().mean() > 3 * differ.float().mean()
