"""The viewer's engine side without a window: frames, caches, the worker's newest-only rule."""
import threading

import pytest
import torch

from eg3d_runtime import views
from eg3d_runtime.frames.frame_renderer import FrameRenderer, seed_blend
from eg3d_runtime.frames.render_args import RenderArgs
from viz.render_worker import RenderWorker


def test_seed_blend():
    assert seed_blend(3, 0) == [(3, 1.0)]
    pairs = seed_blend(2.25, 1.5)
    assert {s for s, _ in pairs} == {102, 202, 103, 203}
    assert sum(w for _, w in pairs) == pytest.approx(1)


def test_render_args_compare_by_value():
    a = RenderArgs(pkl='x', yaw=0.1)
    assert a == RenderArgs(pkl='x', yaw=0.1) and hash(a) == hash(RenderArgs(pkl='x', yaw=0.1))
    assert a.with_(yaw=0.2) != a
    assert a.with_(yaw=0.2).latent_key() == a.latent_key()


@pytest.fixture(scope='module')
def renderer(fixture_pkl):
    return FrameRenderer('cpu')


def fast_args(pkl, **kw):
    return RenderArgs(pkl=str(pkl), nrr=16, depth_mult=0.25, importance_mult=0.25, **kw)


def test_preview_and_render_types(renderer, fixture_pkl):
    base = fast_args(fixture_pkl)
    for render_type in ('image', 'image_raw', 'image_depth', 'normals'):
        result = renderer.render(base.with_(render_type=render_type))
        assert result.error is None, result.error
        side = 512 if render_type == 'image' else 16          # super-resolved or neural
        assert result.image.shape == (side, side, 3) and result.image.dtype == torch.uint8
        assert result.quality == 'full'
    preview = renderer.render(base.with_(preview=True))
    nrr = preview.nrr                  # chosen by the adaptive preview, not args.nrr
    assert preview.quality == 'preview' and preview.image.shape == (nrr, nrr, 3)
    assert nrr <= 64 and preview.samples[0] <= 48
    depth = renderer.render(base.with_(render_type='image_depth')).image
    assert depth.max() == 255 and depth.min() == 0


def test_camera_change_reuses_planes(renderer, fixture_pkl):
    args = fast_args(fixture_pkl, preview=True)
    renderer.render(args)
    moved = renderer.render(args.with_(yaw=0.3))
    assert moved.backbone_reused
    new_seed = renderer.render(args.with_(seed_x=5.0))
    assert not new_seed.backbone_reused


def test_blended_seeds_are_all_conditioned(renderer, fixture_pkl):
    """The official viewer maps all but the last blended seed with c = 0
    (docs/eg3d-reference.md 8.4); we don't."""
    G = renderer.network(str(fixture_pkl))
    args = fast_args(fixture_pkl, seed_x=0.5)
    with torch.no_grad():
        ws = renderer.latent_ws(G, args)
        cond = renderer.camera(G, 0, 0, args)
        from eg3d_runtime.views import latent
        w0, w1 = (G.mapping(latent(s, 512), cond, truncation_psi=args.psi,
                            truncation_cutoff=args.cutoff) for s in (0, 1))
    assert torch.allclose(ws, (w0 + w1) / 2, atol=1e-5)


def test_errors_are_one_line_results(renderer, tmp_path):
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(b'not a pickle')
    result = renderer.render(RenderArgs(pkl=str(bad)))
    assert result.image is None and result.error.startswith(f'{bad}: ')
    assert '\n' not in result.error
    assert RenderArgs().pkl is None and renderer.render(RenderArgs()).message


class BlockingRenderer:
    """Stands in for the model: each render waits until the test lets it finish."""

    def __init__(self):
        self.release = threading.Event()
        self.rendered = []

    def render(self, args, should_abort, on_progress):
        self.release.wait(timeout=10)
        self.rendered.append(args)
        from eg3d_runtime.frames.frame_renderer import RenderResult
        return RenderResult(args=args)


def test_worker_renders_only_the_newest_args():
    fake = BlockingRenderer()
    worker = RenderWorker(fake)
    try:
        assert worker.submit(RenderArgs(yaw=0.0))
        assert not worker.submit(RenderArgs(yaw=0.0))        # identical: nothing to do
        for i in range(1, 20):                                  # GUI keeps going meanwhile
            worker.submit(RenderArgs(yaw=float(i)))
        assert worker.poll() is None and worker.busy
        fake.release.set()
        assert worker.wait_idle(timeout=10)
        assert fake.rendered[-1] == RenderArgs(yaw=19.0)
        assert len(fake.rendered) <= 2                          # stale requests were dropped
        assert worker.poll().args == RenderArgs(yaw=19.0)
    finally:
        fake.release.set()
        worker.close()


