"""Training: the official command line, run directory, snapshots, resume, clean stop, several
processes (gloo on CPU) against one."""
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import PIL.Image
import pytest
import torch

from eg3d_runtime.commands import dataset_tool, train
from eg3d_runtime.training.resume import resume_args
from eg3d_runtime.pickles import load_network_pkl, save_network_pkl
from eg3d_runtime.run_directory import latest_snapshot
from eg3d_runtime.training.loop import TrainingLoop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--cfg', 'demo', '--gpus', '1', '--batch', '4', '--gamma', '1', '--cbase', '256',
        '--cmax', '16', '--workers', '0', '--grid', '2x2', '--metrics', 'none']
OFFICIAL_STATS = ['Loss/scores/fake', 'Loss/signs/fake', 'Loss/G/loss', 'Loss/scores/real',
                  'Loss/signs/real', 'Loss/D/loss', 'Progress/tick', 'Progress/kimg',
                  'Timing/total_sec', 'Timing/sec_per_tick', 'Timing/sec_per_kimg',
                  'Timing/maintenance_sec', 'Resources/cpu_mem_gb', 'Resources/peak_gpu_mem_gb',
                  'Resources/peak_gpu_mem_reserved_gb', 'Progress/augment', 'Timing/total_hours',
                  'Timing/total_days']


@pytest.fixture(scope='module')
def toys(tmp_path_factory):
    dest = tmp_path_factory.mktemp('data') / 'toys.zip'
    assert dataset_tool.main(['--source', 'procedural', '--dest', str(dest), '--resolution', '64',
                              '--max-images', '12']) == 0
    return str(dest)


def run_train(args, timeout=300):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, '-m', 'eg3d_runtime.train', *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def output_dir(stdout):
    return next(line.split(':', 1)[1].strip() for line in stdout.splitlines()
                if line.startswith('Output directory:'))


