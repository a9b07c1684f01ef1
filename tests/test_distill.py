"""Distillation of the procedural renderer (`train --distill`) and the demo quality numbers."""
import json
import os

import numpy as np
import PIL.Image
import pytest
import torch

from eg3d_runtime import procedural, views
from eg3d_runtime.commands import demo_quality as demo_quality_command
from eg3d_runtime.commands import train
from eg3d_runtime.training import demo_quality
from eg3d_runtime.training.resume import resume_args
from eg3d_runtime.run_directory import latest_snapshot
from eg3d_runtime.runs import training_process
from eg3d_runtime.training import distill, run_files
from eg3d_runtime.training.distill import (DistillLoop, FigureDataset, FigureVolumes,
                                           VolumeSamples, edge_band, figure,
                                           reconstruction_losses, volume_losses)

TINY = ['--cfg', 'demo', '--distill', '2', '--distill_resolution', '64',
        '--distill_supersample', '1', '--gpus', '1',
        '--batch', '4', '--gamma', '1', '--cbase', '256', '--cmax', '16', '--workers', '0',
        '--grid', '2x2', '--tick', '1', '--neural_rendering_resolution_initial', '16']
STEPS = 3


def test_every_latent_seed_is_one_figure_for_good():
    assert figure(3) == figure(3) and figure(3) != figure(4)
    data = FigureDataset(figures=2, resolution=64, random_seed=0)
    image, label, k = data[5]
    assert k == 1 and data.get_label(5).tolist() == label.tolist()
    assert np.array_equal(image, data[5][0])
    assert np.array_equal(image.transpose(1, 2, 0), procedural.render_label(figure(1), label, 64))


def _fixed_batch(loop, count=4):
    """Renders, latents and cameras of items 0..count-1, and the loss of G on them."""
    items = [loop.dataset[i] for i in range(count)]
    real = torch.from_numpy(np.stack([i[0] for i in items])).float() / 127.5 - 1
    c = torch.from_numpy(np.stack([i[1] for i in items]))
    z = torch.cat([views.latent(i[2], loop.G.z_dim) for i in items])
    return real, z, c


def _loss(loop, batch):
    real, z, c = batch
    with torch.no_grad():
        fake = loop.loss.run_G(z, c, None, 16)
    losses = reconstruction_losses(fake, real)
    return float((losses['l1'] + losses['edges']).mean())


@pytest.fixture(scope='module')
def distilled(tmp_path_factory):
    """A few distillation steps of the tiny network, run in this process: (run dir, the
    reconstruction loss on a fixed batch before, after, the loop)."""
    run_dir = str(tmp_path_factory.mktemp('run'))
    opts = train.build_parser().parse_args(['--outdir', run_dir, '--kimg', str(STEPS * 0.004),
                                            *TINY])
    c, _dataset = train.build_options(opts)
    run_files.write_training_options(run_dir, c)
    torch.manual_seed(0)
    loop = DistillLoop(run_dir, c)
    batch = _fixed_batch(loop)
    before = _loss(loop, batch)
    loop.run()
    return run_dir, before, _loss(loop, batch), loop


def test_distillation_steps_reduce_the_reconstruction_loss(distilled):
    _run_dir, before, after, _loop = distilled
    assert after < 0.95 * before, (before, after)


def test_truncation_centre_follows_the_latents(distilled):
    loop = distilled[3]
    assert float(loop.G_ema.backbone.mapping.w_avg.abs().mean()) > 0


def test_adversarial_weight_trains_the_discriminator_too(distilled):
    loop = distilled[3]
    assert loop.loss.adversarial_weight == 0    # --distill_adv's default: D stays as built
    loop.loss.adversarial_weight = 0.1
    before = [p.clone() for p in loop.D.parameters()]
    loop._step(1)    # Gmain and Dmain only (the regularisation phases run at step 0)
    assert any(not torch.equal(a, b) for a, b in zip(before, loop.D.parameters()))