def test_warm_up_requests_go_after_real_ones_and_show_nothing():
    fake = BlockingRenderer()
    worker = RenderWorker(fake)
    try:
        worker.warm_up([RenderArgs(yaw=1.0), RenderArgs(yaw=2.0)])
        assert worker.busy
        for _ in range(500):                                    # rendering the first warm-up
            if worker._busy_with is not None:
                break
            threading.Event().wait(0.01)
        worker.submit(RenderArgs(yaw=9.0))                      # the GUI asks meanwhile
        fake.release.set()
        assert worker.wait_idle(timeout=10)
        assert fake.rendered == [RenderArgs(yaw=1.0), RenderArgs(yaw=9.0), RenderArgs(yaw=2.0)]
        assert worker.poll().args == RenderArgs(yaw=9.0)        # only the asked-for frame
        assert worker.poll() is None
    finally:
        fake.release.set()
        worker.close()


def test_the_viewer_opens_its_network_before_the_window(fixture_pkl):
    """visualizer.py starts the worker first: it opens the network and renders a frame of it
    (dropped) while the GUI modules are imported."""
    import visualizer
    options = visualizer.build_parser().parse_args([str(fixture_pkl), '--device', 'cpu',
                                                    '--nrr', '16'])
    worker = visualizer.start_render_worker(options)
    try:
        assert worker.wait_idle(timeout=300)
        renderer = worker._renderer
        assert renderer._pkl == str(fixture_pkl.resolve())     # as the Network widget names it
        assert worker.poll() is None
    finally:
        worker.close()


def test_previews_do_not_measure_the_super_resolution(fixture_pkl, monkeypatch, user_dirs,
                                                      tmp_path):
    """A preview runs no super-resolution: its 'auto' precision is not measured for it (that
    waits for the first full frame) and the Performance panel says so."""
    from eg3d_runtime.fast import precision
    from test_precision import _simulate_timings
    monkeypatch.setenv('EG3D_CPU_BF16', '1')
    precision.forget()
    made = _simulate_timings(monkeypatch, {'fp32': 0.002, 'bf16': 0.02})
    # a network whose session has not resolved 'auto' yet: a file no other test has open (a
    # pickle open elsewhere in the process is shared, with its session's choice)
    pkl = tmp_path / 'fresh.pkl'
    pkl.write_bytes(fixture_pkl.read_bytes())
    renderer = FrameRenderer('cpu')
    preview = renderer.render(fast_args(pkl, preview=True, seed_x=7.0))
    assert preview.precision == 'backbone fp32, no super-resolution' and made == []
    full = renderer.render(fast_args(pkl, seed_x=7.0))
    assert full.precision == 'backbone fp32, super-resolution fp32' and sorted(made) == [
        'bf16', 'fp32']
    precision.forget()


def test_force_fp32_changes_the_arithmetic_of_frames(monkeypatch, user_dirs):
    """Where 'auto' picks bf16 (simulated: native bf16 measured faster), Force FP32 renders
    float32 arithmetic, and the result says which precision ran (Performance panel)."""
    from conftest import REPO, relative_rms
    from eg3d_runtime.fast import precision
    from test_precision import _busy
    monkeypatch.setenv('EG3D_CPU_BF16', '1')
    monkeypatch.setattr(precision, 'superresolution_runner', lambda G, device, dtype, winograd,
                        workspace=None: _busy(0.02 if dtype == torch.float32 else 0.002))
    precision.forget()
    renderer = FrameRenderer('cpu')
    args = RenderArgs(pkl=str(REPO / 'checkpoints' / 'demo.pkl'), noise_mode='const')
    auto = renderer.render(args)
    forced = renderer.render(args.with_(force_fp32=True))
    precision.forget()
    assert auto.error is None and forced.error is None
    assert auto.precision == 'backbone fp32, super-resolution bf16'
    assert forced.precision == 'backbone fp32, super-resolution fp32'
    assert relative_rms(auto.image.float(), forced.image.float()) > 0


def test_a_stale_full_frame_is_abandoned_after_the_backbone(monkeypatch, fixture_pkl):
    """A new latent's full frame asks should_abort again once its tri-planes exist; a frame that
    goes on computes the backbone once and equals the frame rendered in one engine call (random
    noise too: the backbone draws before the ray jitter in both)."""
    from eg3d_runtime.fast import backbone
    backbones = []
    run_backbone = backbone.run_backbone
    monkeypatch.setattr(backbone, 'run_backbone',
                        lambda *a, **kw: backbones.append(1) or run_backbone(*a, **kw))
    args = fast_args(fixture_pkl, noise_mode='random')
    asked = []
    aborted = FrameRenderer('cpu').render(args, should_abort=lambda: asked.append(1) or
                                          len(asked) == 2)
    assert aborted.aborted and len(asked) == 2 and len(backbones) == 1
    backbones.clear()
    renderer = FrameRenderer('cpu')
    split = renderer.render(args)
    assert split.error is None and len(backbones) == 1
    # the frame the engine renders in one call for the same seed
    with torch.no_grad():
        ws = renderer.latent_ws(renderer._G, args)
        torch.manual_seed(args.noise_seed)
        whole = renderer._G.session.frame(ws, renderer.camera(renderer._G, 0, 0, args),
                                          renderer._settings(renderer._G, args))
    assert torch.equal(split.image, views.image_to_uint8(whole.image))
