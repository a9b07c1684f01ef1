"""The fast inference path (eg3d_runtime.fast, run by an engine Session) against the faithful
path.

Every comparison here is of float32 arithmetic (the `fp32_arithmetic` fixture names it), so the
results do not depend on what 'auto' would pick on this machine; reduced formats and 'auto' are
tested in test_precision.py. Full-quality output must stay within 1e-2 relative RMS of the
faithful path (float32 is in fact ~1e-6, asserted tighter below so that regressions show).
Previews may differ (fewer samples, empty-space skipping) and are only checked for sanity here.
No timings are asserted.
"""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eg3d_runtime import cameras, ops, views
from eg3d_runtime.engine import EngineOptions, Precision, RenderSettings, Session
from eg3d_runtime.fast import blocks as fastblocks
from eg3d_runtime.fast import conv as fastconv
from eg3d_runtime.fast import fold as fastfold
from eg3d_runtime.fast import frame as fastframe
from eg3d_runtime.fast import render as fastrender
from eg3d_runtime.fast import tensor_keys
from eg3d_runtime.networks.stylegan2 import SynthesisLayer, ToRGBLayer
from eg3d_runtime.rendering.plane_sampling import sample_from_planes

from conftest import fast_and_reference, forbid_host_reads, reference_case, relative_rms

FULL_QUALITY = 1e-2      # the requirement
FP32 = 1e-4              # what float32 actually achieves (~1e-6); catches regressions


@pytest.fixture(autouse=True)
def fp32_arithmetic(fixture_G):
    """Backbone and super-resolution of the shared fixture network in float32."""
    fixture_G.session = Session(fixture_G, precision='fp32')
    yield
    fixture_G.session = Session(fixture_G)


# ------------------------------------------------------------------------------------------------
# convolutions with folded weights
# ------------------------------------------------------------------------------------------------

@pytest.fixture(params=[True, False], ids=['fused', 'not-fused'])
def fused_probe(request, monkeypatch):
    """Both answers of the CPU probe for oneDNN convolutions that add into a buffer; where it
    is used, in strips of two rows (every strip has neighbours or an image border)."""
    if request.param and not fastconv.fused_conv_supported(torch.float32):
        pytest.skip('oneDNN cannot add into a buffer in this torch build')
    monkeypatch.setattr(fastconv, 'FUSED_STRIP_BYTES', 1)
    if not request.param:
        monkeypatch.setattr(fastconv, 'fused_conv_supported', lambda dtype: False)
    return request.param


