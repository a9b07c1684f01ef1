"""Checks of the constructor arguments and rendering options a pickle records for its generator
(and of the discriminator's constructor arguments).

They are untrusted data: a wrong type or value (a depth sample count stored as text, a NaN ray
bound) would otherwise build a network that renders NaN pictures without a word, and an absurd
size would try to allocate terabytes. Each check raises ValueError naming the argument, what it
must be and what the file holds, e.g. "rendering_kwargs['depth_resolution'] must be an integer
from 2 to 1024, got '48'". The limits are generous: official networks stay far below them.
"""
import collections
import inspect
import math
import reprlib

from ..networks.decoder import DECODER_ACTIVATIONS
from ..networks.panohead import REQUIRED_PANOHEAD_OPTIONS, is_panohead
from ..networks.superresolution import SUPERRESOLUTION_CLASSES

_Rule = collections.namedtuple('_Rule', 'test description')


def _number(value):
    return type(value) in (int, float) and math.isfinite(value)


def integer(low, high):
    return _Rule(lambda v: type(v) is int and low <= v <= high,
                 f'an integer from {low} to {high}')


def power_of_two(low, high):
    return _Rule(lambda v: type(v) is int and low <= v <= high and v & (v - 1) == 0,
                 f'a power of two from {low} to {high}')


def number(low=-math.inf, high=math.inf, low_open=False):
    def test(v):
        return _number(v) and (low < v if low_open else low <= v) and v <= high
    bounds = [f'> {low}' if low_open else f'>= {low}'] if low > -math.inf else []
    bounds += [f'<= {high}'] if high < math.inf else []
    return _Rule(test, f'a finite number{" " + " and ".join(bounds) if bounds else ""}')


def optional(rule):
    return _Rule(lambda v: v is None or rule.test(v), f'None or {rule.description}')


def one_of(*values):
    return _Rule(lambda v: any(type(v) is type(x) and v == x for x in values),
                 ' or '.join(map(repr, values)))


BOOLEAN = _Rule(lambda v: type(v) is bool, 'True or False')
DICT = _Rule(lambda v: isinstance(v, dict), 'a dict')
TEXT = _Rule(lambda v: isinstance(v, str), 'a string')
PIVOT = _Rule(lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(map(_number, v)),
              'three finite numbers')
MAX_SAMPLES = 1024
CHANNELS = {'channel_base': integer(1, 1 << 20), 'channel_max': integer(1, 4096),
            'num_fp16_res': integer(0, 32), 'conv_clamp': optional(number(0, low_open=True))}

GENERATOR = {
    'z_dim': integer(1, 4096), 'w_dim': integer(1, 4096), 'c_dim': integer(0, 4096),
    'img_resolution': integer(1, 4096), 'img_channels': one_of(3),
    'sr_num_fp16_res': integer(0, 32), 'plane_resolution': power_of_two(4, 1024),
    'mapping_kwargs': DICT, 'rendering_kwargs': DICT, 'sr_kwargs': DICT, **CHANNELS,
}
MAPPING = {'num_layers': integer(1, 64), 'embed_features': optional(integer(1, 4096)),
           'layer_features': optional(integer(1, 4096)), 'lr_multiplier': number(),
           'w_avg_beta': number(0, 1)}
# Spec 4.1: the options train.py records, and those the renderer also reads (ray_start and
# ray_end are checked together). Construction and rendering need the REQUIRED_RENDERING ones.
RENDERING = {
    'superresolution_module': TEXT, 'sr_antialias': BOOLEAN,
    'depth_resolution': integer(2, MAX_SAMPLES), 'box_warp': number(0, low_open=True),
    'depth_resolution_importance': integer(0, MAX_SAMPLES),
    'image_resolution': integer(1, 4096), 'disparity_space_sampling': BOOLEAN,
    'clamp_mode': one_of('softplus'), 'c_gen_conditioning_zero': BOOLEAN,
    'gpc_reg_prob': optional(number(0, 1)), 'c_scale': number(),
    'superresolution_noise_mode': one_of('none', 'const', 'random'),
    'density_reg': number(0), 'density_reg_p_dist': number(0), 'reg_type': TEXT,
    'decoder_lr_mul': number(0, low_open=True), 'white_back': BOOLEAN,
    'density_noise': number(0), 'avg_camera_radius': number(0, low_open=True),
    'avg_camera_pivot': PIVOT,
    # PanoHead's (docs/panohead-reference.md 1.3); the tri-grid's size bounds its memory.
    'triplane_size': power_of_two(4, 1024), 'triplane_depth': integer(1, 16),
    'decoder_activation': one_of(*DECODER_ACTIVATIONS), 'use_torgb_raw': BOOLEAN,
    'use_background': BOOLEAN, 'trans_reg': number(0),
}
DISCRIMINATOR = {
    'c_dim': integer(0, 4096), 'img_resolution': power_of_two(8, 4096),
    'seg_resolution': power_of_two(4, 4096), 'seg_channels': integer(1, 16),
    'img_channels': one_of(3), 'architecture': one_of('orig', 'skip', 'resnet'),
    'cmap_dim': optional(integer(1, 4096)), 'disc_c_noise': number(0),
    'block_kwargs': DICT, 'mapping_kwargs': DICT, 'epilogue_kwargs': DICT, **CHANNELS,
}
EPILOGUE = {'mbstd_group_size': optional(integer(1, 1 << 16)),
            'mbstd_num_channels': integer(0, 4096)}