def test_distillation_writes_the_official_run_files(distilled):
    run_dir = distilled[0]
    names = set(os.listdir(run_dir))
    assert {'reals.png', 'fakes000000.png', 'fakes000000_raw.png', 'fakes000000_depth.png',
            'network-snapshot-000000.pkl', 'stats.jsonl'} <= names
    assert PIL.Image.open(os.path.join(run_dir, 'reals.png')).size == (128, 128)
    with open(os.path.join(run_dir, 'stats.jsonl')) as f:
        assert 'Loss/distill/l1' in f.readline()


def test_resume_continues_a_distillation(distilled):
    args = resume_args(distilled[0])
    assert '--distill=2' in args and '--distill_resolution=64' in args
    assert '--distill_supersample=1' in args
    c, dataset = train.build_options(train.build_parser().parse_args(args))
    assert c['distill'] == {'adversarial_weight': 0, 'volume_kimg': 0, 'field_kimg': 0,
                            'field_lr': None, 'sr_kimg': 0, 'sr_lr': None, 'sr_edge_weight': 0}
    assert c['resume_pkl'] == str(latest_snapshot(distilled[0]))
    assert dataset.supersample == 1


def test_one_ray_per_pixel_renders_the_same_figure_without_smoothing():
    sharp = FigureDataset(figures=2, resolution=64, random_seed=0, supersample=1)
    smooth = FigureDataset(figures=2, resolution=64, random_seed=0)
    image, label, k = sharp[5]
    assert np.array_equal(image.transpose(1, 2, 0),
                          procedural.render_label(figure(k), label, 64, supersample=1))
    difference = np.abs(image.astype(int) - smooth[5][0]).mean()
    assert 0 < difference < 5            # the edges differ, not the figure
    with pytest.raises(ValueError, match='supersample must be 1 or 2'):
        procedural.render_label(figure(k), label, 64, supersample=3)


def test_distill_run_is_named_after_its_figures(tmp_path, capsys):
    assert train.main(['--outdir', str(tmp_path), *TINY, '-n']) == 0
    assert '00000-demo-figures2-gpus1-batch4-gamma1' in capsys.readouterr().out


def test_trainer_tab_preset_is_a_valid_distillation(tmp_path, capsys):
    form = {'outdir': str(tmp_path), 'data': '', **training_process.PRESETS['demo distill']}
    command = training_process.train_command(form)
    assert command[1:3] == ['-m', 'eg3d_runtime.train']
    assert train.main([*command[3:], '-n']) == 0
    out = capsys.readouterr().out
    assert '-demo-figures64-gpus1-batch8-gamma1' in out
    assert '"lr": 0.01' in out and '"volume_kimg": 10' in out and '"sr_kimg": 16' in out
    assert '"sr_edge_weight": 4' in out and '"field_kimg": 4' in out and '"field_lr": 0.005' in out
    assert '"decoder_lr_mul": 10' in out


def test_distill_refuses_a_dataset(tmp_path, capsys):
    assert train.main(['--outdir', str(tmp_path), *TINY, '--data', str(tmp_path)]) == 1
    assert 'leave out --data' in capsys.readouterr().err


def test_quality_numbers_on_known_images():
    flat = np.full((8, 16, 16, 3), 100, np.uint8)
    assert demo_quality.seed_diversity(flat) == 0
    assert demo_quality.view_change(flat, flat + 10) == 10
    x = np.arange(16)
    ramp = np.broadcast_to((x[None, :] + 2 * x[:, None])[None, :, :, None], (1, 16, 16, 3))
    assert demo_quality.sharpness(ramp.astype(np.uint8)) == pytest.approx(0)
    bowl = np.broadcast_to((x[None, :] ** 2)[None, :, :, None], (1, 16, 16, 3))
    assert demo_quality.sharpness(bowl.astype(np.uint8)) == pytest.approx(4)


