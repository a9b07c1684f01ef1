"""`python -m eg3d_runtime.train`: the official EG3D train.py command line (spec 4.3), same option
names and defaults, on this project's runtime, CPU or CUDA, one process or many.

Launch modes: one process (`--gpus 1`); `--gpus N` spawns N processes on this machine (NCCL on
CUDA, gloo on CPU); under `torchrun` (multi-node) the process group comes from torchrun's
environment and `--gpus` must equal its world size.

Differences from the official script, on purpose: `--cfg demo` (a small network for the procedural
data, trainable on a CPU); fractional `--kimg`/`--tick`; `--resume` continues the image counter
and every schedule of the snapshot (`--resume_restart True` gives the official restart at 0 with
blur and pose-conditioning fades off); a clean stop on SIGINT/SIGTERM or a `stop-request` file in
the run directory (network snapshot, then exit).
"""
import argparse
import json
import os
import re
import signal
import sys
import tempfile

import torch

from . import configs
from .devices import cuda_available
from .training import run_files

METRIC_NAMES = ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'ppl2_wend', 'eqt50k_int',
                'eqt50k_frac', 'eqr50k', 'fid50k', 'kid50k', 'pr50k3', 'is50k')
STOP_FILE = 'stop-request'
SNAPSHOT_RE = re.compile(r'network-snapshot-(\d+)\.pkl$')


class TrainError(ValueError):
    """A problem with the command line, the dataset or a resume file: one line for the user."""


def parse_bool(text):
    value = str(text).strip().lower()
    if value in ('true', '1', 'yes', 'y', 't', 'on'):
        return True
    if value in ('false', '0', 'no', 'n', 'f', 'off'):
        return False
    raise argparse.ArgumentTypeError(f"'{text}' is not a boolean (True/False)")


def _ranged(kind, lo=None, hi=None):
    def parse(text):
        value = kind(text)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f'{value} is not in [{lo}, {hi}]')
        return value
    return parse


def _grid_size(text):
    match = re.fullmatch(r'\s*(\d+)\s*x\s*(\d+)\s*', str(text))
    if not match or min(int(match.group(1)), int(match.group(2))) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a grid size like 8x8")
    return int(match.group(1)), int(match.group(2))