@pytest.mark.parametrize('up', [1, 2])
@pytest.mark.parametrize('method', ['direct', 'winograd', 'transposed'])
@pytest.mark.parametrize('noise_mode', ['const', 'none'])
def test_folded_layer_matches_modulated_conv(up, method, noise_mode, fused_probe):
    torch.manual_seed(1)
    layer = SynthesisLayer(24, 20, 512, 32, up=up, conv_clamp=256).eval()
    layer.noise_strength.data.fill_(0.3)
    w = torch.randn(1, 512)
    x = torch.randn(1, 24, 32 // up, 32 // up)
    with torch.no_grad():
        ref = layer(x, w, noise_mode=noise_mode)
        conv = fastfold.fold_layer(layer, w[0], noise_mode, method=method)
        out = conv(x[0].permute(1, 2, 0).contiguous())
    assert out.shape == (32, 32, 20)
    assert relative_rms(out.permute(2, 0, 1)[None], ref) < FP32


@pytest.mark.parametrize('size', [10, 6])
def test_winograd_odd_sizes(size):
    torch.manual_seed(2)
    for up in (1, 2):
        layer = SynthesisLayer(8, 12, 512, size * up, up=up).eval()
        w = torch.randn(1, 512)
        x = torch.randn(1, 8, size, size)
        with torch.no_grad():
            ref = layer(x, w, noise_mode='none')
            out = fastfold.fold_layer(layer, w[0], 'none', 'winograd')(
                x[0].permute(1, 2, 0).contiguous())
        assert relative_rms(out.permute(2, 0, 1)[None], ref) < FP32


def test_clamp_and_random_noise_statistics():
    torch.manual_seed(3)
    layer = SynthesisLayer(16, 16, 512, 16, conv_clamp=0.5).eval()
    w = torch.randn(1, 512)
    x = torch.randn(1, 16, 16, 16) * 10
    with torch.no_grad():
        ref = layer(x, w, noise_mode='none')
        out = fastfold.fold_layer(layer, w[0], 'none', 'winograd')(x[0].permute(1, 2, 0).contiguous())
    assert out.abs().max() <= 0.5 + 1e-6
    assert relative_rms(out.permute(2, 0, 1)[None], ref) < FP32
    layer.noise_strength.data.fill_(1.0)
    with torch.no_grad():
        a = fastfold.fold_layer(layer, w[0], 'random')(torch.zeros(16, 16, 16))
        b = fastfold.fold_layer(layer, w[0], 'random')(torch.zeros(16, 16, 16))
    assert not torch.equal(a, b)          # noise is drawn per call
    # ... on the calling thread, so that a seed fixes it when strips run on the workers
    wide = SynthesisLayer(64, 64, 512, 128).eval()
    wide.noise_strength.data.fill_(1.0)
    conv = fastfold.fold_layer(wide, w[0], 'random', 'winograd')
    x = torch.randn(128, 128, 64)
    seeded = []
    for _ in range(2):
        torch.manual_seed(4)
        with torch.no_grad():
            seeded.append(conv(x))
    assert torch.equal(*seeded)


def test_torgb_and_skip_upsampling():
    torch.manual_seed(4)
    torgb = ToRGBLayer(40, 3, 512).eval()
    w = torch.randn(1, 512)
    x = torch.randn(1, 40, 12, 12)
    with torch.no_grad():
        ref = torgb(x, w)
        out = fastfold.fold_torgb(torgb, w[0])(x[0].permute(1, 2, 0).contiguous())
    assert relative_rms(out.permute(2, 0, 1)[None], ref) < FP32
    img = torch.randn(1, 5, 9, 9)
    ref = ops.upsample2d(img, ops.setup_filter([1, 3, 3, 1]))
    out = fastblocks.upsample2x(img[0].permute(1, 2, 0)).permute(2, 0, 1)[None]
    assert relative_rms(out, ref) < 1e-6


@pytest.mark.parametrize('dtype', [torch.bfloat16])
def test_reduced_precision_layers_stay_close(dtype, fused_probe):
    torch.manual_seed(5)
    layer = SynthesisLayer(32, 32, 512, 32, up=2, conv_clamp=256).eval()
    w = torch.randn(1, 512)
    x = torch.randn(1, 32, 16, 16)
    with torch.no_grad():
        ref = layer(x, w, noise_mode='none')
        for method in ('direct', 'polyphase', 'transposed'):
            conv = fastfold.fold_layer(layer, w[0], 'none', method, dtype)
            out = conv(x[0].permute(1, 2, 0).contiguous())
            # where oneDNN writes the result, it stays in the reduced format for the next layer
            fused = fused_probe and conv.method == 'transposed' \
                and fastconv.fused_conv_supported(dtype)
            assert out.dtype == (dtype if fused else torch.float32)
            assert relative_rms(out.permute(2, 0, 1)[None].float(), ref) < FULL_QUALITY


# ------------------------------------------------------------------------------------------------
# tri-plane sampling and the decoder
# ------------------------------------------------------------------------------------------------

def test_one_call_plane_sampling_equals_grid_sample():
    torch.manual_seed(6)
    planes = torch.randn(2, 3, 8, 16, 12)
    pts = torch.rand(2, 500, 3) * 1.6 - 0.8          # some points outside the box
    pts[0, :4] = torch.tensor([[0.5, 0.5, 0.5], [-0.5, -0.5, -0.5], [0.5, -0.5, 0.0],
                               [10.0, -10.0, 0.25]])
    table = fastrender.PlaneTable(planes)
    for box in (1.0, 1.6):
        ref = sample_from_planes(planes, pts, box)             # [N, 3, P, C]
        for n in range(2):
            out = table.sample_sum(pts[n], box, n) / 3
            assert torch.allclose(out, ref[n].mean(0), atol=1e-5), (box, n)


def test_folded_decoder_matches_osg_decoder(fixture_G):
    torch.manual_seed(7)
    feats = torch.randn(1, 3, 200, 32)
    with torch.no_grad():
        ref = fixture_G.decoder(feats)
        sigma, rgb = fastrender.FoldedDecoder(fixture_G.decoder)(feats[0].sum(0))
        _, rgb3 = fastrender.FoldedDecoder(fixture_G.decoder)(feats[0].sum(0), 3)
    assert relative_rms(sigma, ref['sigma'][0, :, 0]) < 1e-5
    assert relative_rms(rgb, ref['rgb'][0]) < 1e-5
    assert torch.allclose(rgb3, rgb[:, :3])


# ------------------------------------------------------------------------------------------------
# whole frames
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('i', range(3))
def test_fast_synthesis_matches_official(fixture_G, reference, i):
    """The default (fast) path against the official numbers, which the faithful path matches
    to ~1e-6 (tests/test_parity.py)."""
    ws, c, nrr = reference_case(reference, i)
    official, _ = reference
    with torch.no_grad():
        fast = fixture_G.synthesis(ws, c, neural_rendering_resolution=nrr, noise_mode='const',
                                   deterministic=True)
    for key in ('image', 'image_raw', 'image_depth'):
        assert fast[key].shape == official[f'{key}{i}'].shape
        assert relative_rms(fast[key], official[f'{key}{i}']) < FP32, key


def test_fast_synthesis_matches_faithful(fixture_G, reference):
    ws, c, nrr = reference_case(reference, 2)
    fast, ref = fast_and_reference(fixture_G, ws, c, neural_rendering_resolution=nrr,
                                   noise_mode='const', deterministic=True)
    assert set(fast) == set(ref)
    for key in ref:
        assert fast[key].shape == ref[key].shape
        assert relative_rms(fast[key], ref[key]) < FP32, key


def test_camera_only_change_uses_cached_planes_and_folded_sr(fixture_G, reference):
    ws, c0, _ = reference_case(reference, 0)
    _, c1, _ = reference_case(reference, 1)
    G = fixture_G
    kw = dict(neural_rendering_resolution=32, noise_mode='const', deterministic=True)
    with torch.no_grad():
        G.synthesis(ws, c0, cache_backbone=True, **kw)
        st = G.session
        folded = st._sr[2]
        cached = G.synthesis(ws, c1, use_cached_backbone=True, **kw)
        assert st._sr[2] is folded                # same last w -> SR weights not refolded
        raw = G.synthesis(ws * 0, c1, use_cached_backbone=True, superresolution=False, **kw)
        ref = G.synthesis(ws, c1, faithful=True, **kw)
    for key in ref:
        assert relative_rms(cached[key], ref[key]) < FP32, key
    assert relative_rms(raw['image_raw'], ref['image_raw']) < FP32   # planes of ws, not ws*0
    torgb = folded[0][1].torgb.weight.clone()
    with torch.no_grad():
        G.synthesis(ws + 0.1, c1, **kw)
    assert not torch.equal(folded[0][1].torgb.weight, torgb)   # new w -> refolded (in place)


def test_batch_and_random_sampling(fixture_G, reference):
    ws0, c0, _ = reference_case(reference, 0)
    ws1, c1, _ = reference_case(reference, 2)
    ws, c = torch.cat([ws0, ws1]), torch.cat([c0, c1])
    fast, ref = fast_and_reference(fixture_G, ws, c, neural_rendering_resolution=32,
                                   noise_mode='const', deterministic=True)
    for key in ref:
        assert relative_rms(fast[key], ref[key]) < FP32, key


def test_random_sampling_draws_the_reference_numbers(fixture_G, reference):
    """Stochastic sampling draws its jitter and importance samples up front, in the reference
    renderer's order: a seed fixes the frame however the rays are chunked over the worker
    threads (before, each chunk drew its own in whatever order the threads ran, and shared one
    jitter among its rays), and it is the faithful path's frame for that seed."""
    ws = torch.cat([reference_case(reference, 0)[0], reference_case(reference, 2)[0]])
    c = torch.cat([reference_case(reference, 0)[1], reference_case(reference, 2)[1]])
    # many chunks for the workers to race over
    fixture_G.session = Session(fixture_G, precision='fp32',
                                options=EngineOptions(chunk_points=2048))
    frames = []
    for faithful in (False, False, True):
        torch.manual_seed(7)
        with torch.no_grad():
            frames.append(fixture_G.synthesis(
                ws, c, neural_rendering_resolution=32, noise_mode='const',
                superresolution=False, faithful=faithful))
    fast, again, faithful = frames
    for key in faithful:
        assert torch.equal(fast[key], again[key]), key
        assert relative_rms(fast[key], faithful[key]) < FP32, key


def test_auto_bounds_white_back_and_overrides(fixture_G, reference):
    ws, c, _ = reference_case(reference, 1)
    overrides = {'ray_start': 'auto', 'ray_end': 'auto', 'box_warp': 1.6, 'white_back': True,
                 'depth_resolution': 20, 'depth_resolution_importance': 12}
    fast, ref = fast_and_reference(fixture_G, ws, c, neural_rendering_resolution=32,
                                   noise_mode='none', deterministic=True,
                                   rendering_overrides=overrides, superresolution=False)
    for key in ref:
        assert relative_rms(fast[key], ref[key]) < FP32, key
    fast, ref = fast_and_reference(fixture_G, ws, c, neural_rendering_resolution=24,
                                   noise_mode='none', deterministic=True,
                                   rendering_overrides={'depth_resolution_importance': 0},
                                   superresolution=False)
    for key in ref:
        assert relative_rms(fast[key], ref[key]) < FP32, key


def test_disparity_space_sampling_is_honoured_by_both_paths(fixture_G, reference):
    """disparity_space_sampling (False in every official config, but a recorded option): depths
    evenly spaced in 1/depth, the same in the reference and the fast path, with fixed and
    'auto' bounds, and not the depth-spaced picture."""
    from eg3d_runtime.rendering.renderer import stratified_depths
    depths = stratified_depths(torch.zeros(1, 2, 3), 2.0, 4.0, 5, True, disparity=True)
    assert torch.allclose(1 / depths[0, 0, :, 0], torch.tensor([0.5, 0.4375, 0.375, 0.3125, 0.25]))
    ws, c, _ = reference_case(reference, 1)
    kw = dict(neural_rendering_resolution=24, noise_mode='none', deterministic=True,
              superresolution=False)
    # a wide depth range, few samples: disparity and depth spacing differ much
    wide = {'ray_start': 1.0, 'ray_end': 10.0, 'depth_resolution': 6,
            'depth_resolution_importance': 0}
    for bounds in (wide, {'ray_start': 'auto', 'ray_end': 'auto'}):
        overrides = {**bounds, 'disparity_space_sampling': True}
        fast, ref = fast_and_reference(fixture_G, ws, c, rendering_overrides=overrides, **kw)
        for key in ref:
            assert relative_rms(fast[key], ref[key]) < FP32, key
    fast_wide, _ = fast_and_reference(
        fixture_G, ws, c, rendering_overrides={**wide, 'disparity_space_sampling': True}, **kw)
    linear, _ = fast_and_reference(fixture_G, ws, c, rendering_overrides=wide, **kw)
    assert relative_rms(linear['image_depth'], fast_wide['image_depth']) > 0.01


def test_raw_only_frames_are_identical_in_content(fixture_G, reference):
    ws, c, _ = reference_case(reference, 2)
    kw = dict(neural_rendering_resolution=16, noise_mode='const', deterministic=True,
              superresolution=False,
              rendering_overrides={'depth_resolution': 12, 'depth_resolution_importance': 8})
    fast, ref = fast_and_reference(fixture_G, ws, c, **kw)
    assert set(fast) == {'image_raw', 'image_depth'}
    for key in ref:
        assert relative_rms(fast[key], ref[key]) < FP32, key


def test_empty_space_skipping_preview_is_close(fixture_G, reference):
    """Previews may differ: skipping is an approximation (it says so); it stays close."""
    ws, c, _ = reference_case(reference, 0)
    kw = dict(neural_rendering_resolution=32, noise_mode='const', deterministic=True,
              superresolution=False)
    with torch.no_grad():
        plain = fixture_G.synthesis(ws, c, **kw)
        skip = fixture_G.synthesis(ws, c, rendering_overrides={'empty_space_skipping': True},
                                   **kw)
    assert skip['image_raw'].shape == plain['image_raw'].shape
    assert torch.isfinite(skip['image_raw']).all() and torch.isfinite(skip['image_depth']).all()
    assert relative_rms(skip['image_raw'], plain['image_raw']) < 0.1


def test_sample_mixed_and_planes_fast_paths(fixture_G, reference):
    ref, _ = reference
    points = torch.from_numpy(ref['probe_points'])
    ws = torch.from_numpy(ref['probe_ws'])
    with torch.no_grad():
        fast = fixture_G.sample_mixed(points, torch.zeros_like(points), ws, noise_mode='const')
        slow = fixture_G.sample_mixed(points, torch.zeros_like(points), ws, noise_mode='const',
                                      faithful=True)
        p_fast = fixture_G.planes(ws, noise_mode='const')
        p_slow = fixture_G.planes(ws, noise_mode='const', faithful=True)
    assert p_fast.shape == p_slow.shape == (1, 3, 32, 256, 256)
    assert relative_rms(p_fast, p_slow) < FP32
    assert relative_rms(fast['sigma'], slow['sigma']) < FP32
    assert relative_rms(fast['rgb'], slow['rgb']) < FP32
    assert relative_rms(fast['sigma'], ref['probe_sigma']) < 1e-3


def test_autograd_and_training_use_the_faithful_path(fixture_G, reference):
    ws, c, _ = reference_case(reference, 0)
    ws = ws.clone().requires_grad_(True)
    out = fixture_G.synthesis(ws, c, neural_rendering_resolution=16, noise_mode='const',
                              superresolution=False, deterministic=True)
    assert out['image_raw'].grad_fn is not None        # differentiable: reference path
    G = copy.deepcopy(fixture_G).train()
    assert not G._served(ws.detach(), {}, faithful=False)
    G.eval()
    assert G._served(ws.detach(), {}, faithful=False)
    assert not G._served(ws.detach(), {}, faithful=True)
    assert not G._served(ws.detach(), {'a_backbone_option': 1}, faithful=False)


def test_state_is_not_part_of_the_module(fixture_G, reference):
    ws, c, _ = reference_case(reference, 0)
    with torch.no_grad():
        fixture_G.synthesis(ws, c, neural_rendering_resolution=16, noise_mode='const',
                            superresolution=False)
    assert not any('fast' in k or 'session' in k for k in fixture_G.state_dict())
    assert fixture_G.session._backbone is not None
    G2 = copy.deepcopy(fixture_G)                        # the session is not copied
    assert '_session' not in vars(G2) and G2.session is not fixture_G.session
    assert G2.session._backbone is None and G2.session.G is G2
    fixture_G.session.clear()
    assert fixture_G.session._backbone is None


def test_weight_changes_invalidate_caches(fixture_G, reference):
    ws, c, _ = reference_case(reference, 0)
    G = copy.deepcopy(fixture_G)
    kw = dict(neural_rendering_resolution=16, noise_mode='const', deterministic=True)
    with torch.no_grad():
        G.synthesis(ws, c, **kw)
        G.superresolution.block1.torgb.bias.add_(0.5)
        G.decoder.net[2].bias.add_(0.1)
        fast = G.synthesis(ws, c, **kw)
        ref = G.synthesis(ws, c, faithful=True, **kw)
    for key in ref:
        assert relative_rms(fast[key], ref[key]) < FP32, key


def test_texture_ready_frame():
    img = torch.rand(2, 3, 8, 6) * 2.4 - 1.2
    tex = views.image_to_uint8(img, 1)
    assert tex.dtype == torch.uint8 and tex.shape == (8, 6, 3) and tex.is_contiguous()
    expected = (img[1].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    assert torch.equal(tex, expected)


def test_default_device_never_raises():
    from eg3d_runtime.devices import default_device
    assert default_device() in ('cpu', 'cuda')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_graph_frames_match_eager(fixture_G, reference):
    G = copy.deepcopy(fixture_G).cuda()
    ws, c, _ = reference_case(reference, 0)
    ws, c = ws.cuda(), c.cuda()
    kw = dict(neural_rendering_resolution=64, noise_mode='const', deterministic=True)
    with torch.no_grad():
        G.synthesis(ws, c, cache_backbone=True, **kw)
        graphed = [G.synthesis(ws, c, use_cached_backbone=True, **kw) for _ in range(3)]
        runners = [r for (kind, _), r in G.session._graphs.graphs.items() if kind == 'camera']
        ref = G.synthesis(ws, c, use_cached_backbone=True, faithful=True, **kw)
    assert not G.session._graphs.failed
    # One graph captured by the first call, then replayed by it and all three (not eager).
    assert len(runners) == 1 and runners[0].replays == 4
    for key in ref:
        assert relative_rms(graphed[-1][key].cpu(), ref[key].cpu()) < FULL_QUALITY, key


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_graph_serves_every_latent(fixture_G, reference):
    """New latents replay the same per-camera graph (planes and w refilled in place) and give
    the eager frames."""
    G = copy.deepcopy(fixture_G).cuda()
    ws0, c, _ = reference_case(reference, 0)
    latents = [ws0.cuda() + 0.1 * k for k in range(3)]
    kw = dict(neural_rendering_resolution=64, noise_mode='const', deterministic=True)
    with torch.no_grad():
        graphed = [G.synthesis(w, c.cuda(), **kw) for w in latents]
        st = G.session
        runners = [r for (kind, _), r in st._graphs.graphs.items() if kind == 'camera']
        G.session = Session(G, options=EngineOptions(cuda_graphs=False))
        eager = [G.synthesis(w, c.cuda(), **kw) for w in latents]
    assert not st._graphs.failed
    assert len(runners) == 1 and runners[0].replays == 3
    for g, e in zip(graphed, eager):
        for key in e:
            assert relative_rms(g[key].cpu(), e[key].cpu()) < 1e-5, key


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_graph_backbone_matches_eager(fixture_G, reference):
    """New latents replay one captured backbone: the planes equal the eager backbone's."""
    G = copy.deepcopy(fixture_G).cuda()
    ws0, c, _ = reference_case(reference, 0)
    latents = [ws0.cuda() + 0.1 * k for k in range(3)]
    graphed_session = Session(G)
    eager_session = Session(G, options=EngineOptions(cuda_graphs=False))
    graphed = [graphed_session.planes(w, 'const') for w in latents]
    runners = [r for (kind, _), r in graphed_session._graphs.graphs.items()
               if kind == 'backbone']
    eager = [eager_session.planes(w, 'const') for w in latents]
    assert not graphed_session._graphs.failed
    assert len(runners) == 1 and runners[0].replays == 3
    assert not torch.equal(graphed[0], graphed[1])          # each latent its own planes
    for g, e in zip(graphed, eager):
        assert relative_rms(g.cpu(), e.cpu()) < 1e-6


@pytest.mark.slow
def test_bf16_full_frame_within_tolerance(fixture_G, reference):
    """bf16 super-resolution at 512x512 (measured: image 5.2e-3, raw and depth unchanged);
    slow where bf16 is emulated (about 90 s on an AVX2-only CPU)."""
    G = copy.deepcopy(fixture_G)
    G.session = Session(G, precision=Precision('fp32', 'bf16'))   # super-resolution in bf16
    ws, c, nrr = reference_case(reference, 0)
    fast, ref = fast_and_reference(G, ws, c, neural_rendering_resolution=nrr, noise_mode='const',
                      deterministic=True)
    for key in ref:
        assert relative_rms(fast[key], ref[key]) < FULL_QUALITY, key


@pytest.mark.slow
def test_full_size_ffhq_fast_frame_matches_faithful():
    from eg3d_runtime import configs
    torch.manual_seed(0)
    G = configs.build_generator('ffhq')               # the reference network
    c = cameras.orbit_camera_for(G.rendering_kwargs, 0.25, -0.1)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, 512), c, truncation_psi=0.7, truncation_cutoff=14)
        fast = Session(G).frame(ws, c, RenderSettings(nrr=64, deterministic=True)).as_dict()
        ref = G.synthesis(ws, c, neural_rendering_resolution=64, noise_mode='const',
                          deterministic=True)
    for key in ref:
        assert relative_rms(fast[key], ref[key]) < FP32, key