def test_quality_script_prints_the_numbers_and_writes_the_grid(distilled, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.setattr(demo_quality, 'SEEDS', (0, 1))    # 6 images instead of 24
    grid = tmp_path / 'grid.png'
    snapshot = os.path.join(distilled[0], 'network-snapshot-000000.pkl')
    assert demo_quality_command.main(['--network', snapshot, '--grid', str(grid)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ('seed diversity', 'view change', 'sharpness'))
    assert PIL.Image.open(grid).size == (2 * 64, 3 * 64)


def test_quality_of_the_figures_themselves(monkeypatch, capsys):
    """--figures measures what a distilled demo learns: seed k's figure from the same yaws, so a
    network's numbers have a ceiling to be read against (and the figures do turn: view change
    above issue 15's target of 8 for the network)."""
    monkeypatch.setattr(demo_quality, 'SEEDS', (0, 1))
    images = demo_quality.render_figures(resolution=64)
    assert images.shape == (3, 2, 64, 64, 3)
    np.testing.assert_array_equal(images[1, 1], procedural.render_label(
        figure(1), procedural.orbit_label(0.0), 64))
    assert demo_quality.measure(images)['view change'] > 8
    assert demo_quality_command.main(['--figures']) == 0
    assert 'view change' in capsys.readouterr().out


def test_volume_targets_are_what_every_view_shows():
    """Where a pixel's ray first enters the figure, volume_targets' colour is the pixel's colour
    (the shading depends on position only), and rays that never enter show the background."""
    obj, label, n = figure(3), procedural.orbit_label(0.4, 0.1), 24
    image = procedural.render_label(obj, label, n, supersample=1).reshape(-1, 3).astype(float)
    origin, dirs = procedural._rays(label[:16].reshape(4, 4), label[16:].reshape(3, 3), n)
    depths = np.linspace(2.0, 3.4, 3000, dtype=np.float32)
    points = origin + depths[None, :, None] * dirs.T[:, None, :]
    inside = procedural.volume_targets(obj, points.reshape(-1, 3))[0].reshape(n * n, -1) < 0
    hit = inside.any(1)
    entry = points[np.arange(n * n), inside.argmax(1)][hit]
    sdf, colour = procedural.volume_targets(obj, entry)
    error = np.abs(colour * 255 - image[hit]).max(1)
    assert hit.sum() > 100 and np.median(error) < 1 and np.quantile(error, 0.9) < 2
    assert (image[~hit] == 255).all(1).mean() > 0.99    # grazing rays aside


def test_volume_samples_cover_the_surface_and_the_cube():
    obj = figure(1)
    points, sdf, colour = procedural.volume_samples(obj, np.random.default_rng(5), 4000)
    again = procedural.volume_samples(obj, np.random.default_rng(5), 4000)
    assert all(np.array_equal(a, b) for a, b in zip((points, sdf, colour), again))
    assert points.shape == (4000, 3) and sdf.shape == (4000,) and colour.shape == (4000, 3)
    np.testing.assert_allclose(sdf, procedural.sdf(obj, points), atol=1e-6)
    assert np.median(np.abs(sdf[:2000])) < 0.01 and (sdf[:2000] < 0).mean() > 0.3
    far = np.abs(points[2000:]).max(1)
    assert far.max() <= 0.7 and (far > 0.5).mean() > 0.5 and (sdf[2000:] < 0).mean() < 0.1
    assert colour.min() >= 0 and colour.max() <= 1


def test_volume_losses_favour_the_figure():
    points, sdf, colour = (torch.from_numpy(a)[None] for a in procedural.volume_samples(
        figure(0), np.random.default_rng(0), 2000))
    samples = VolumeSamples(points, sdf, colour)
    # The raw density whose opacity over a step of 0.066 is the soft occupancy of the surface.
    occupancy = torch.sigmoid(-sdf / 0.005).clamp(1e-4, 1 - 1e-4)
    density = -torch.log1p(-occupancy) / 0.066
    soft = (density + torch.log(-torch.expm1(-density)) + 1)[..., None]
    padded = torch.cat([colour, torch.zeros(1, 2000, 29)], -1)
    right = volume_losses({'sigma': soft, 'rgb': padded}, samples, 0.066)
    empty = volume_losses({'sigma': torch.full_like(soft, -50), 'rgb': padded}, samples, 0.066)
    grey = volume_losses({'sigma': soft, 'rgb': torch.full_like(padded, 0.5)}, samples, 0.066)
    assert float(right['occupancy']) < 1e-3 < 0.1 < float(empty['occupancy'])
    assert float(right['colour']) < 1e-6 < 0.1 < float(grey['colour'])


def test_edge_band_is_the_two_pixels_either_side_of_a_step():
    images = torch.full([2, 3, 12, 12], -1.0)
    images[0, 1, :, 6:] = 1                      # a vertical step between columns 5 and 6
    images[1, :, 5, 5] = -1 + 0.4 * distill.EDGE_STEP   # too small a step to count
    band = edge_band(images)
    assert band.shape == (2, 1, 12, 12)
    assert torch.equal(band[0, 0], torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0.]).expand(12, 12))
    assert not band[1].any()
    # on a toy figure: its outline, eyes and beak, a small part of the image
    figure_image = torch.from_numpy(procedural.render_label(
        figure(0), procedural.orbit_label(0.3), 128)).permute(2, 0, 1)[None].float() / 127.5 - 1
    assert 0.03 < float(edge_band(figure_image).mean()) < 0.25