def build_parser():
    p = argparse.ArgumentParser(prog='python -m eg3d_runtime.train',
                                description='Train EG3D (official train.py options).')
    a = p.add_argument
    a('--outdir', required=True, help='Where to save the results')
    a('--cfg', required=True, choices=['ffhq', 'afhq', 'shapenet', 'demo'], help='Base configuration')
    a('--data', required=True, help='Training data (zip or directory)')
    a('--gpus', required=True, type=_ranged(int, 1), help='Number of processes (GPUs)')
    a('--batch', required=True, type=_ranged(int, 1), help='Total batch size')
    a('--gamma', required=True, type=_ranged(float, 0), help='R1 regularization weight')
    a('--cond', type=parse_bool, default=True, help='Train conditional model')
    a('--mirror', type=parse_bool, default=False, help='Enable dataset x-flips (poses mirrored too)')
    a('--aug', choices=['noaug', 'ada', 'fixed'], default='noaug', help='Augmentation mode')
    a('--resume', help='Resume from a network pickle, a run directory or a released name')
    a('--resume_restart', type=parse_bool, default=False,
      help='Official resume: restart kimg at 0 with blur/GPC fades off')
    a('--freezed', type=_ranged(int, 0), default=0, help='Freeze first layers of D')
    a('--p', type=_ranged(float, 0, 1), default=0.2, help='Probability for --aug=fixed')
    a('--target', type=_ranged(float, 0, 1), default=0.6, help='Target value for --aug=ada')
    a('--batch-gpu', dest='batch_gpu', type=_ranged(int, 1), help='Limit batch size per GPU')
    a('--cbase', type=_ranged(int, 1), help='Capacity multiplier (default 32768; demo 2048)')
    a('--cmax', type=_ranged(int, 1), help='Max. feature maps (default 512; demo 64)')
    a('--glr', type=_ranged(float, 0), help='G learning rate (default 0.0025)')
    a('--dlr', type=_ranged(float, 0), default=0.002, help='D learning rate')
    a('--map-depth', dest='map_depth', type=_ranged(int, 1), default=2, help='Mapping network depth')
    a('--mbstd-group', dest='mbstd_group', type=_ranged(int, 1), default=4,
      help='Minibatch std group size')
    a('--desc', help='String to include in result dir name')
    a('--metrics', help='Quality metrics, comma separated or none (default fid50k_full; demo none)')
    a('--inception', help='Inception weights file for FID (default: $EG3D_INCEPTION_PATH or the '
      'cache, fetched on first use)')
    a('--kimg', type=_ranged(float, 0.001), default=25000, help='Total training duration (kimg)')
    a('--tick', type=_ranged(float, 0.001), default=4, help='How often to print progress (kimg)')
    a('--snap', type=_ranged(int, 1), default=50, help='How often to save snapshots (ticks)')
    a('--seed', type=_ranged(int, 0), default=0, help='Random seed')
    a('--nobench', type=parse_bool, default=False, help='Disable cuDNN benchmarking')
    a('--workers', type=_ranged(int, 0), default=3, help='DataLoader worker processes')
    a('-n', '--dry-run', dest='dry_run', action='store_true', help='Print options and exit')
    a('--neural_rendering_resolution_initial', type=_ranged(int, 1),
      help='Resolution to render at (default 64; demo 32)')
    a('--neural_rendering_resolution_final', type=_ranged(int, 1), default=None,
      help='Final resolution to render at, if blending')
    a('--neural_rendering_resolution_fade_kimg', type=_ranged(float, 0), default=1000,
      help='Kimg to blend resolution over')
    a('--blur_fade_kimg', type=_ranged(float, 0), help='Blur over how many kimg (default 200; '
      'demo 20)')
    a('--grid', type=_grid_size, help='Tiles of the fakes*.png grids, WxH (default: the official '
      'size for the resolution, e.g. 32x32 at 64 px; demo 8x8)')
    a('--gen_pose_cond', type=parse_bool, default=False, help='Enable generator pose conditioning')
    a('--c-scale', dest='c_scale', type=_ranged(float, 0), default=1, help='Scale factor for c')
    a('--c-noise', dest='c_noise', type=_ranged(float, 0), default=0, help='Unused (official too)')
    a('--gpc_reg_prob', type=_ranged(float, 0), default=0.5, help='Pose-swap probability')
    a('--gpc_reg_fade_kimg', type=_ranged(float, 0), default=1000, help='Length of swapping fade')
    a('--disc_c_noise', type=_ranged(float, 0), default=0, help='D pose noise (label std units)')
    a('--sr_noise_mode', choices=['random', 'none'], default='none', help='SR noise mode')
    a('--resume_blur', type=parse_bool, default=False, help='Keep blur and GPC fades on resume')
    a('--sr_num_fp16_res', type=_ranged(int, 0), default=4, help='SR fp16 resolutions')
    a('--g_num_fp16_res', type=_ranged(int, 0), default=0, help='G fp16 resolutions')
    a('--d_num_fp16_res', type=_ranged(int, 0), default=4, help='D fp16 resolutions')
    a('--sr_first_cutoff', type=_ranged(int, 2), default=2, help='Unused (official too)')
    a('--sr_first_stopband', type=_ranged(float, 2), default=2 ** 2.1, help='Unused (official too)')
    a('--style_mixing_prob', type=_ranged(float, 0, 1), default=0, help='Style-mixing probability')
    a('--sr-module', dest='sr_module', help='Override SR module class path')
    a('--density_reg', type=_ranged(float, 0), default=0.25, help='Density regularization strength')
    a('--density_reg_every', type=_ranged(float, 1), default=4, help='Lazy density reg interval')
    a('--density_reg_p_dist', type=_ranged(float, 0), default=0.004, help='Density reg distance')
    a('--reg_type', choices=['l1', 'l1-alt', 'monotonic-detach', 'monotonic-fixed',
                             'total-variation'], default='l1', help='Density regularization type')
    a('--decoder_lr_mul', type=_ranged(float, 0), default=1, help='Decoder learning rate multiplier')
    return p


