"""Distillation of the procedural renderer (`train --distill`) and the demo quality numbers."""
import os

import numpy as np
import PIL.Image
import pytest
import torch

from eg3d_runtime import demo_quality, procedural, train, views
from eg3d_runtime.training import run_files
from eg3d_runtime.training.distill import (DistillLoop, FigureDataset, figure,
                                           reconstruction_losses)
from viz.trainer import training_process

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
    assert after < 0.8 * before, (before, after)


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
    args = train.resume_args(distilled[0])
    assert '--distill=2' in args and '--distill_resolution=64' in args
    assert '--distill_supersample=1' in args
    c, dataset = train.build_options(train.build_parser().parse_args(args))
    assert c['distill'] == {'adversarial_weight': 0} and c['resume_pkl'].endswith('000000.pkl')
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
    assert '-demo-figures256-gpus1-batch32-gamma1' in out
    assert '"lr": 0.005' in out and '"cudnn_benchmark": false' in out


def test_distill_refuses_a_dataset(tmp_path, capsys):
    assert train.main(['--outdir', str(tmp_path), *TINY, '--data', 'toys.zip']) == 1
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
    assert demo_quality.main(['--network', snapshot, '--grid', str(grid)]) == 0
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
    assert demo_quality.main(['--figures']) == 0
    assert 'view change' in capsys.readouterr().out