@pytest.mark.slow
def test_benchmark_writes_json(tmp_path, fixture_pkl):
    import json
    from eg3d_runtime.commands import bench
    out = tmp_path / 'bench.json'
    assert bench.main(['--network', str(fixture_pkl), '--device', 'cpu', '--reps', '1',
                       '--preview-frames', '4', '--nrr', '32', '--json', str(out)]) == 0
    data = json.loads(out.read_text())
    assert data['precision'] == {'backbone': 'fp32', 'superresolution': 'fp32'}
    for key in ('camera_only_frame_ms', 'new_latent_frame_ms', 'preview_fps'):
        assert data[key] > 0 and data['faithful_' + key] > 0


def test_the_benchmark_s_seed_is_the_viewer_s(fixture_G, fixture_pkl):
    """Seed k is one z everywhere (views.latent): the bench's ws of a seed are those of the
    viewer's latent panel and of generate, gen_videos and shape export (views.seed_ws)."""
    from eg3d_runtime.benchmark import Bench
    from eg3d_runtime.frames.frame_renderer import FrameRenderer
    from eg3d_runtime.frames.render_args import RenderArgs
    b = Bench(fixture_G, torch.device('cpu'), nrr=16, reps=1)
    assert torch.equal(b.latent(7), views.latent(7, fixture_G.z_dim))
    renderer = FrameRenderer('cpu')
    G = renderer.network(str(fixture_pkl))
    with torch.no_grad():
        ws = b.ws(7)
        assert torch.equal(ws, views.seed_ws(fixture_G, 7, psi=0.7, cutoff=14))
        viewer = renderer.latent_ws(G, RenderArgs(pkl=str(fixture_pkl), seed_x=7.0, psi=0.7,
                                                  cutoff=14))
        assert torch.allclose(viewer, ws, atol=1e-5)
        other = renderer.latent_ws(G, RenderArgs(pkl=str(fixture_pkl), seed_x=8.0, psi=0.7,
                                                 cutoff=14))
        assert not torch.allclose(other, ws, atol=1e-3)