def _resolve_defaults(opts):
    """Options whose default depends on --cfg (only the demo network differs)."""
    demo = opts.cfg == 'demo'
    for name, official in (('cbase', 32768), ('cmax', 512),
                           ('neural_rendering_resolution_initial', 64),
                           ('metrics', 'fid50k_full'), ('blur_fade_kimg', 200), ('grid', None)):
        if getattr(opts, name) is None:
            setattr(opts, name, configs.DEMO_DEFAULTS[name] if demo else official)
    if isinstance(opts.grid, str):
        opts.grid = _grid_size(opts.grid)
    metrics = [] if opts.metrics.strip().lower() == 'none' else \
        [m.strip() for m in opts.metrics.split(',') if m.strip()]
    from .metrics import metric_main
    for m in metrics:
        if m not in METRIC_NAMES and not metric_main.is_valid_metric(m):
            raise TrainError(f"--metrics: unknown metric '{m}'")
    opts.metrics = metrics


def _dataset_kwargs(opts):
    from .training.dataset import DatasetError, ImageFolderDataset
    try:
        dataset = ImageFolderDataset(path=opts.data, use_labels=True, max_size=None, xflip=False)
    except (DatasetError, OSError) as e:
        raise TrainError(f'--data: {e}') from None
    kwargs = dict(dataset.training_set_kwargs)
    kwargs['max_size'] = len(dataset)
    kwargs['resolution'] = dataset.resolution
    if opts.cond and not dataset.has_labels:
        raise TrainError(f'--data {opts.data}: --cond=True requires labels (dataset.json) '
                         'in the dataset')
    kwargs['use_labels'] = opts.cond
    kwargs['xflip'] = opts.mirror
    kwargs['random_seed'] = opts.seed
    return kwargs, dataset