REQUIRED_RENDERING = ('superresolution_module', 'sr_antialias', 'depth_resolution', 'ray_start',
                      'ray_end', 'box_warp')


_REPR = reprlib.Repr()              # what the file holds, shortened to fit in one line
_REPR.maxstring = _REPR.maxother = 80


def _got(value):
    return _REPR.repr(value)


def _check(values, rules, where=None):
    for key, rule in rules.items():
        if key in values and not rule.test(values[key]):
            name = f'{where}[{key!r}]' if where else key
            raise ValueError(f'{name} must be {rule.description}, got {_got(values[key])}')


def check_rendering_kwargs(rk, where='rendering_kwargs'):
    """The rendering options of a generator (constructor argument or attribute)."""
    if not isinstance(rk, dict):
        raise ValueError(f'{where} must be a dict, got {_got(rk)}')
    required = REQUIRED_RENDERING + (REQUIRED_PANOHEAD_OPTIONS if is_panohead(rk) else ())
    missing = [key for key in required if key not in rk]
    if missing:
        raise ValueError(f'{where} lacks {", ".join(map(repr, missing))}')
    _check(rk, RENDERING, where)
    start, end = rk['ray_start'], rk['ray_end']
    if not (start == end == 'auto' or (_number(start) and _number(end) and 0 < start < end)):
        raise ValueError(f"{where}['ray_start'], ['ray_end'] must both be 'auto' or numbers with "
                         f'0 < ray_start < ray_end, got {_got(start)}, {_got(end)}')
    if rk['superresolution_module'].rsplit('.', 1)[-1] not in SUPERRESOLUTION_CLASSES:
        raise ValueError(f"{where}['superresolution_module'] must name one of "
                         f'{", ".join(SUPERRESOLUTION_CLASSES)}, '
                         f"got {_got(rk['superresolution_module'])}")
    if rk.get('depth_resolution_importance', 0) > 0 and rk['depth_resolution'] < 4:
        raise ValueError(f"{where}['depth_resolution'] must be at least 4 with importance "
                         f"samples, got {rk['depth_resolution']}")


def check_generator_attributes(values):
    """The attributes copied from the pickle onto the built generator (see loader.py)."""
    _check(values, {'neural_rendering_resolution': integer(1, 4096)})
    if 'rendering_kwargs' in values:
        check_rendering_kwargs(values['rendering_kwargs'])


def _bound(cls, args, kwargs):
    """The recorded arguments by parameter name."""
    try:
        return dict(inspect.signature(cls).bind(*args, **kwargs).arguments)
    except TypeError as e:
        raise ValueError(f'recorded arguments do not fit the constructor ({e})') from None


def check_discriminator_args(cls, args, kwargs):
    """DualDiscriminator (or MaskDualDiscriminatorV2) constructor arguments as recorded, before anything is built (an
    absurd channel count would allocate without bound, like the generator's)."""
    values = _bound(cls, args, kwargs)
    _check(values, DISCRIMINATOR)
    _check(values.get('mapping_kwargs', {}), MAPPING, 'mapping_kwargs')
    _check(values.get('epilogue_kwargs', {}), EPILOGUE, 'epilogue_kwargs')


def check_generator_args(cls, args, kwargs):
    """TriPlaneGenerator (or PanoHeadGenerator) constructor arguments as recorded, before
    anything is built."""
    values = _bound(cls, args, kwargs)
    values.update(values.pop('synthesis_kwargs', {}))
    _check(values, GENERATOR)
    _check(values.get('mapping_kwargs', {}), MAPPING, 'mapping_kwargs')
    _check(values.get('sr_kwargs', {}), CHANNELS, 'sr_kwargs')
    rk = values.get('rendering_kwargs', {})
    check_rendering_kwargs(rk)
    sr = SUPERRESOLUTION_CLASSES[rk['superresolution_module'].rsplit('.', 1)[-1]]
    if values['img_resolution'] != sr.img_resolution:
        raise ValueError(f"img_resolution must be {sr.img_resolution} for "
                         f"{sr.__name__}, got {values['img_resolution']}")