def test_numpy_conversion_of_outputs(fixture_G, reference):
    ws, c, _ = reference_case(reference, 1)
    with torch.no_grad():
        out = fixture_G.synthesis(ws, c, neural_rendering_resolution=16, noise_mode='const')
    for v in out.values():
        assert isinstance(v.numpy(), np.ndarray)
    assert out['image'].is_contiguous()
    assert F.interpolate(out['image_raw'], size=8).shape == (1, 3, 8, 8)


def _camera_frame(session, planes, ws, nrr, options):
    """The per-camera frame function a session captures in a CUDA graph."""
    return fastframe.camera_frame(
        session.G.ray_sampler, session.G.superresolution, session._plane_table(planes),
        session._folded_decoder(),
        session._folded_superresolution(ws[:, -1], False), session._workspace, nrr, options,
        True, fastframe.chunk_points(None, ws.device))


def test_camera_frame_function_is_capturable(fixture_G, reference, monkeypatch):
    """What a CUDA graph captures (fast.frame.camera_frame) must not read tensors back to the
    host: checked on CPU by making every host read-back raise while the frame function runs."""
    ws, c0, _ = reference_case(reference, 0)
    _, c1, _ = reference_case(reference, 1)
    G = fixture_G
    options = {**G.rendering_kwargs, 'ray_start': 'auto', 'ray_end': 'auto'}
    with torch.no_grad():
        planes5d = G.session.planes(ws, noise_mode='const')
        frame = _camera_frame(G.session, planes5d, ws, 32, options)
        forbid_host_reads(monkeypatch)
        out0 = frame(c0)
        out1 = frame(c1)
        monkeypatch.undo()
        ref = G.synthesis(ws, c1, neural_rendering_resolution=32, noise_mode='const',
                          deterministic=True, rendering_overrides=options, faithful=True)
    assert not torch.equal(out0['image_raw'], out1['image_raw'])
    for key in ref:
        assert relative_rms(out1[key], ref[key]) < FP32, key