def build_options(opts):
    """The official training_options.json content (spec 7.2 key order) for parsed `opts`."""
    _resolve_defaults(opts)
    if opts.batch % opts.gpus != 0:
        raise TrainError('--batch must be a multiple of --gpus')
    batch_gpu = opts.batch_gpu or opts.batch // opts.gpus
    if opts.batch % (opts.gpus * batch_gpu) != 0:
        raise TrainError('--batch must be a multiple of --gpus times --batch-gpu')
    if batch_gpu < opts.mbstd_group:
        raise TrainError('--batch-gpu cannot be smaller than --mbstd-group')
    training_set_kwargs, dataset = _dataset_kwargs(opts)
    try:
        rendering = configs.rendering_kwargs(
            opts.cfg, dataset.resolution, gen_pose_cond=opts.gen_pose_cond,
            gpc_reg_prob=opts.gpc_reg_prob, c_scale=opts.c_scale, sr_noise_mode=opts.sr_noise_mode,
            density_reg=opts.density_reg, density_reg_p_dist=opts.density_reg_p_dist,
            reg_type=opts.reg_type, decoder_lr_mul=opts.decoder_lr_mul, sr_module=opts.sr_module)
    except ValueError as e:
        raise TrainError(f'--cfg {opts.cfg} with {dataset.resolution}x{dataset.resolution} data '
                         f'({opts.data}): {e}; use --sr-module') from None
    sr_kwargs = {'channel_base': opts.cbase, 'channel_max': opts.cmax,
                 'fused_modconv_default': 'inference_only'}
    c = {
        'G_kwargs': {'class_name': 'training.triplane.TriPlaneGenerator', 'z_dim': 512,
                     'w_dim': 512, 'mapping_kwargs': {'num_layers': opts.map_depth},
                     'channel_base': opts.cbase, 'channel_max': opts.cmax,
                     'fused_modconv_default': 'inference_only', 'rendering_kwargs': rendering,
                     'num_fp16_res': opts.g_num_fp16_res, 'sr_num_fp16_res': opts.sr_num_fp16_res,
                     'sr_kwargs': sr_kwargs,
                     'conv_clamp': 256 if opts.g_num_fp16_res > 0 else None},
        'D_kwargs': {'class_name': 'training.dual_discriminator.DualDiscriminator',
                     'block_kwargs': {'freeze_layers': opts.freezed}, 'mapping_kwargs': {},
                     'epilogue_kwargs': {'mbstd_group_size': opts.mbstd_group},
                     'channel_base': opts.cbase, 'channel_max': opts.cmax,
                     'disc_c_noise': opts.disc_c_noise, 'num_fp16_res': opts.d_num_fp16_res,
                     'conv_clamp': 256 if opts.d_num_fp16_res > 0 else None},
        'G_opt_kwargs': {'class_name': 'torch.optim.Adam', 'betas': [0, 0.99], 'eps': 1e-08,
                         'lr': 0.0025 if opts.glr is None else opts.glr},
        'D_opt_kwargs': {'class_name': 'torch.optim.Adam', 'betas': [0, 0.99], 'eps': 1e-08,
                         'lr': opts.dlr},
        'loss_kwargs': {'class_name': 'training.loss.StyleGAN2Loss', 'r1_gamma': opts.gamma,
                        'style_mixing_prob': opts.style_mixing_prob,
                        'filter_mode': 'antialiased', 'blur_init_sigma': 10,
                        'blur_fade_kimg': opts.batch * opts.blur_fade_kimg / 32,
                        'gpc_reg_prob': opts.gpc_reg_prob if opts.gen_pose_cond else None,
                        'gpc_reg_fade_kimg': opts.gpc_reg_fade_kimg,
                        'dual_discrimination': True,
                        'neural_rendering_resolution_initial':
                            opts.neural_rendering_resolution_initial,
                        'neural_rendering_resolution_final': opts.neural_rendering_resolution_final,
                        'neural_rendering_resolution_fade_kimg':
                            opts.neural_rendering_resolution_fade_kimg},
        'data_loader_kwargs': {'pin_memory': True, 'prefetch_factor': 2,
                               'num_workers': opts.workers},
        'training_set_kwargs': training_set_kwargs,
        'num_gpus': opts.gpus, 'batch_size': opts.batch, 'batch_gpu': batch_gpu,
        'metrics': opts.metrics, 'total_kimg': opts.kimg, 'kimg_per_tick': opts.tick,
        'image_snapshot_ticks': opts.snap, 'network_snapshot_ticks': opts.snap,
        'random_seed': opts.seed, 'ema_kimg': opts.batch * 10 / 32,
    }
    if opts.cfg == 'demo':
        c['G_kwargs']['plane_resolution'] = configs.DEMO_PLANE_RESOLUTION
    if opts.density_reg > 0:
        c['G_reg_interval'] = opts.density_reg_every
    if opts.aug != 'noaug':
        c['augment_kwargs'] = {'class_name': 'training.augment.AugmentPipe', **{
            k: 1 for k in ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac',
                           'brightness', 'contrast', 'lumaflip', 'hue', 'saturation')}}
        if opts.aug == 'ada':
            c['ada_target'] = opts.target
        else:
            c['augment_p'] = opts.p
    if opts.resume is not None:
        c['resume_pkl'] = opts.resume
        if opts.resume_restart:
            c['ada_kimg'] = 100
            c['ema_rampup'] = None
            if not opts.resume_blur:
                c['loss_kwargs']['blur_init_sigma'] = 0
                c['loss_kwargs']['gpc_reg_fade_kimg'] = 0
    if opts.nobench:
        c['cudnn_benchmark'] = False
    if opts.grid is not None:
        c['image_grid_size'] = list(opts.grid)
    if opts.inception is not None:
        c['inception_path'] = opts.inception
    return c, dataset


