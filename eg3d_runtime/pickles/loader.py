"""Open official EG3D (and PanoHead) network pickles without running any code stored in them.

`safe_unpickle` turns the file into plain records (class name, constructor arguments, state);
here each network is rebuilt from this package's own classes by class name and recorded
constructor arguments, and its parameters are loaded by name. Inner modules are never looked up
by class name, so same-named classes of different official modules (e.g. `SynthesisLayer`)
cannot be confused: the top-level constructor arguments determine the whole architecture.
Generators come back serving the official API through an engine session
(engine.FastTriPlaneGenerator, FastPanoHeadGenerator), so scripts written for the official code
render fast.
"""
import os
import warnings

import torch

from ..engine.official_api import FastTriPlaneGenerator
from ..networks.augment import AugmentPipe
from ..networks.discriminator import DualDiscriminator, MaskDualDiscriminatorV2
from ..networks.panohead import PanoHeadGenerator, is_panohead
from ..networks.triplane import TriPlaneGenerator
from . import recorded_args
from .safe_unpickle import (PersistentRecord, PickleLoadError, _describe, module_state_dict,
                            plain_structure, safe_load)

NETWORK_CLASSES = {cls.__name__: cls for cls in (TriPlaneGenerator, PanoHeadGenerator,
                                                  DualDiscriminator, MaskDualDiscriminatorV2,
                                                  AugmentPipe)}
GENERATOR_CLASSES = (TriPlaneGenerator, PanoHeadGenerator)
DISCRIMINATOR_CLASSES = (DualDiscriminator, MaskDualDiscriminatorV2)
# The networks of a snapshot, in the official order (docs/eg3d-reference.md 1.1; the writer's too).
NETWORK_KEYS = ('G', 'D', 'G_ema', 'augment_pipe')
# Plain dicts passed through: the dataset options, and the image counter our trainer records so
# that --resume continues it (official loaders ignore the extra key).
PLAIN_KEYS = ('training_set_kwargs', 'progress')
# Plain attributes that live outside the state dict and that scripts copy by hand
# (docs/eg3d-reference.md 1.9).
COPIED_ATTRIBUTES = ('neural_rendering_resolution', 'rendering_kwargs')
# Buffers the training loop adds after construction (docs/eg3d-reference.md 1.1).
EXTRA_BUFFERS = ('dataset_label_std',)


class PartialLoadWarning(UserWarning):
    """A part of a pickle (D, augment_pipe, ...) could not be restored; the rest was."""


def _display_name(path_or_file):
    if isinstance(path_or_file, (str, os.PathLike)):
        return str(path_or_file)
    return str(getattr(path_or_file, 'name', '<stream>'))


def rebuild_network(record, device='cpu'):
    """Build one network from its persistent record: constructor, then parameters by name."""
    if not isinstance(record, PersistentRecord):
        raise ValueError(f'expected a network object, found {type(record).__name__}')
    cls = NETWORK_CLASSES.get(record.class_name)
    if cls is None:
        raise ValueError(f"unsupported network class '{record.class_name}'")
    try:
        args, kwargs = record.init_args, record.init_kwargs
    except ValueError as e:
        raise ValueError(f'the recorded arguments of {record.class_name} are {e}') from None
    if cls is TriPlaneGenerator and is_panohead(kwargs.get('rendering_kwargs')):
        cls = PanoHeadGenerator     # PanoHead keeps the class name (networks/panohead.py)
    attributes = {}
    for attr in COPIED_ATTRIBUTES:
        if attr in record.state:
            try:
                attributes[attr] = plain_structure(record.state[attr])
            except ValueError as e:
                raise ValueError(f'{attr} is {e}') from None
    if cls in GENERATOR_CLASSES:
        recorded_args.check_generator_args(cls, args, kwargs)
        recorded_args.check_generator_attributes(attributes)
        if 'rendering_kwargs' in attributes and \
                is_panohead(attributes['rendering_kwargs']) != (cls is PanoHeadGenerator):
            raise ValueError('the rendering_kwargs attribute and the constructor arguments are '
                             'of different families (PanoHead and EG3D)')
    elif cls in DISCRIMINATOR_CLASSES:
        recorded_args.check_discriminator_args(cls, args, kwargs)
    try:
        net = cls(*args, **kwargs)
    except Exception as e:  # recorded arguments are untrusted data: any failure is a bad file
        raise ValueError(f'cannot construct {record.class_name} from its recorded arguments '
                         f'({_describe(e)})') from None
    state = module_state_dict(record)
    for name in EXTRA_BUFFERS:
        if name in state:
            net.register_buffer(name, torch.zeros_like(state[name]))
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f'{k} {tuple(state[k].shape)} != {tuple(v.shape)}' for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        detail = '; '.join(f'{label}: {", ".join(items[:3])}{" ..." if len(items) > 3 else ""}'
                           for label, items in (('missing', missing), ('unexpected', unexpected),
                                                ('wrong shape', wrong)) if items)
        raise ValueError(f'{record.class_name} state does not match its architecture ({detail})')
    net.load_state_dict(state)
    for attr, value in attributes.items():
        setattr(net, attr, value)
    net = net.eval().requires_grad_(False).to(device)
    return FastTriPlaneGenerator.serving(net) if cls in GENERATOR_CLASSES else net


def load_network_pkl(path_or_file, device='cpu', keys=NETWORK_KEYS):
    """Official pickle -> dict with whichever of G, D, G_ema, augment_pipe, training_set_kwargs
    (and our 'progress') it holds. G_ema must load; any other part that cannot be restored is left out and reported by
    name with a PartialLoadWarning. Every failure is one PickleLoadError line naming the file.
    `keys` limits which networks are rebuilt (the viewer needs only G_ema)."""
    name = _display_name(path_or_file)
    data = safe_load(path_or_file)
    if not isinstance(data, dict) or data.get('G_ema') is None:
        raise PickleLoadError(f"{name}: not an EG3D network pickle (no 'G_ema' network in it)")
    result = {}
    for key in keys:
        if key not in data:
            continue
        if data[key] is None:
            result[key] = None
            continue
        try:
            result[key] = rebuild_network(data[key], device)
        except ValueError as e:
            if key == 'G_ema':
                raise PickleLoadError(f'{name}: G_ema: {e}') from None
            warnings.warn(f"{name}: could not restore '{key}': {e}", PartialLoadWarning,
                          stacklevel=2)
    for key in PLAIN_KEYS:
        if isinstance(data.get(key), dict):
            result[key] = dict(data[key])
    return result


def load_generator(path_or_file, device='cpu'):
    """The EMA generator of a pickle, which every script and the viewer render with."""
    return load_network_pkl(path_or_file, device, keys=('G_ema',))['G_ema']