def test_cpu_workers_keep_thread_settings_and_results(fixture_G, reference):
    import threading
    from eg3d_runtime.fast import parallel
    ws, c, _ = reference_case(reference, 1)
    n = torch.get_num_threads()
    kw = dict(neural_rendering_resolution=32, noise_mode='const', deterministic=True,
              superresolution=False)
    with torch.no_grad():
        pooled = fixture_G.synthesis(ws, c, **kw)
        parallel.set_enabled(False)
        try:
            inline = fixture_G.synthesis(ws, c, **kw)
        finally:
            parallel.set_enabled(True)
    assert torch.get_num_threads() == n
    seen = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert seen == [n]                       # threads created later are not limited to 1
    assert parallel.parallel_map(lambda i: i * i, range(5)) == [0, 1, 4, 9, 16]
    for key in inline:
        assert torch.allclose(pooled[key], inline[key], atol=1e-6), key


@pytest.mark.parametrize('fused', [True, False])
def test_decoder_probe_answers_give_the_same_colours(fixture_G, monkeypatch, fused):
    """Both answers of the fused linear+sigmoid probe (machine-dependent) give the decoder's
    colours; the probe leaves the global random numbers alone."""
    monkeypatch.setattr(fastrender, '_FUSED_LINEAR', None)
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    monkeypatch.setattr(fastrender, '_probe_fused_linear', lambda: fused)
    decoder = fastrender.FoldedDecoder(fixture_G.decoder)
    assert torch.equal(torch.rand(1), expected) and decoder.fused == fused
    feats = torch.randn(1, 3, 50, 32)
    with torch.no_grad():
        ref = fixture_G.decoder(feats)
        _, rgb = decoder(feats[0].sum(0))
    assert relative_rms(rgb, ref['rgb'][0]) < 1e-5


