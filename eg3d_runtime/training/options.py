"""The official train.py options, each declared once in OPTIONS: its command line (names, types,
defaults: docs/eg3d-reference.md 4.3) and where training_options.json records it
(docs/eg3d-reference.md 4.2, 7.2). The parser (build_parser), training_options.json and the
values that continue a run (training_options.py), and the command lines of resume and the
Trainer tab's presets (command_line) are all made from that table, so a new option is one entry.

`--cfg demo` and a few options of ours are documented in README "Train"; everything else means
what it means in the official script.
"""
import copy
from dataclasses import dataclass, field, replace

from .. import arguments, configs

METRIC_NAMES = ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'ppl2_wend', 'eqt50k_int',
                'eqt50k_frac', 'eqr50k', 'fid50k', 'kid50k', 'pr50k3', 'is50k')
# --aug ada / fixed: the official 'bgc' set of augmentations.
AUGMENT_KWARGS = {'class_name': 'training.augment.AugmentPipe', **dict.fromkeys(
    ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac', 'brightness', 'contrast',
     'lumaflip', 'hue', 'saturation'), 1)}


class TrainError(ValueError):
    """A problem with the command line, the dataset or a resume file: one line for the user."""


# ---- how an option is recorded in training_options.json ----------------------------------------
# `Option.json` maps each key path ('loss_kwargs.r1_gamma') the option sets to a writer
# (value, parsed options) -> what is stored there, or OMIT to leave the key out. The first path
# is where resume reads the value back (through `Option.read`, identity by default).

OMIT = object()
BUILT = None        # a key the code building that part writes (the dataset's own
                    # training_set_kwargs, configs.rendering_kwargs); the option only reads it


def _same(value, _opts):
    return value


def _if_given(value, _opts):
    return OMIT if value is None else value


def _distilling(value, opts):
    return value if opts.distill is not None else OMIT


def _conv_clamp(num_fp16_res, _opts):
    return 256 if num_fp16_res > 0 else None


@dataclass(frozen=True)
class Option:
    """One train.py option: its command line, and where training_options.json records it."""
    flags: tuple
    help: str
    parser_args: dict = field(default_factory=dict)   # the other add_argument keywords
    json: dict = field(default_factory=dict)
    read: object = None        # (stored value, whole json) -> argument value; None: left out
    official: object = None    # the default, where --cfg demo has its own (configs.DEMO_DEFAULTS)

    @property
    def dest(self):
        return self.flags[-1].lstrip('-').replace('-', '_')

    @property
    def flag(self):
        return self.flags[-1]


def _opt(*flags, help, json=None, read=None, official=None, **parser_args):
    """An Option; `help` may name the defaults as {official} and {demo}."""
    option = Option(flags, help, parser_args, json or {}, read, official)
    return replace(option, help=help.format(official=official,
                                            demo=configs.DEMO_DEFAULTS.get(option.dest)))


_RK = 'G_kwargs.rendering_kwargs.'