@pytest.fixture(scope='module')
def volume_run(tmp_path_factory):
    """The tiny distillation with a volume stage of VOLUME_STEPS steps, one image step, a field
    stage of FIELD_STEPS, then a super-resolution stage of SR_STEPS, a tick per step: (run dir,
    volume losses on fixed samples before and after, the loop, the new network's render of
    them, the parameters that had gradients in each step of the field and the
    super-resolution stage: {'field': [names, ...], 'sr': [...]})"""
    run_dir = str(tmp_path_factory.mktemp('volume'))
    volume_kimg, field_kimg, sr_kimg = VOLUME_STEPS * 0.004, FIELD_STEPS * 0.004, SR_STEPS * 0.004
    opts = train.build_parser().parse_args([
        '--outdir', run_dir, *TINY, '--kimg', str(volume_kimg + field_kimg + sr_kimg + 0.004),
        '--tick', '0.004', '--distill_volume_kimg', str(volume_kimg),
        '--distill_field_kimg', str(field_kimg), '--distill_field_lr', '0.02',
        '--distill_sr_kimg', str(sr_kimg), '--distill_sr_lr', '0.01', '--glr', '0.03',
        '--distill_sr_edge_weight', '4'])
    c, _dataset = train.build_options(opts)
    run_files.write_training_options(run_dir, c)
    torch.manual_seed(0)
    loop = DistillLoop(run_dir, c)
    items = [FigureVolumes(loop.dataset, 2000)[i] for i in range(2)]
    samples = VolumeSamples(*(torch.from_numpy(np.stack([i[j] for i in items])) for j in range(3)))
    z = torch.cat([views.latent(i[4], loop.G.z_dim) for i in items])

    def loss():
        with torch.no_grad():
            ws = loop.G.mapping(z, torch.zeros(2, 25))
            out = loop.G.sample_mixed(samples.points, samples.points, ws)
            return {k: float(v.mean()) for k, v in volume_losses(out, samples, 0.066).items()}

    before = loss()
    fresh = loop.G.synthesis(loop.G.mapping(z, torch.zeros(2, 25)), torch.from_numpy(
        np.stack([i[3] for i in items])), neural_rendering_resolution=32)
    trained = {'field': [], 'sr': []}

    def recording(stage, fit):
        def fit_and_record(*args, **kwargs):
            fit(*args, **kwargs)
            trained[stage].append({name for name, p in loop.G.named_parameters()
                                   if p.grad is not None})
        return fit_and_record
    with pytest.MonkeyPatch.context() as patch:     # cheaper steps
        patch.setattr(distill, 'VOLUME_POINTS', 2048)
        patch.setattr(distill, 'SR_VIEWS', 6)
        patch.setattr(loop.loss, '_fit_superresolution',
                      recording('sr', loop.loss._fit_superresolution))
        patch.setattr(loop.loss, '_fit_field', recording('field', loop.loss._fit_field))
        loop.run()
    return run_dir, before, loss(), loop, fresh, trained