def stats_lines(run_dir):
    with open(os.path.join(run_dir, 'stats.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def tiny_run(toys, tmp_path_factory):
    """Two ticks of the tiny network: the run directory every other test looks at."""
    outdir = tmp_path_factory.mktemp('runs')
    proc = run_train(['--outdir', str(outdir), '--data', toys, '--kimg', '0.008', '--tick',
                      '0.004', '--snap', '1', *TINY, '--metrics', 'fid1k_full', '--inception',
                      str(outdir / 'missing-inception.pth')])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return output_dir(proc.stdout)


def test_one_tick_writes_the_official_run_directory(tiny_run):
    names = set(os.listdir(tiny_run))
    assert {'training_options.json', 'log.txt', 'stats.jsonl', 'reals.png', 'fakes000000.png',
            'fakes000000_raw.png', 'fakes000000_depth.png',
            'network-snapshot-000000.pkl'} <= names
    assert os.path.basename(tiny_run) == '00000-demo-toys-gpus1-batch4-gamma1'
    with open(os.path.join(tiny_run, 'training_options.json')) as f:
        options = json.load(f)
    assert list(options)[:7] == ['G_kwargs', 'D_kwargs', 'G_opt_kwargs', 'D_opt_kwargs',
                                 'loss_kwargs', 'data_loader_kwargs', 'training_set_kwargs']
    assert list(options)[-1] == 'run_dir' and options['run_dir'] == tiny_run
    assert options['training_set_kwargs']['class_name'] == 'training.dataset.ImageFolderDataset'
    assert options['G_reg_interval'] == 4 and options['ema_kimg'] == 4 * 10 / 32
    lines = stats_lines(tiny_run)
    assert [line['Progress/kimg']['mean'] for line in lines] == [0.004, 0.008]
    log = open(os.path.join(tiny_run, 'log.txt')).read()
    assert 'tick 0     kimg 0.0' in log and 'Exiting...' in log
    # No Inception weights: the metric says so once and training goes on.
    assert log.count('missing-inception.pth') == 1 and 'training goes on without fid1k_full' in log
    fakes = PIL.Image.open(os.path.join(tiny_run, 'fakes000000.png'))
    assert fakes.size == (2 * 64, 2 * 64) and fakes.mode == 'RGB'
    assert PIL.Image.open(os.path.join(tiny_run, 'fakes000000_raw.png')).size == (64, 64)
    assert PIL.Image.open(os.path.join(tiny_run, 'fakes000000_depth.png')).mode == 'L'


def test_stats_hold_every_official_name_and_the_schedules(tiny_run):
    last = stats_lines(tiny_run)[-1]
    assert set(OFFICIAL_STATS) <= set(last)
    assert {'Timing/Gmain', 'Timing/Greg', 'Timing/Dmain', 'Timing/Dreg'} <= set(last)
    assert last['Schedule/neural_rendering_resolution']['mean'] == 32
    assert last['Schedule/G_lr']['mean'] == pytest.approx(0.0025 * 4 / 5)
    assert 0 < last['Schedule/blur_sigma']['mean'] < 10
    assert list(last)[-1] == 'timestamp'


def test_snapshot_round_trips_bit_exactly_through_our_loader(toys, tmp_path):
    opts = train.build_parser().parse_args(['--outdir', str(tmp_path), '--data', toys,
                                            '--kimg', '0.004', *TINY])
    options, _dataset = train.build_options(opts)
    options['run_dir'] = str(tmp_path)
    loop = TrainingLoop(str(tmp_path), options)
    loop.run()
    loaded = load_network_pkl(tmp_path / 'network-snapshot-000000.pkl')
    # the fakes grid renders without CUDA graphs (one use per tick, new weights every tick)
    assert not loop.G_ema.session.options.cuda_graphs
    for name in ('G', 'D', 'G_ema'):
        ours, theirs = getattr(loop, name).state_dict(), loaded[name].state_dict()
        assert list(ours) == list(theirs)
        for key in ours:
            assert torch.equal(ours[key].cpu(), theirs[key]), f'{name}.{key}'
    assert loaded['G_ema'].rendering_kwargs == loop.G_ema.rendering_kwargs
    assert loaded['progress'] == {'cur_nimg': 4}
    assert loaded['training_set_kwargs']['path'] == toys


def test_ticks_within_one_kimg_keep_every_snapshot(tiny_run):
    """--kimg 0.008 --tick 0.004 --snap 1: the official name for the first, the fraction for
    the second (it used to overwrite the first)."""
    names = sorted(n for n in os.listdir(tiny_run) if n.startswith('network-snapshot-'))
    assert names == ['network-snapshot-000000.008.pkl', 'network-snapshot-000000.pkl']
    assert {'fakes000000.png', 'fakes000000.008.png'} <= set(os.listdir(tiny_run))
    assert load_network_pkl(os.path.join(tiny_run, names[0]), keys=('G_ema',))['progress'] == \
        {'cur_nimg': 8}


def test_resume_continues_the_image_counter(tiny_run, toys, tmp_path):
    snapshot = os.path.join(tiny_run, 'network-snapshot-000000.008.pkl')
    proc = run_train(['--outdir', str(tmp_path), '--data', toys, '--kimg', '0.016', '--tick',
                      '0.004', '--snap', '1', '--resume', snapshot, *TINY])
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = output_dir(proc.stdout)
    first = stats_lines(run_dir)[0]
    assert first['Progress/kimg']['mean'] == pytest.approx(0.012)   # 8 images + one batch
    assert f'Resuming from "{snapshot}"' in open(os.path.join(run_dir, 'log.txt')).read()
    assert load_network_pkl(os.path.join(run_dir, 'network-snapshot-000000.016.pkl'),
                            keys=('G_ema',))['progress'] == {'cur_nimg': 16}

    restart = run_train(['--outdir', str(tmp_path), '--data', toys, '--kimg', '0.004',
                         '--resume', tiny_run, '--resume_restart', 'True', *TINY])
    assert restart.returncode == 0, restart.stderr[-2000:]
    assert stats_lines(output_dir(restart.stdout))[0]['Progress/kimg']['mean'] == 0.004
    with open(os.path.join(output_dir(restart.stdout), 'training_options.json')) as f:
        options = json.load(f)
    assert options['loss_kwargs']['blur_init_sigma'] == 0 and options['ema_rampup'] is None


def test_resume_from_a_snapshot_without_progress_uses_its_name(tiny_run, toys, tmp_path):
    """Official snapshots record no image counter: it comes from the file name."""
    nets = load_network_pkl(os.path.join(tiny_run, 'network-snapshot-000000.pkl'))
    official = tmp_path / 'network-snapshot-000005.pkl'
    save_network_pkl(official, {'training_set_kwargs': nets['training_set_kwargs'],
                                'G': nets['G'], 'D': nets['D'], 'G_ema': nets['G_ema'],
                                'augment_pipe': None})
    proc = run_train(['--outdir', str(tmp_path), '--data', toys, '--kimg', '5.004',
                      '--resume', str(official), *TINY])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert stats_lines(output_dir(proc.stdout))[0]['Progress/kimg']['mean'] == 5.004


def test_resume_args_rebuild_the_command(tiny_run):
    args = resume_args(tiny_run)
    opts = train.build_parser().parse_args(args)
    assert opts.resume.endswith('network-snapshot-000000.008.pkl')     # the latest
    assert (opts.cfg, opts.batch, opts.cbase, opts.cmax, opts.kimg, opts.grid) == \
        ('demo', 4, 256, 16, 0.008, (2, 2))


def test_stop_request_snapshots_and_exits(toys, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, '-m', 'eg3d_runtime.train', '--outdir',
                             str(tmp_path), '--data', toys, '--kimg', '1000', '--tick', '0.004',
                             '--snap', '1000', *TINY, '--aug', 'ada', '--gen_pose_cond', 'True',
                             '--style_mixing_prob', '0.9'], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        run_dir = None
        while time.time() < deadline:
            runs = [d for d in tmp_path.iterdir() if d.is_dir()]
            # the tick's stats line is written after its snapshot
            if runs and all((runs[0] / name).exists()
                            for name in ('network-snapshot-000000.pkl', 'stats.jsonl')):
                run_dir = runs[0]
                break
            time.sleep(0.5)
        assert run_dir is not None, 'no first snapshot'
        before = len(stats_lines(run_dir))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert 'Stopped by request.' in open(run_dir / 'log.txt').read()
    assert not (run_dir / 'stop-request').exists()
    assert len(stats_lines(run_dir)) > before
    final = load_network_pkl(latest_snapshot(run_dir))
    assert final['progress']['cur_nimg'] > 4
    assert final['G_ema'] is not None and final['augment_pipe'] is not None
    assert final['G_ema'].rendering_kwargs['gpc_reg_prob'] == 0.5


def test_bad_labels_give_one_line_naming_the_file(tmp_path):
    data = tmp_path / 'bad.zip'
    image = tmp_path / 'x.png'
    PIL.Image.new('RGB', (64, 64)).save(image)
    with zipfile.ZipFile(data, 'w') as z:
        z.write(image, 'img0.png')
        z.write(image, 'img1.png')
        z.writestr('dataset.json', json.dumps({'labels': [['img0.png', [0.0] * 25],
                                                          ['img1.png', [1.0, 2.0]]]}))
    proc = run_train(['--outdir', str(tmp_path / 'runs'), '--data', str(data), *TINY])
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'bad.zip' in lines[0] and 'img1.png' in lines[0]
    assert not (tmp_path / 'runs').exists() or not os.listdir(tmp_path / 'runs')


def test_seed_commands_resolve_like_the_official_script(tmp_path):
    """The docs' commands parse with the same names and defaults (dry run on our data)."""
    for res, cfg, extra in ((512, 'ffhq', ['--gamma=1', '--gen_pose_cond=True',
                                           '--neural_rendering_resolution_final=128']),
                            (512, 'afhq', ['--gamma=5', '--gpc_reg_prob=0.8', '--aug=ada']),
                            (128, 'shapenet', ['--gamma=0.3'])):
        data = tmp_path / f'{cfg}.zip'
        with zipfile.ZipFile(data, 'w') as z:
            image = tmp_path / 'x.png'
            PIL.Image.new('RGB', (res, res)).save(image)
            z.write(image, 'img0.png')
            z.writestr('dataset.json', json.dumps({'labels': [['img0.png', [0.5] * 25]]}))
        opts = train.build_parser().parse_args([f'--outdir={tmp_path}', f'--cfg={cfg}',
                                                f'--data={data}', '--gpus=1', '--batch=32',
                                                *extra])
        c, _ = train.build_options(opts)
        assert c['G_kwargs']['channel_base'] == 32768 and c['G_kwargs']['channel_max'] == 512
        assert c['metrics'] == ['fid50k_full'] and c['total_kimg'] == 25000
        assert c['loss_kwargs']['blur_fade_kimg'] == 200
        assert c['G_kwargs']['rendering_kwargs']['image_resolution'] == res
        assert 'image_grid_size' not in c and 'plane_resolution' not in c['G_kwargs']
    assert c['G_kwargs']['rendering_kwargs']['white_back'] is True
    ffhq = train.build_parser().parse_args([f'--outdir={tmp_path}', '--cfg=ffhq',
                                            f'--data={tmp_path / "ffhq.zip"}', '--gpus=1',
                                            '--batch=32', '--gamma=1', '--aug=ada'])
    c, _ = train.build_options(ffhq)
    assert c['ada_target'] == 0.6 and c['augment_kwargs']['class_name'] == \
        'training.augment.AugmentPipe'


def test_two_gloo_processes_compute_the_update_of_one(toys, tmp_path):
    """--gpus 2 on CPU (gloo) and one process with the same total batch: same networks."""
    common = ['--data', toys, '--kimg', '0.008', '--tick', '1', '--snap', '1', '--batch', '8',
              '--batch-gpu', '4', '--cfg', 'demo', '--gamma', '1', '--cbase', '256', '--cmax',
              '16', '--workers', '0', '--grid', '2x2', '--metrics', 'none']
    one = run_train(['--outdir', str(tmp_path / 'one'), '--gpus', '1', *common], timeout=600)
    two = run_train(['--outdir', str(tmp_path / 'two'), '--gpus', '2', *common], timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    a = load_network_pkl(os.path.join(output_dir(one.stdout), 'network-snapshot-000000.pkl'))
    b = load_network_pkl(os.path.join(output_dir(two.stdout), 'network-snapshot-000000.pkl'))
    for name in ('G', 'D', 'G_ema'):
        sa, sb = a[name].state_dict(), b[name].state_dict()
        # w_avg is a per-process running average, never synchronised (official too).
        worst = max(float((sa[k] - sb[k]).abs().max() / (sa[k].abs().max() + 1e-8))
                    for k in sa if not k.endswith('w_avg'))
        assert worst < 1e-4, name


def test_torchrun_launch(toys, tmp_path):
    """torchrun (here one node, two CPU processes) provides the process group."""
    torchrun = os.path.join(os.path.dirname(sys.executable), 'torchrun')
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([torchrun, '--nnodes', '1', '--nproc-per-node', '2', '-m',
                           'eg3d_runtime.train', '--outdir', str(tmp_path), '--gpus', '2',
                           '--data', toys, '--kimg', '0.008', '--batch', '8', *TINY[:2],
                           *TINY[6:], '--reg_type', 'monotonic-detach'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name == '00000-demo-toys-gpus2-batch8-gamma1'
    assert 'Distributing across 2 GPUs...' in (run_dir / 'log.txt').read_text()
    assert load_network_pkl(run_dir / 'network-snapshot-000000.pkl')['G_ema'] is not None


@pytest.mark.slow
def test_resume_from_an_official_snapshot(fixture_pkl, tmp_path):
    """The fixture (official structure, ffhq at 512 with cbase 1024 / cmax 32) as --resume."""
    data = tmp_path / 'faces512.zip'
    image = tmp_path / 'x.png'
    PIL.Image.new('RGB', (512, 512), (200, 150, 120)).save(image)
    with zipfile.ZipFile(data, 'w') as z:
        for i in range(4):
            z.write(image, f'img{i}.png')
        z.writestr('dataset.json', json.dumps({'labels': [[f'img{i}.png', [0.5] * 25]
                                                          for i in range(4)]}))
    proc = run_train(['--outdir', str(tmp_path / 'runs'), '--cfg', 'ffhq', '--data', str(data),
                      '--gpus', '1', '--batch', '1', '--mbstd-group', '1', '--gamma', '1',
                      '--gen_pose_cond', 'True',
                      '--cbase', '1024', '--cmax', '32', '--resume', str(fixture_pkl),
                      '--kimg', '0.004', '--grid', '1x1', '--metrics', 'none', '--workers', '0'],
                     timeout=900)                # batch 1: about 4 GB of memory at 512x512
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = output_dir(proc.stdout)
    assert f'Resuming from "{fixture_pkl}"' in open(os.path.join(run_dir, 'log.txt')).read()
    before = load_network_pkl(fixture_pkl)
    after = load_network_pkl(os.path.join(run_dir, 'network-snapshot-000000.pkl'))
    for name in ('G', 'D'):
        old, new = before[name].state_dict(), after[name].state_dict()
        for key in [k for k in new if k.endswith('.weight')][:5]:
            change = float((new[key] - old[key]).abs().mean() / old[key].abs().mean())
            assert change < 0.01, f'{name}.{key} moved by {change:.3f}: not resumed'


def test_fakes_grid_holds_one_chunk_on_the_device_at_a_time(monkeypatch):
    """Maintenance must not grow with the grid: each chunk of the fakes grid leaves the device
    before the next one is rendered (device outputs are simulated: on a CPU `.cpu()` is free)."""
    import weakref
    from types import SimpleNamespace

    from eg3d_runtime.training import loop as loop_module

    alive, most_alive = weakref.WeakSet(), [0]

    class OnDevice:
        def __init__(self, value):
            self.value = value

        def cpu(self):
            return self.value

    def frame(ws, c, settings):
        outs = {k: OnDevice(torch.full((len(ws), 1, 2, 2), float(len(alive))))
                for k in ('image', 'image_raw', 'image_depth')}
        alive.update(outs.values())
        most_alive[0] = max(most_alive[0], len(alive))
        return SimpleNamespace(**outs)

    G_ema = SimpleNamespace(mapping=lambda z, c: z, session=SimpleNamespace(frame=frame))

    saved = {}
    monkeypatch.setattr(loop_module, 'save_fake_grids',
                        lambda merged, *a: saved.update(merged))
    chunks = 6
    state = SimpleNamespace(G_ema=G_ema, device='cpu', run_dir='unused', cur_nimg=0,
                            grid_size=(chunks, 2), grid_z=torch.zeros(2 * chunks, 4).split(2),
                            grid_c=torch.zeros(2 * chunks, 25).split(2),
                            _snapshot_kimg=lambda: 0)
    TrainingLoop._save_fakes(state)
    assert most_alive[0] == 3                     # one chunk's three outputs, never more
    assert {k: v.shape[0] for k, v in saved.items()} == dict.fromkeys(
        ('image', 'image_raw', 'image_depth'), 2 * chunks)


def test_no_lazy_regularisation_builds_one_optimizer_per_network():
    """--density_reg 0 (G_reg_interval None): one 'both' phase with the official betas
    [0, 0.99], whose int 0 torch's Adam refuses unless made a float."""
    from eg3d_runtime.training.loop import _phases
    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    adam = {'class_name': 'torch.optim.Adam', 'lr': 0.002, 'betas': [0, 0.99], 'eps': 1e-8}
    phases = _phases(G, D, {'G_opt_kwargs': adam, 'D_opt_kwargs': adam, 'G_reg_interval': None,
                            'D_reg_interval': 16})
    assert [p.name for p in phases] == ['Gboth', 'Dmain', 'Dreg']
    assert phases[0].opt.param_groups[0]['betas'] == (0.0, 0.99)


def _options(data, *args):
    opts = train.build_parser().parse_args(['--cfg', 'demo', '--gpus', '1', '--gamma', '1',
                                            '--workers', '0', '--grid', '2x2', '--data', data,
                                            '--outdir', 'unused', *args])
    return train.build_options(opts)[0]


def test_training_memory_estimate_covers_measured_steps(toys, tmp_path):
    """The estimate train checks --batch against (training/footprint.py) grows with the
    micro-batch and covers the measured peak (RSS above the constructed loop) of two real steps
    of the demo network at batch 4, the first running all four phases. Its upper side is checked
    against the figure measured in a fresh process (640 MB at batch 4): within a long test run,
    malloc reuses memory earlier tests left resident, so the RSS rise there can be far smaller
    (201 MB seen in a full suite)."""
    from eg3d_runtime.memory import PeakMemory, rss_bytes
    from eg3d_runtime.training.footprint import process_bytes
    sizes = [process_bytes(_options(toys, '--batch', str(b))) for b in (4, 8, 16)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert process_bytes(_options(toys, '--batch', '16', '--batch-gpu', '4')) < sizes[2]
    c = dict(_options(toys, '--batch', '4'), run_dir=str(tmp_path))
    loop = TrainingLoop(str(tmp_path), c, device='cpu')
    before = rss_bytes()
    with PeakMemory(torch.device('cpu')) as mem:
        loop._train_batch(0)
        loop._train_batch(1)
    measured = mem.peak - before
    assert measured <= sizes[0] <= 4 * 640 * 2**20, (measured / 2**20, sizes[0] / 2**20)


def test_training_memory_is_checked_per_device(toys, monkeypatch):
    """CPU processes share the machine's memory (all --gpus of them count); on CUDA each
    process has its own device."""
    from eg3d_runtime.training import footprint
    asked = []
    monkeypatch.setattr(footprint, 'require', lambda needed, what, hint, device:
                        asked.append((needed, device.type)))
    c = _options(toys, '--batch', '8', '--gpus', '2')
    footprint.require_training_memory(c, torch.device('cpu'))
    footprint.require_training_memory(c, torch.device('cuda', 0))
    assert asked == [(2 * footprint.process_bytes(c), 'cpu'),
                     (footprint.process_bytes(c), 'cuda')]