# ------------------------------------------------------------------------------------- resume
def latest_snapshot(run_dir):
    """Path of the network-snapshot-*.pkl with the highest kimg in `run_dir`, or None."""
    try:
        names = [n for n in os.listdir(run_dir) if SNAPSHOT_RE.match(n)]
    except OSError:
        return None
    if not names:
        return None
    return os.path.join(run_dir, max(names, key=lambda n: int(SNAPSHOT_RE.match(n).group(1))))


def resolve_resume_path(text):
    """A pickle path, a run directory (its latest snapshot) or a released checkpoint name."""
    if os.path.isdir(text):
        path = latest_snapshot(text)
        if path is None:
            raise TrainError(f'--resume {text}: no network-snapshot-*.pkl in this run directory')
        return path
    if os.path.exists(text):
        return text
    from checkpoints import registry
    ckpt = registry.resolve(os.path.basename(text))
    if ckpt is None:
        raise TrainError(f'--resume {text}: no such file')
    try:
        return str(registry.download(ckpt.name))
    except registry.DownloadError as e:
        raise TrainError(f'--resume {text}: {e}') from None


def load_resume(c, restart):
    """{'path', 'networks', 'cur_nimg'} for the loop; cur_nimg from the snapshot's recorded
    progress (our snapshots) or its file name (official ones), 0 with --resume_restart."""
    from .pickles import load_network_pkl
    from .safe_unpickle import PickleLoadError
    path = c['resume_pkl']
    try:
        networks = load_network_pkl(path)
    except PickleLoadError as e:
        raise TrainError(f'--resume: {e}') from None
    cur_nimg = 0
    if not restart:
        progress = networks.get('progress') or {}
        match = SNAPSHOT_RE.search(os.path.basename(path))
        if isinstance(progress.get('cur_nimg'), int):
            cur_nimg = progress['cur_nimg']
        elif match:
            cur_nimg = int(match.group(1)) * 1000
    return {'path': path, 'networks': networks, 'cur_nimg': cur_nimg}


def resume_args(run_dir):
    """Command-line arguments that continue `run_dir` (ours or official) from its latest
    snapshot, rebuilt from its training_options.json."""
    options_path = os.path.join(run_dir, 'training_options.json')
    try:
        with open(options_path, encoding='utf-8') as f:
            c = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{options_path}: cannot read training options ({e})') from None
    snapshot = latest_snapshot(run_dir)
    if snapshot is None:
        raise ValueError(f'{run_dir}: no network snapshot to resume from')
    match = re.match(r'\d+-(ffhq|afhq|shapenet|demo)-', os.path.basename(os.path.normpath(run_dir)))
    try:
        g, d, loss = c['G_kwargs'], c['D_kwargs'], c['loss_kwargs']
        rk = g['rendering_kwargs']
        cfg = match.group(1) if match else _cfg_from_rendering(rk)
        args = {
            'outdir': os.path.dirname(os.path.abspath(run_dir)), 'cfg': cfg,
            'data': c['training_set_kwargs']['path'], 'gpus': c['num_gpus'],
            'batch': c['batch_size'], 'gamma': loss['r1_gamma'],
            'cond': c['training_set_kwargs'].get('use_labels', True),
            'mirror': c['training_set_kwargs'].get('xflip', False),
            'resume': snapshot, 'batch-gpu': c['batch_gpu'],
            'cbase': g['channel_base'], 'cmax': g['channel_max'],
            'glr': c['G_opt_kwargs']['lr'], 'dlr': c['D_opt_kwargs']['lr'],
            'map-depth': g['mapping_kwargs'].get('num_layers', 2),
            'mbstd-group': d['epilogue_kwargs'].get('mbstd_group_size', 4),
            'freezed': d['block_kwargs'].get('freeze_layers', 0),
            'metrics': ','.join(c.get('metrics', [])) or 'none',
            'kimg': c['total_kimg'], 'tick': c['kimg_per_tick'],
            'snap': c['network_snapshot_ticks'], 'seed': c['random_seed'],
            'workers': c['data_loader_kwargs'].get('num_workers', 3),
            'neural_rendering_resolution_initial': loss['neural_rendering_resolution_initial'],
            'neural_rendering_resolution_fade_kimg': loss['neural_rendering_resolution_fade_kimg'],
            'blur_fade_kimg': loss['blur_fade_kimg'] * 32 / c['batch_size'],
            'gen_pose_cond': not rk['c_gen_conditioning_zero'],
            'c-scale': rk['c_scale'], 'gpc_reg_fade_kimg': loss['gpc_reg_fade_kimg'],
            'disc_c_noise': d.get('disc_c_noise', 0),
            'sr_noise_mode': rk['superresolution_noise_mode'],
            'sr_num_fp16_res': g['sr_num_fp16_res'], 'g_num_fp16_res': g['num_fp16_res'],
            'd_num_fp16_res': d['num_fp16_res'],
            'style_mixing_prob': loss.get('style_mixing_prob', 0),
            'density_reg': rk['density_reg'], 'density_reg_p_dist': rk['density_reg_p_dist'],
            'density_reg_every': c.get('G_reg_interval') or 4, 'reg_type': rk['reg_type'],
            'decoder_lr_mul': rk['decoder_lr_mul'],
        }
        if c.get('inception_path'):
            args['inception'] = c['inception_path']
        if c.get('image_grid_size'):
            args['grid'] = 'x'.join(str(v) for v in c['image_grid_size'])
        if loss.get('neural_rendering_resolution_final') is not None:
            args['neural_rendering_resolution_final'] = loss['neural_rendering_resolution_final']
        if rk.get('gpc_reg_prob') is not None:
            args['gpc_reg_prob'] = rk['gpc_reg_prob']
        if c.get('augment_kwargs'):
            args['aug'] = 'ada' if 'ada_target' in c else 'fixed'
            args['target' if 'ada_target' in c else 'p'] = c.get('ada_target', c.get('augment_p'))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f'{options_path}: missing or malformed entry {e}') from None
    return [f'--{k}={v}' for k, v in args.items()]