VOLUME_STEPS = 12
FIELD_STEPS = 2
SR_STEPS = 2


def test_volume_stage_fits_density_and_colour(volume_run):
    before, after = volume_run[1:3]
    # The colours move toward the shading at once; the opacity follows slowly (it needs
    # densities in the tens: on the demo network, hundreds of steps).
    assert after['occupancy'] < 0.998 * before['occupancy'], (before, after)
    assert after['colour'] < 0.7 * before['colour'], (before, after)


def test_stages_follow_one_another(volume_run):
    run_dir, loop = volume_run[0], volume_run[3]
    with open(os.path.join(run_dir, 'stats.jsonl')) as f:
        ticks = [json.loads(line) for line in f]

    def count(tick, name):
        return tick.get(name, {}).get('num', 0)
    stages = [('images' if count(t, 'Loss/distill/l1') else 'volume'
               if count(t, 'Loss/distill/occupancy') else None) for t in ticks]
    assert stages == ['volume'] * VOLUME_STEPS + ['images'] * (1 + FIELD_STEPS + SR_STEPS)
    # the edge band's extra L1 is in the super-resolution stage only
    assert [count(t, 'Loss/distill/edge_band') > 0 for t in ticks] == \
        [False] * (VOLUME_STEPS + 1 + FIELD_STEPS) + [True] * SR_STEPS
    # --glr 0.03 until the field stage, --distill_field_lr 0.02 in it, --distill_sr_lr 0.01 in
    # the super-resolution stage (times the official ratio of lazy regularisation)
    ratio = loop.o['G_reg_interval'] / (loop.o['G_reg_interval'] + 1)
    lrs = [t['Schedule/G_lr']['mean'] / ratio for t in ticks[VOLUME_STEPS:]]
    assert lrs == pytest.approx([0.03] + [0.02] * FIELD_STEPS + [0.01] * SR_STEPS)
    # G_ema ramps up anew from the end of the volume stage, so it follows G closely (without
    # the restart it lags by about 40% of the last step: 1e-2 here).
    assert loop._objective_start_nimg() == loop.volume_nimg
    for ema, param in zip(loop.G_ema.parameters(), loop.G.parameters()):
        torch.testing.assert_close(ema, param, rtol=0, atol=2e-3)


def test_superresolution_stage_rate_does_not_depend_on_glr(tmp_path):
    """--distill_sr_lr is the stage's rate whatever --glr is, 0 included (it was derived as a
    multiple of --glr, so --glr 0 gave nan); Adam has momentum in the stage only."""
    opts = train.build_parser().parse_args([
        '--outdir', str(tmp_path), *TINY, '--kimg', '0.008', '--distill_sr_kimg', '0.004',
        '--distill_sr_lr', '0.01', '--glr', '0'])
    c, _dataset = train.build_options(opts)
    run_files.write_training_options(str(tmp_path), c)
    loop = DistillLoop(str(tmp_path), c)
    ratio = c['G_reg_interval'] / (c['G_reg_interval'] + 1)

    def g_settings(key):
        return [group[key] for phase in loop.phases if phase.name[0] == 'G'
                for group in phase.opt.param_groups]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distill, 'SR_VIEWS', 2)
        loop.cur_nimg = loop.sr_start_nimg
        loop._next_batch()
        assert g_settings('lr') == pytest.approx([0.01 * ratio] * len(g_settings('lr')))
        assert {tuple(b) for b in g_settings('betas')} == {(0.9 ** ratio, 0.99 ** ratio)}
        loop.cur_nimg = 0
        loop._next_batch()
        assert set(g_settings('lr')) == {0}
        assert {tuple(b) for b in g_settings('betas')} == {(0.0, 0.99 ** ratio)}