def test_first_fast_frame_is_reproducible_from_the_seed(fixture_G, reference, monkeypatch):
    """A fresh generator's first frame (one-off probes included) draws the same random numbers
    as later ones."""
    monkeypatch.setattr(fastrender, '_FUSED_LINEAR', None)
    G = copy.deepcopy(fixture_G)
    ws, c, _ = reference_case(reference, 0)
    frames = []
    for _ in range(2):
        torch.manual_seed(3)
        with torch.no_grad():
            frames.append(G.synthesis(ws, c, neural_rendering_resolution=16, noise_mode='const',
                                      superresolution=False)['image_raw'])
    assert torch.equal(frames[0], frames[1])


def test_cache_checks_do_not_read_device_values(fixture_G, reference, monkeypatch):
    """On CUDA, comparing a w with the cached one would make the host wait for the GPU before
    every frame. Simulated on the CPU: the caches of planes and folded super-resolution know
    the same ws tensor again without reading it, take another tensor as new (and render it
    right), and never call torch.equal."""
    G = copy.deepcopy(fixture_G)
    monkeypatch.setattr(tensor_keys, 'reading_waits', lambda device: True)
    ws, c0, _ = reference_case(reference, 0)
    _, c1, _ = reference_case(reference, 1)
    kw = dict(neural_rendering_resolution=16, noise_mode='const', deterministic=True)
    compared = []
    equal = torch.equal
    monkeypatch.setattr(torch, 'equal', lambda *a: compared.append(1) or equal(*a))
    with torch.no_grad():
        G.synthesis(ws, c0, **kw)
        st = G.session
        planes, folded = st._backbone, st._sr
        G.synthesis(ws, c1, **kw)                         # camera change, same ws tensor
        assert st._backbone is planes and st._sr is folded
        other = ws + 0.1
        new = G.synthesis(other, c1, **kw)
        same_values = G.synthesis(other.clone(), c1, **kw)   # another tensor: refolded
        assert st._sr is not folded
    assert compared == []
    monkeypatch.undo()
    with torch.no_grad():
        expected = copy.deepcopy(fixture_G).synthesis(other, c1, faithful=True, **kw)
    for key in expected:
        assert relative_rms(new[key], expected[key]) < FP32, key
        assert torch.equal(same_values[key], new[key]), key