def _cfg_from_rendering(rk):
    if rk.get('white_back') and rk.get('ray_start') != 2.25:
        return 'shapenet'
    if rk.get('image_resolution') == 64:
        return 'demo'
    return 'afhq' if rk.get('avg_camera_pivot') == [0, 0, -0.06] else 'ffhq'


# ----------------------------------------------------------------------------------- launch
def _request_stop(run_dir):
    def handler(signum, frame):
        open(os.path.join(run_dir, STOP_FILE), 'a').close()
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                      else signal.SIG_DFL)   # a second signal stops at once
    return handler


def _device_for(rank):
    if cuda_available():
        torch.cuda.set_device(rank % torch.cuda.device_count())
        return torch.device('cuda', rank % torch.cuda.device_count())
    return torch.device('cpu')


def run_process(rank, c, restart, init_method=None, world_size=1):
    """One training process: logging, process group, loop."""
    from .training.loop import TrainingLoop
    run_dir = c['run_dir']
    with run_files.tee_output(os.path.join(run_dir, 'log.txt')):
        device = _device_for(int(os.environ.get('LOCAL_RANK', rank)))
        if world_size > 1 and not torch.distributed.is_initialized():
            backend = 'nccl' if device.type == 'cuda' else 'gloo'
            torch.distributed.init_process_group(backend, init_method=init_method, rank=rank,
                                                 world_size=world_size)
        if device.type == 'cpu' and world_size > 1:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        torch.backends.cudnn.benchmark = c.get('cudnn_benchmark', True)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        stop_file = os.path.join(run_dir, STOP_FILE)
        try:
            resume = load_resume(c, restart) if c.get('resume_pkl') else None
            loop = TrainingLoop(run_dir, c, rank=rank, device=device, resume=resume,
                                should_stop=lambda: rank == 0 and os.path.exists(stop_file))
            loop.run()
        finally:
            if world_size > 1 and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            if rank == 0 and os.path.exists(stop_file):
                os.remove(stop_file)