def test_superresolution_stage_trains_it_alone_on_renders_of_the_frozen_field(volume_run):
    loop, trained = volume_run[3], volume_run[5]['sr']
    assert len(trained) == SR_STEPS
    sr = {'superresolution.' + name for name, _ in loop.G.superresolution.named_parameters()}
    assert all(names and names <= sr for names in trained), trained
    rendered, labels, figures = loop._sr_views
    assert len(figures) == 6 and rendered.features.shape == (6, 32, 16, 16)
    image, label, k = loop.dataset[5]
    assert int(figures[5]) == k and labels[5].tolist() == label.tolist()
    torch.testing.assert_close(rendered.target[5], torch.from_numpy(image).float() / 127.5 - 1)


def test_field_stage_trains_the_field_alone(volume_run):
    """The field stage fits tri-planes and decoder only: the super-resolution is not run, and
    the mapping, whose last w the super-resolution reads, stays as it is."""
    loop, trained = volume_run[3], volume_run[5]['field']
    assert len(trained) == FIELD_STEPS
    for names in trained:
        assert any(n.startswith('backbone.synthesis.') for n in names), names
        assert any(n.startswith('decoder.') for n in names), names
        assert all(n.startswith(('backbone.synthesis.', 'decoder.')) for n in names), names
    assert loop.field_start_nimg == pytest.approx((VOLUME_STEPS + 1) * 4)
    assert loop.sr_start_nimg == pytest.approx((VOLUME_STEPS + 1 + FIELD_STEPS) * 4)


def test_new_distillation_starts_superresolution_as_upsampling(volume_run):
    """With the super-resolution's toRGB at zero, 'image' is image_raw upsampled (interior
    pixels; the border differs by padding), whatever the volume stage made of image_raw."""
    fresh = volume_run[4]
    image, raw = fresh['image'], fresh['image_raw']
    upsampled = torch.nn.functional.interpolate(raw, size=image.shape[-1], mode='bilinear',
                                                align_corners=False)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    assert float((image - upsampled)[inner].abs().max()) < 0.05 < float(raw.std())


def test_distillation_truncates_half_the_latents_toward_the_centre(volume_run):
    loop = volume_run[3]
    z, c = torch.randn(64, loop.G.z_dim), torch.zeros(64, 25)
    torch.manual_seed(1)
    ws = loop.loss._mapping(z, c, update_emas=False)
    full = loop.G.mapping(z, c)
    w_avg = loop.G.backbone.mapping.w_avg
    psi = ((ws - w_avg) * (full - w_avg)).sum([1, 2]) / (full - w_avg).square().sum([1, 2])
    kept = torch.isclose(psi, torch.ones(()), atol=1e-4)
    assert 16 < int(kept.sum()) < 48
    assert float(psi[~kept].min()) >= 0.6 - 1e-4 and float(psi[~kept].max()) < 1


def test_resume_keeps_the_volume_stage(volume_run):
    args = resume_args(volume_run[0])
    assert f'--distill_volume_kimg={VOLUME_STEPS * 0.004}' in args
    assert f'--distill_sr_kimg={SR_STEPS * 0.004}' in args and '--distill_sr_lr=0.01' in args
    assert f'--distill_field_kimg={FIELD_STEPS * 0.004}' in args
    assert '--distill_field_lr=0.02' in args
    assert '--distill_sr_edge_weight=4.0' in args