def test_backbone_makes_no_host_sync_after_the_first_call(fixture_G, reference, monkeypatch):
    """What capturing the backbone in a CUDA graph needs (graphs.py), checked on the CPU with
    CUDA's choice of convolutions and cache checks: after one call, folding and running the
    backbone for a new w reads no tensor value on the host."""
    G = copy.deepcopy(fixture_G)
    monkeypatch.setattr(fastconv, 'choose_method', lambda device, h_in, kind, *a, **k:
                        'polyphase' if kind == 'up3' else 'direct')
    monkeypatch.setattr(tensor_keys, 'reading_waits', lambda device: True)
    ws, _, _ = reference_case(reference, 0)
    session = Session(G, precision='fp32')
    with torch.no_grad():
        session.planes(ws, 'const')
        expected = Session(copy.deepcopy(fixture_G), precision='fp32').planes(ws + 0.1, 'const')
        reads = []

        def counted(owner, name):
            original = getattr(owner, name)
            monkeypatch.setattr(owner, name, lambda *a, **k: reads.append(name) or original(*a, **k))
        for name in ('cpu', 'item', 'tolist', 'numpy', '__bool__', '__float__', '__int__'):
            counted(torch.Tensor, name)
        for name in ('allclose', 'equal'):
            counted(torch, name)
        planes = session.planes(ws + 0.1, 'const')
        monkeypatch.undo()
    assert reads == []
    assert relative_rms(planes, expected) < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_failed_capture_leaves_eager_random_sampling_working():
    """A capture that fails (here: a host synchronisation while capturing) leaves torch's random
    generator in capture mode; the eager frame that follows samples at random, as the training
    fakes' ray marching does, and must run."""
    from eg3d_runtime.fast import graphs

    def frame(c):
        if torch.cuda.is_current_stream_capturing():
            torch.cuda.synchronize()
        return {'out': c + torch.rand_like(c)}

    cache = graphs.GraphCache()
    c = torch.zeros(4, device='cuda')
    with pytest.warns(UserWarning, match='capture of the camera failed'):
        out = cache.run('camera', 0, frame, c)['out']
    assert cache.failed == {'camera'}
    assert ((out >= 0) & (out < 1)).all()
    assert torch.rand(3, device='cuda').shape == (3,)