def _spawned(rank, c, restart, init_method, world_size):
    run_process(rank, c, restart, init_method, world_size)


def _print_options(c, dataset):
    print('\nTraining options:')
    print(json.dumps(c, indent=2))
    print()
    print(f'Output directory:    {c["run_dir"]}')
    print(f'Number of GPUs:      {c["num_gpus"]}')
    print(f'Batch size:          {c["batch_size"]} images')
    print(f'Training duration:   {c["total_kimg"]:g} kimg')
    print(f'Dataset path:        {c["training_set_kwargs"]["path"]}')
    print(f'Dataset size:        {c["training_set_kwargs"]["max_size"]} images')
    print(f'Dataset resolution:  {c["training_set_kwargs"]["resolution"]}')
    print(f'Dataset labels:      {c["training_set_kwargs"]["use_labels"]}')
    print(f'Dataset x-flips:     {c["training_set_kwargs"]["xflip"]}')
    print(flush=True)


def main(argv=None):
    opts = build_parser().parse_args(argv)
    torchrun_world = int(os.environ.get('WORLD_SIZE', '0')) if 'RANK' in os.environ else 0
    try:
        if opts.resume is not None:
            opts.resume = resolve_resume_path(opts.resume)
        c, dataset = build_options(opts)
        if torchrun_world and torchrun_world != opts.gpus:
            raise TrainError(f'--gpus {opts.gpus} does not match torchrun\'s world size '
                             f'{torchrun_world}')
        if not cuda_available() and opts.gpus > 1 and not torchrun_world:
            print(f'No CUDA: running {opts.gpus} CPU processes (gloo).')
        elif cuda_available() and opts.gpus > torch.cuda.device_count() and not torchrun_world:
            raise TrainError(f'--gpus {opts.gpus}: only {torch.cuda.device_count()} CUDA '
                             'devices here (use torchrun for several machines)')
        rank = int(os.environ.get('RANK', 0)) if torchrun_world else 0
        if opts.dry_run:
            c['run_dir'] = run_files.next_run_dir(opts.outdir, opts.cfg, opts.data, opts.gpus,
                                                  opts.batch, opts.gamma, opts.desc)
            _print_options(c, dataset)
            print('Dry run; exiting.')
            return 0
        if torchrun_world:
            return _torchrun_main(opts, c, dataset, rank, torchrun_world)
        c['run_dir'] = run_files.create_run_dir(opts.outdir, opts.cfg, opts.data, opts.gpus,
                                                opts.batch, opts.gamma, opts.desc)
        _print_options(c, dataset)
        run_files.write_training_options(c['run_dir'], c)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _request_stop(c['run_dir']))
        print('Launching processes...', flush=True)
        if opts.gpus == 1:
            run_process(0, c, opts.resume_restart)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                init = 'file://' + os.path.abspath(os.path.join(tmp, '.torch_distributed_init'))
                torch.multiprocessing.spawn(_spawned, args=(c, opts.resume_restart, init, opts.gpus),
                                            nprocs=opts.gpus)
    except (TrainError, ValueError, OSError) as e:
        print(f'train: {e}', file=sys.stderr)
        return 1
    return 0


def _torchrun_main(opts, c, dataset, rank, world_size):
    """Under torchrun: rank 0 creates the run directory and tells the others its name."""
    device = _device_for(int(os.environ.get('LOCAL_RANK', rank)))
    torch.distributed.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    holder = [None]
    if rank == 0:
        holder[0] = run_files.create_run_dir(opts.outdir, opts.cfg, opts.data, opts.gpus,
                                             opts.batch, opts.gamma, opts.desc)
        c['run_dir'] = holder[0]
        _print_options(c, dataset)
        run_files.write_training_options(holder[0], c)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _request_stop(holder[0]))
    torch.distributed.broadcast_object_list(holder, src=0)
    c['run_dir'] = holder[0]
    run_process(rank, c, opts.resume_restart, init_method='env://', world_size=world_size)
    return 0


if __name__ == '__main__':
    sys.exit(main())
