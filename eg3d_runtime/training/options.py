"""The official train.py options (names, types, defaults: docs/eg3d-reference.md 4.3) and the
training options they resolve to (the content of training_options.json, docs/eg3d-reference.md
4.2, 7.2).

`--cfg demo` and a few options of ours are documented in README "Train"; everything else means
what it means in the official script.
"""
import argparse
import re

from .. import configs

METRIC_NAMES = ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'ppl2_wend', 'eqt50k_int',
                'eqt50k_frac', 'eqr50k', 'fid50k', 'kid50k', 'pr50k3', 'is50k')


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
    a('--outdir', help='Where to save the results (required unless --bench)')
    a('--cfg', required=True, choices=['ffhq', 'afhq', 'shapenet', 'demo'], help='Base configuration')
    a('--data', help='Training data (zip or directory); required unless --distill')
    a('--distill', type=_ranged(int, 1), metavar='FIGURES',
      help='Instead of GAN training on --data: distil the procedural renderer, seed k < FIGURES '
      'being toy figure k (training/distill.py)')
    a('--distill_resolution', type=_ranged(int, 1), default=128,
      help='Image resolution of --distill')
    a('--distill_supersample', type=int, choices=[1, 2], default=2,
      help='Rays per pixel edge of the --distill renders: 2 (2x2, smooth edges) or 1 (about 3x '
      'faster renders, aliased edges)')
    a('--distill_adv', type=_ranged(float, 0), default=0,
      help='Weight of the adversarial loss added to the reconstruction loss of --distill')
    a('--distill_volume_kimg', type=_ranged(float, 0), default=0,
      help='--distill fits the density and colour at points around the figures (no renders) '
      'for this many kimg before the image loss takes over')
    a('--distill_field_kimg', type=_ranged(float, 0), default=0,
      help='--distill fits only the radiance field to the renders at the neural rendering '
      'resolution (image_raw; no super-resolution) for this many kimg before '
      '--distill_sr_kimg (or the end of the run)')
    a('--distill_field_lr', type=_ranged(float, 0), help='G learning rate of '
      '--distill_field_kimg (default: --glr)')
    a('--distill_sr_kimg', type=_ranged(float, 0), default=0,
      help='--distill trains only the super-resolution, on renders of the frozen field, in the '
      'last this many kimg of the run')
    a('--distill_sr_lr', type=_ranged(float, 0), help='G learning rate of --distill_sr_kimg '
      '(default: --glr)')
    a('--distill_sr_edge_weight', type=_ranged(float, 0), default=0,
      help='In --distill_sr_kimg, the image L1 counts 1 + this many times on the two pixels '
      'either side of the targets\' edges')
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
    a('--bench', type=_ranged(int, 2), nargs='?', const=4, default=None, metavar='STEPS',
      help='Train STEPS steps (default 4) in a temporary directory, print where the time and '
      'memory go, delete it')
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
    from ..metrics import metric_main
    for m in metrics:
        if m not in METRIC_NAMES and not metric_main.is_valid_metric(m):
            raise TrainError(f"--metrics: unknown metric '{m}'")
    opts.metrics = metrics


def _distill_dataset_kwargs(opts):
    from . import distill
    if opts.data is not None or opts.metrics or opts.mirror:
        raise TrainError('--distill renders its own images: leave out --data and --mirror, '
                         'use --metrics none')
    kwargs = distill.training_set_kwargs(opts.distill, opts.distill_resolution, opts.seed,
                                         opts.distill_supersample)
    return kwargs, distill.FigureDataset.from_kwargs(kwargs)


def _dataset_kwargs(opts):
    from .dataset import DatasetError, ImageFolderDataset
    if opts.distill is not None:
        return _distill_dataset_kwargs(opts)
    if opts.data is None:
        raise TrainError('--data is required (or --distill FIGURES)')
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
    """The official training_options.json content (key order: docs/eg3d-reference.md 7.2) for
    parsed `opts`."""
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
                         f'({training_set_kwargs["path"]}): {e}; use --sr-module') from None
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
    if opts.distill is not None:
        c['distill'] = {'adversarial_weight': opts.distill_adv,
                        'volume_kimg': opts.distill_volume_kimg,
                        'field_kimg': opts.distill_field_kimg, 'field_lr': opts.distill_field_lr,
                        'sr_kimg': opts.distill_sr_kimg, 'sr_lr': opts.distill_sr_lr,
                        'sr_edge_weight': opts.distill_sr_edge_weight}
    return c, dataset


