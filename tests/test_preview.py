"""The adaptive preview policy (fake timings) and preview frames."""
import pytest
import torch

from eg3d_runtime import preview
from eg3d_runtime.preview import AdaptivePreview, PreviewSettings


def fake_time(settings, seconds_per_unit):
    """A renderer whose frame time is proportional to the cost of the settings."""
    return settings.cost * seconds_per_unit


def test_ladder_is_sorted_by_cost_and_ends_at_full_quality():
    costs = [s.cost for s in preview.DEFAULT_LADDER]
    assert costs == sorted(costs)
    assert preview.DEFAULT_LADDER[-1] == PreviewSettings(128, 48, 48)


def test_within_tolerance_nothing_changes():
    ctrl = AdaptivePreview(target_fps=20)
    start = ctrl.settings
    for dt in (0.05, 0.058, 0.042, 0.05, 0.0595, 0.0405):
        assert ctrl.update(dt) == start


def test_too_slow_steps_down_and_too_fast_steps_up():
    ctrl = AdaptivePreview(target_fps=20)
    start = ctrl.index
    ctrl.update(0.2)                      # 4x too slow
    assert ctrl.index < start
    assert ctrl.settings.cost <= preview.DEFAULT_LADDER[start].cost / 4 * 1.0001
    low = ctrl.index
    ctrl.reset()
    ctrl.update(0.001)                    # far too fast: at most max_step_up rungs up
    assert ctrl.index == min(low + ctrl.max_step_up, len(ctrl.ladder) - 1)


@pytest.mark.parametrize('target', [5, 15, 30, 60])
def test_converges_to_the_best_rung_that_holds_the_target(target):
    unit = 1 / 20 / preview.PreviewSettings(64, 16, 16).cost     # 64, 16+16 runs at 20 FPS
    ctrl = AdaptivePreview(target_fps=target, start=0)
    for _ in range(60):
        ctrl.update(fake_time(ctrl.settings, unit))
    t = fake_time(ctrl.settings, unit)
    assert t <= 1.2 / target                                        # holds the target
    better = [s for s in ctrl.ladder if s.cost > ctrl.settings.cost]
    if better:                                                      # next rung would be too slow
        assert fake_time(better[0], unit) > 0.8 / target or t >= 0.8 / target


def test_scaling_follows_square_root_rule():
    """Resolution scales by sqrt(target/measured): a 4x too slow 128^2 frame wants 64^2."""
    ladder = [PreviewSettings(r, 16, 16) for r in (32, 48, 64, 96, 128)]
    ctrl = AdaptivePreview(target_fps=10, ladder=ladder, start=4)
    ctrl.update(0.4)
    assert ctrl.settings.nrr == 64


def test_noisy_timings_do_not_oscillate():
    unit = 1 / 20 / preview.PreviewSettings(64, 16, 16).cost
    ctrl = AdaptivePreview(target_fps=20, start=PreviewSettings(64, 16, 16))
    seen = set()
    for k in range(100):
        noise = 1.15 if k % 2 else 0.87
        ctrl.update(fake_time(ctrl.settings, unit) * noise)
        seen.add(ctrl.settings)
    assert seen == {PreviewSettings(64, 16, 16)}


def test_invalid_target():
    with pytest.raises(ValueError):
        AdaptivePreview(target_fps=0)


def test_ladder_for_network_limits(fixture_G):
    rungs = preview.ladder_for(fixture_G)
    nrr = fixture_G.neural_rendering_resolution
    assert rungs and all(s.nrr <= max(nrr, 32) for s in rungs)
    assert all(s.depth_resolution <= fixture_G.rendering_kwargs['depth_resolution']
               for s in rungs)


def test_render_preview_frame(fixture_G, reference):
    ref, _ = reference
    ws, c = torch.from_numpy(ref['ws0']), torch.from_numpy(ref['c0'])
    settings = PreviewSettings(24, 8, 8)
    session = fixture_G.session
    planes = session.planes(ws)
    out = preview.render_preview(session, ws, c, settings, planes)
    assert out.image is None and out.precision.superresolution is None
    assert (out.nrr, out.samples) == (24, (8, 8)) and not out.planes_computed
    assert out.image_raw.shape == (1, 3, 24, 24)
    skip = preview.render_preview(session, ws, c, settings, planes, empty_space_skipping=True)
    assert torch.isfinite(skip.image_raw).all()
    # a preview equals the full-quality raw rendering at the same settings (no SR involved)
    with torch.no_grad():
        full = fixture_G.synthesis(ws, c, neural_rendering_resolution=24, noise_mode='const',
                                   deterministic=True, superresolution=False, faithful=True,
                                   rendering_overrides=settings.overrides())
        det = preview.render_preview(session, ws, c, settings, deterministic=True)
    assert torch.allclose(det.image_raw, full['image_raw'], atol=1e-4)


def test_drag_adapts_and_produces_textures(fixture_G, reference):
    ref, _ = reference
    ws = torch.from_numpy(ref['ws0'])
    cams = [torch.from_numpy(ref[f'c{i % 3}']) for i in range(6)]
    ctrl = AdaptivePreview(target_fps=1000, ladder=preview.DEFAULT_LADDER[:4], start=3)
    textures = []
    timings = preview.drag(fixture_G.session, ws, cams, ctrl,
                           on_frame=lambda tex, frame: textures.append(tex))
    assert len(timings) == 6 and len(textures) == 6
    assert all(t.dtype == torch.uint8 and t.shape[-1] == 3 for t in textures)
    assert ctrl.index < 3                 # an impossible target pushes towards cheaper rungs
