"""training_options.json (docs/eg3d-reference.md 4.2, 7.2) from the parsed train.py options
(build_options), and back: the option values a run's training_options.json records
(recorded_values, which resume continues the run with). Both follow the option table
(options.OPTIONS), which says where each option is recorded."""
from .. import arguments, configs
from .options import BUILT, METRIC_NAMES, OMIT, OPTIONS, TrainError

_VALUE = object()       # a key of every run: set from OPTIONS, or by build_options itself
_OPTIONAL = object()    # a key of some runs: left out unless something sets it


def _layout():
    """training_options.json with its constants, in the official key order (docs/eg3d-reference.md
    4.2, 7.2); keys of ours after the official ones. A key an option sets that is not here goes
    last in its dict."""
    return {
        'G_kwargs': {'class_name': 'training.triplane.TriPlaneGenerator', 'z_dim': 512,
                     'w_dim': 512, 'mapping_kwargs': {'num_layers': _VALUE},
                     'channel_base': _VALUE, 'channel_max': _VALUE,
                     'fused_modconv_default': 'inference_only', 'rendering_kwargs': _VALUE,
                     'num_fp16_res': _VALUE, 'sr_num_fp16_res': _VALUE,
                     'sr_kwargs': {'channel_base': _VALUE, 'channel_max': _VALUE,
                                   'fused_modconv_default': 'inference_only'},
                     'conv_clamp': _VALUE, 'plane_resolution': _OPTIONAL},
        'D_kwargs': {'class_name': 'training.dual_discriminator.DualDiscriminator',
                     'block_kwargs': {'freeze_layers': _VALUE}, 'mapping_kwargs': {},
                     'epilogue_kwargs': {'mbstd_group_size': _VALUE},
                     'channel_base': _VALUE, 'channel_max': _VALUE, 'disc_c_noise': _VALUE,
                     'num_fp16_res': _VALUE, 'conv_clamp': _VALUE},
        'G_opt_kwargs': {'class_name': 'torch.optim.Adam', 'betas': [0, 0.99], 'eps': 1e-08,
                         'lr': _VALUE},
        'D_opt_kwargs': {'class_name': 'torch.optim.Adam', 'betas': [0, 0.99], 'eps': 1e-08,
                         'lr': _VALUE},
        'loss_kwargs': {'class_name': 'training.loss.StyleGAN2Loss', 'r1_gamma': _VALUE,
                        'style_mixing_prob': _VALUE, 'filter_mode': 'antialiased',
                        'blur_init_sigma': 10, 'blur_fade_kimg': _VALUE, 'gpc_reg_prob': _VALUE,
                        'gpc_reg_fade_kimg': _VALUE, 'dual_discrimination': True,
                        'neural_rendering_resolution_initial': _VALUE,
                        'neural_rendering_resolution_final': _VALUE,
                        'neural_rendering_resolution_fade_kimg': _VALUE},
        'data_loader_kwargs': {'pin_memory': True, 'prefetch_factor': 2, 'num_workers': _VALUE},
        'training_set_kwargs': _VALUE,
        **dict.fromkeys(('num_gpus', 'batch_size', 'batch_gpu', 'metrics', 'total_kimg',
                         'kimg_per_tick', 'image_snapshot_ticks', 'network_snapshot_ticks',
                         'random_seed', 'ema_kimg'), _VALUE),
        **dict.fromkeys(('G_reg_interval', 'augment_kwargs', 'ada_target', 'augment_p',
                         'resume_pkl', 'ada_kimg', 'ema_rampup', 'cudnn_benchmark',
                         'image_grid_size', 'inception_path', 'distill'), _OPTIONAL),
    }


def _set(tree, path, value):
    *parents, key = path.split('.')
    for name in parents:
        if not isinstance(tree.get(name), dict):
            tree[name] = {}
        tree = tree[name]
    tree[key] = value


def _get(tree, path):
    """The value at a dotted path; KeyError when a part is missing."""
    for name in path.split('.'):
        if not isinstance(tree, dict):
            raise KeyError(path)
        tree = tree[name]
    return tree


def _settled(tree, where=''):
    """`tree` without the optional keys nothing set (a key of every run left unset is a bug)."""
    out = {}
    for key, value in tree.items():
        if value is _VALUE:
            raise AssertionError(f'training_options.json: nothing sets {where}{key}')
        if value is not _OPTIONAL:
            out[key] = _settled(value, f'{where}{key}.') if isinstance(value, dict) else value
    return out


def _resolve_defaults(opts):
    """Defaults that depend on --cfg (the demo network's own: configs.DEMO_DEFAULTS), and the
    metric list."""
    demo = opts.cfg == 'demo'
    for option in OPTIONS:
        default = configs.DEMO_DEFAULTS.get(option.dest, option.official) if demo else \
            option.official
        if getattr(opts, option.dest) is None and default is not None:
            setattr(opts, option.dest, default)
    if isinstance(opts.grid, str):
        opts.grid = arguments.grid(opts.grid)
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
    """The official training_options.json content for parsed `opts`, and the dataset."""
    _resolve_defaults(opts)
    if opts.batch % opts.gpus != 0:
        raise TrainError('--batch must be a multiple of --gpus')
    opts.batch_gpu = opts.batch_gpu or opts.batch // opts.gpus
    if opts.batch % (opts.gpus * opts.batch_gpu) != 0:
        raise TrainError('--batch must be a multiple of --gpus times --batch-gpu')
    if opts.batch_gpu < opts.mbstd_group:
        raise TrainError('--batch-gpu cannot be smaller than --mbstd-group')
    training_set_kwargs, dataset = _dataset_kwargs(opts)
    c = _layout()
    try:   # the family's rendering options; OPTIONS set the ones the command line changes
        c['G_kwargs']['rendering_kwargs'] = configs.rendering_kwargs(
            opts.cfg, dataset.resolution, sr_module=opts.sr_module)
    except ValueError as e:
        raise TrainError(f'--cfg {opts.cfg} with {dataset.resolution}x{dataset.resolution} data '
                         f'({training_set_kwargs["path"]}): {e}; use --sr-module') from None
    c['training_set_kwargs'] = training_set_kwargs
    if opts.cfg == 'demo':
        c['G_kwargs']['plane_resolution'] = configs.DEMO_PLANE_RESOLUTION
    for option in OPTIONS:
        for path, write in option.json.items():
            value = OMIT if write is BUILT else write(getattr(opts, option.dest), opts)
            if value is not OMIT:
                _set(c, path, value)
    if opts.resume is not None and opts.resume_restart:    # the official restart
        c['ada_kimg'] = 100
        c['ema_rampup'] = None
        if not opts.resume_blur:
            c['loss_kwargs']['blur_init_sigma'] = 0
            c['loss_kwargs']['gpc_reg_fade_kimg'] = 0
    return _settled(c), dataset


def recorded_values(c):
    """{option name: value} of the options training_options.json content `c` records (ours or
    an official run's), as command-line values; what it does not record is left out. ValueError
    when a required option is missing or an entry is malformed."""
    values = {}
    for option in OPTIONS:
        if not option.json:
            continue
        path = next(iter(option.json))
        try:
            stored = _get(c, path)
            value = stored if option.read is None else option.read(stored, c)
        except KeyError:
            if option.parser_args.get('required'):
                raise ValueError(f'missing or malformed entry {path!r}') from None
            continue
        except (TypeError, ValueError, AttributeError, ZeroDivisionError):
            raise ValueError(f'missing or malformed entry {path!r}') from None
        if value is not None:
            values[option.dest] = value
    return values