def test_graph_cache_keeps_a_few_per_part_and_a_failed_capture_stops_only_its_part(monkeypatch):
    """GraphCache's policy, with capture simulated: a generator being trained makes a new
    backbone graph per weight version, so only the latest few are kept, apart from the camera
    graphs; a part whose capture fails runs eagerly and leaves the other part graphed."""
    from types import SimpleNamespace

    from eg3d_runtime.fast import graphs

    unsupported = SimpleNamespace(device='cuda:7')

    class Captured:
        def __init__(self, fn, x):
            if x is unsupported:
                raise RuntimeError('operation not permitted when stream is capturing')
            self.fn = fn

        def __call__(self, x):
            return self.fn(x)

    monkeypatch.setattr(graphs, 'GraphFrame', Captured)
    released = []
    monkeypatch.setattr(graphs, 'release_random_state', released.append)
    cache = graphs.GraphCache()
    for version in range(5):
        for kind in ('backbone', 'camera'):
            assert cache.run(kind, version, lambda x: {'out': x}, 1) == {'out': 1}
    kept = list(cache.graphs)
    assert [k for k in kept if k[0] == 'backbone'] == [('backbone', 3), ('backbone', 4)]
    assert len([k for k in kept if k[0] == 'camera']) == 5
    with pytest.warns(UserWarning, match='capture of the backbone failed'):
        assert cache.run('backbone', 9, lambda x: {'out': x}, unsupported) == \
            {'out': unsupported}
    assert cache.failed == {'backbone'}
    assert released == ['cuda:7']      # the random generator leaves capture mode first


def test_a_new_latent_refills_what_a_captured_frame_reads(fixture_G, reference):
    """The per-camera CUDA graph reads the plane table and the folded super-resolution weights
    it was captured with. Simulated on the CPU with the frame function itself: built for one
    latent, then called after another latent's planes and w were prepared, it must render the
    other latent exactly as a fresh generator does."""
    G = copy.deepcopy(fixture_G)
    ws, c, nrr = reference_case(reference, 0)
    other = ws + 0.2
    kw = dict(neural_rendering_resolution=nrr, noise_mode='const', deterministic=True)
    options = dict(G.rendering_kwargs)
    st = G.session
    with torch.no_grad():
        first = _camera_frame(st, st.planes(ws, noise_mode='const'), ws, nrr, options)
        table, folded = st._table[3], st._sr[2]
        _camera_frame(st, st.planes(other, noise_mode='const'), other, nrr, options)
        assert st._table[3] is table and st._sr[2] is folded       # refilled, not replaced
        replayed = first(c)
        expected = copy.deepcopy(fixture_G).synthesis(other, c, **kw)
    for key in expected:
        assert relative_rms(replayed[key], expected[key]) < 1e-6, key


def test_refold_refuses_other_layers():
    """Folded weights of another shape or setting are not copied over (a new graph is needed)."""
    from eg3d_runtime.fast.blocks import refold_into
    a = [fastconv.FixedConv('conv1', torch.ones(4, 3, 1, 1), torch.zeros(4), lrelu=False)]
    b = [fastconv.FixedConv('conv1', torch.full((4, 3, 1, 1), 2.0), torch.ones(4), lrelu=False)]
    wider = [fastconv.FixedConv('conv1', torch.ones(5, 3, 1, 1), torch.zeros(5), lrelu=False)]
    clamped = [fastconv.FixedConv('conv1', torch.ones(4, 3, 1, 1), torch.zeros(4), lrelu=False,
                                  clamp=256)]
    assert not refold_into(a, wider) and not refold_into(a, clamped)
    assert torch.equal(a[0].weight, torch.ones(4, 3, 1, 1))           # nothing copied
    weight = a[0].weight
    assert refold_into(a, b)
    assert a[0].weight is weight and torch.equal(weight, b[0].weight)
    assert torch.equal(a[0].bias, torch.ones(4))