OPTIONS = (
    _opt('--outdir', type=arguments.output_dir,
         help='Where to save the results (required unless --bench)'),
    _opt('--cfg', required=True, choices=['ffhq', 'afhq', 'shapenet', 'demo'],
         help='Base configuration'),
    _opt('--data', type=arguments.input_path,
         help='Training data (zip or directory); required unless --distill',
         json={'training_set_kwargs.path': BUILT},
         read=lambda path, c: None if 'distill' in c else path),
    _opt('--distill', type=arguments.integer(1), metavar='FIGURES',
         help='Instead of GAN training on --data: distil the procedural renderer, seed k < '
         'FIGURES being toy figure k (training/distill.py)',
         json={'training_set_kwargs.figures': BUILT}),
    _opt('--distill_resolution', type=arguments.integer(1), default=128,
         help='Image resolution of --distill',
         json={'training_set_kwargs.resolution': BUILT},
         read=lambda resolution, c: resolution if 'distill' in c else None),
    _opt('--distill_supersample', type=int, choices=[1, 2], default=2,
         help='Rays per pixel edge of the --distill renders: 2 (2x2, smooth edges) or 1 (about '
         '3x faster renders, aliased edges)',
         json={'training_set_kwargs.supersample': BUILT}),
    _opt('--distill_adv', type=arguments.number(0), default=0,
         help='Weight of the adversarial loss added to the reconstruction loss of --distill',
         json={'distill.adversarial_weight': _distilling}),
    _opt('--distill_volume_kimg', type=arguments.number(0), default=0,
         help='--distill fits the density and colour at points around the figures (no renders) '
         'for this many kimg before the image loss takes over',
         json={'distill.volume_kimg': _distilling}),
    _opt('--distill_field_kimg', type=arguments.number(0), default=0,
         help='--distill fits only the radiance field to the renders at the neural rendering '
         'resolution (image_raw; no super-resolution) for this many kimg before '
         '--distill_sr_kimg (or the end of the run)',
         json={'distill.field_kimg': _distilling}),
    _opt('--distill_field_lr', type=arguments.number(0),
         help='G learning rate of --distill_field_kimg (default: --glr)',
         json={'distill.field_lr': _distilling}),
    _opt('--distill_sr_kimg', type=arguments.number(0), default=0,
         help='--distill trains only the super-resolution, on renders of the frozen field, in '
         'the last this many kimg of the run',
         json={'distill.sr_kimg': _distilling}),
    _opt('--distill_sr_lr', type=arguments.number(0),
         help='G learning rate of --distill_sr_kimg (default: --glr)',
         json={'distill.sr_lr': _distilling}),
    _opt('--distill_sr_edge_weight', type=arguments.number(0), default=0,
         help='In --distill_sr_kimg, the image L1 counts 1 + this many times on the two pixels '
         'either side of the targets\' edges',
         json={'distill.sr_edge_weight': _distilling}),
    _opt('--gpus', required=True, type=arguments.integer(1), help='Number of processes (GPUs)',
         json={'num_gpus': _same}),
    _opt('--batch', required=True, type=arguments.integer(1), help='Total batch size',
         json={'batch_size': _same, 'ema_kimg': lambda batch, _opts: batch * 10 / 32}),
    _opt('--gamma', required=True, type=arguments.number(0), help='R1 regularization weight',
         json={'loss_kwargs.r1_gamma': _same}),
    _opt('--cond', type=arguments.boolean, default=True, help='Train conditional model',
         json={'training_set_kwargs.use_labels': BUILT}),
    _opt('--mirror', type=arguments.boolean, default=False,
         help='Enable dataset x-flips (poses mirrored too)',
         json={'training_set_kwargs.xflip': BUILT}),
    _opt('--aug', choices=['noaug', 'ada', 'fixed'], default='noaug', help='Augmentation mode',
         json={'augment_kwargs': lambda aug, _opts: OMIT if aug == 'noaug' else
               copy.deepcopy(AUGMENT_KWARGS)},
         read=lambda _augment_kwargs, c: 'ada' if 'ada_target' in c else 'fixed'),
    _opt('--resume', type=arguments.network,
         help='Resume from a network pickle, a run directory or a released name',
         json={'resume_pkl': _if_given}),
    _opt('--resume_restart', type=arguments.boolean, default=False,
         help='Official resume: restart kimg at 0 with blur/GPC fades off'),
    _opt('--freezed', type=arguments.integer(0), default=0, help='Freeze first layers of D',
         json={'D_kwargs.block_kwargs.freeze_layers': _same}),
    _opt('--p', type=arguments.number(0, 1), default=0.2, help='Probability for --aug=fixed',
         json={'augment_p': lambda p, opts: p if opts.aug == 'fixed' else OMIT}),
    _opt('--target', type=arguments.number(0, 1), default=0.6, help='Target value for --aug=ada',
         json={'ada_target': lambda target, opts: target if opts.aug == 'ada' else OMIT}),
    _opt('--batch-gpu', type=arguments.integer(1), help='Limit batch size per GPU',
         json={'batch_gpu': _same}),
    _opt('--cbase', type=arguments.integer(1), official=32768,
         help='Capacity multiplier (default {official}; demo {demo})',
         json={'G_kwargs.channel_base': _same, 'G_kwargs.sr_kwargs.channel_base': _same,
               'D_kwargs.channel_base': _same}),
    _opt('--cmax', type=arguments.integer(1), official=512,
         help='Max. feature maps (default {official}; demo {demo})',
         json={'G_kwargs.channel_max': _same, 'G_kwargs.sr_kwargs.channel_max': _same,
               'D_kwargs.channel_max': _same}),
    _opt('--glr', type=arguments.number(0), official=0.0025,
         help='G learning rate (default {official})', json={'G_opt_kwargs.lr': _same}),
    _opt('--dlr', type=arguments.number(0), default=0.002, help='D learning rate',
         json={'D_opt_kwargs.lr': _same}),
    _opt('--map-depth', type=arguments.integer(1), default=2, help='Mapping network depth',
         json={'G_kwargs.mapping_kwargs.num_layers': _same}),
    _opt('--mbstd-group', type=arguments.integer(1), default=4, help='Minibatch std group size',
         json={'D_kwargs.epilogue_kwargs.mbstd_group_size': _same}),
    _opt('--desc', type=arguments.name_part, help='String to include in result dir name'),
    _opt('--metrics', official='fid50k_full',
         help='Quality metrics, comma separated or none (default {official}; demo {demo})',
         json={'metrics': _same}, read=lambda metrics, _c: ','.join(metrics) or 'none'),
    _opt('--inception', help='Inception weights file for FID (default: $EG3D_INCEPTION_PATH or '
         'the cache, fetched on first use)', json={'inception_path': _if_given}),
    _opt('--kimg', type=arguments.number(0.001), default=25000,
         help='Total training duration (kimg)', json={'total_kimg': _same}),
    _opt('--tick', type=arguments.number(0.001), default=4,
         help='How often to print progress (kimg)', json={'kimg_per_tick': _same}),
    _opt('--snap', type=arguments.integer(1), default=50, help='How often to save snapshots (ticks)',
         json={'network_snapshot_ticks': _same, 'image_snapshot_ticks': _same}),
    _opt('--seed', type=arguments.integer(0), default=0, help='Random seed',
         json={'random_seed': _same}),
    _opt('--nobench', type=arguments.boolean, default=False, help='Disable cuDNN benchmarking',
         json={'cudnn_benchmark': lambda nobench, _opts: False if nobench else OMIT},
         read=lambda benchmark, _c: not benchmark),
    _opt('--workers', type=arguments.integer(0), default=3, help='DataLoader worker processes',
         json={'data_loader_kwargs.num_workers': _same}),
    _opt('-n', '--dry-run', action='store_true', help='Print options and exit'),
    _opt('--bench', type=arguments.integer(2), nargs='?', const=4, default=None, metavar='STEPS',
         help='Train STEPS steps (default 4) in a temporary directory, print where the time and '
         'memory go, delete it'),
    _opt('--neural_rendering_resolution_initial', type=arguments.integer(1), official=64,
         help='Resolution to render at (default {official}; demo {demo})',
         json={'loss_kwargs.neural_rendering_resolution_initial': _same}),
    _opt('--neural_rendering_resolution_final', type=arguments.integer(1), default=None,
         help='Final resolution to render at, if blending',
         json={'loss_kwargs.neural_rendering_resolution_final': _same}),
    _opt('--neural_rendering_resolution_fade_kimg', type=arguments.number(0), default=1000,
         help='Kimg to blend resolution over',
         json={'loss_kwargs.neural_rendering_resolution_fade_kimg': _same}),
    _opt('--blur_fade_kimg', type=arguments.number(0), official=200,
         help='Blur over how many kimg (default {official}; demo {demo})',
         json={'loss_kwargs.blur_fade_kimg': lambda kimg, opts: opts.batch * kimg / 32},
         read=lambda kimg, c: kimg * 32 / c['batch_size']),
    _opt('--grid', type=arguments.grid, help='Tiles of the fakes*.png grids, WxH (default: the '
         'official size for the resolution, e.g. 32x32 at 64 px; demo {demo})',
         json={'image_grid_size': lambda grid, _opts: OMIT if grid is None else list(grid)},
         read=lambda grid, _c: 'x'.join(str(n) for n in grid)),
    _opt('--gen_pose_cond', type=arguments.boolean, default=False,
         help='Enable generator pose conditioning',
         json={_RK + 'c_gen_conditioning_zero': lambda cond, _opts: not cond},
         read=lambda zero, _c: not zero),
    _opt('--c-scale', type=arguments.number(0), default=1, help='Scale factor for c',
         json={_RK + 'c_scale': lambda scale, _opts: float(scale)}),
    _opt('--c-noise', type=arguments.number(0), default=0, help='Unused (official too)'),
    _opt('--gpc_reg_prob', type=arguments.number(0), default=0.5, help='Pose-swap probability',
         json=dict.fromkeys((_RK + 'gpc_reg_prob', 'loss_kwargs.gpc_reg_prob'),
                            lambda prob, opts: prob if opts.gen_pose_cond else None)),
    _opt('--gpc_reg_fade_kimg', type=arguments.number(0), default=1000,
         help='Length of swapping fade', json={'loss_kwargs.gpc_reg_fade_kimg': _same}),
    _opt('--disc_c_noise', type=arguments.number(0), default=0,
         help='D pose noise (label std units)', json={'D_kwargs.disc_c_noise': _same}),
    _opt('--sr_noise_mode', choices=['random', 'none'], default='none', help='SR noise mode',
         json={_RK + 'superresolution_noise_mode': _same}),
    _opt('--resume_blur', type=arguments.boolean, default=False,
         help='Keep blur and GPC fades on resume'),
    _opt('--sr_num_fp16_res', type=arguments.integer(0), default=4, help='SR fp16 resolutions',
         json={'G_kwargs.sr_num_fp16_res': _same}),
    _opt('--g_num_fp16_res', type=arguments.integer(0), default=0, help='G fp16 resolutions',
         json={'G_kwargs.num_fp16_res': _same, 'G_kwargs.conv_clamp': _conv_clamp}),
    _opt('--d_num_fp16_res', type=arguments.integer(0), default=4, help='D fp16 resolutions',
         json={'D_kwargs.num_fp16_res': _same, 'D_kwargs.conv_clamp': _conv_clamp}),
    _opt('--sr_first_cutoff', type=arguments.integer(2), default=2, help='Unused (official too)'),
    _opt('--sr_first_stopband', type=arguments.number(2), default=2 ** 2.1,
         help='Unused (official too)'),
    _opt('--style_mixing_prob', type=arguments.number(0, 1), default=0,
         help='Style-mixing probability', json={'loss_kwargs.style_mixing_prob': _same}),
    _opt('--sr-module', help='Override SR module class path',
         json={_RK + 'superresolution_module': BUILT},
         read=lambda module, c: None if module == configs.SR_MODULES.get(
             c['G_kwargs']['rendering_kwargs'].get('image_resolution')) else module),
    _opt('--density_reg', type=arguments.number(0), default=0.25,
         help='Density regularization strength', json={_RK + 'density_reg': _same}),
    _opt('--density_reg_every', type=arguments.number(1), default=4,
         help='Lazy density reg interval',
         json={'G_reg_interval': lambda every, opts: every if opts.density_reg > 0 else OMIT}),
    _opt('--density_reg_p_dist', type=arguments.number(0), default=0.004,
         help='Density reg distance', json={_RK + 'density_reg_p_dist': _same}),
    _opt('--reg_type', choices=['l1', 'l1-alt', 'monotonic-detach', 'monotonic-fixed',
                                'total-variation'], default='l1',
         help='Density regularization type', json={_RK + 'reg_type': _same}),
    _opt('--decoder_lr_mul', type=arguments.number(0), default=1,
         help='Decoder learning rate multiplier',
         json={_RK + 'decoder_lr_mul': lambda mul, _opts: float(mul)}),
)
OPTION = {option.dest: option for option in OPTIONS}


def build_parser():
    p = arguments.Parser(prog='python -m eg3d_runtime.train',
                         description='Train EG3D (official train.py options).')
    for option in OPTIONS:
        p.add_argument(*option.flags, help=option.help, **option.parser_args)
    return p


def command_line(values):
    """argv of {option name: value} in the table's order and spelling (`--batch-gpu=8`); values
    that are None or empty are left out, so a form's blank fields take the defaults."""
    unknown = [name for name in values if name not in OPTION]
    if unknown:
        raise ValueError(f'unknown training option {unknown[0]!r}')
    args = []
    for option in OPTIONS:
        value = values.get(option.dest)
        if value is None or str(value).strip() == '':
            continue
        if option.parser_args.get('action') == 'store_true':
            args += [option.flag] if value is True or arguments.boolean(value) else []
        else:
            args.append(f'{option.flag}={value}')
    return args
