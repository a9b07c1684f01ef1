"""Write network snapshots in the official EG3D pickle format (docs/eg3d-reference.md 1.1-1.6).

The file is what the official training loop writes: a dict `training_set_kwargs, G, D, G_ema,
augment_pipe` in which every network class this package defines is a persistent object
(`torch_utils.persistence._reconstruct_persistent_obj(meta)`, meta carrying the bundled source
of `module_source.py`), the decoder, renderer, ray sampler and ray marcher are plain objects of
the official classes with the state those classes expect, EasyDicts are `dnnlib.util.EasyDict`
and tensors use torch's own encoding (legacy storage streams). Numpy scalars are written under
`numpy.core.multiarray`, which numpy 1.x and 2.x both read, as official snapshots hold them.
So the official loader opens it (exec'ing our source instead of theirs), and so does our safe
loader, bit for bit.

The pure-Python pickler is used because it lets the official module paths be written without
importing or faking those modules. Files are replaced atomically: a crash mid-write leaves the
previous snapshot and at most a stray hidden `.tmp` file.
"""
import copy
import copyreg
import pickle
import types

import torch
from torch import nn

from ..files import atomic_open
from ..networks.decoder import OSGDecoder
from ..rendering.rays import RaySampler
from ..rendering.renderer import ImportanceRenderer
from ..rendering.plane_sampling import PLANE_AXES
from ..rendering.tri_grid import TRI_GRID_AXES, TriGridRenderer
from .loader import NETWORK_KEYS
from .module_source import BUNDLED_MODULES, PACKAGE, bundle_source

PROTOCOL = 4  # pickle.dump's default on the Python versions official code runs on
PERSISTENCE_VERSION = 6
_PLAIN_DATA = (type(None), bool, int, float, str)


class _OfficialRayMarcher(nn.Module):
    """The official renderer owns a `ray_marcher` child (an attribute-less MipRayMarcher2);
    ours composites with a function, so the child is written from this empty module."""


def _persistent_reconstructor(meta):
    """Written into the pickle as `torch_utils.persistence._reconstruct_persistent_obj`: the
    writer only needs an object to name; reading our files back goes through safe_unpickle."""
    raise TypeError('only the official torch_utils.persistence can reconstruct a network')


_OFFICIAL_GLOBALS = {
    OSGDecoder: ('training.triplane', 'OSGDecoder'),
    ImportanceRenderer: ('training.volumetric_rendering.renderer', 'ImportanceRenderer'),
    # PanoHead's renderer has the same path (and crops, reads the tri-grid, by itself).
    TriGridRenderer: ('training.volumetric_rendering.renderer', 'ImportanceRenderer'),
    RaySampler: ('training.volumetric_rendering.ray_sampler', 'RaySampler'),
    _OfficialRayMarcher: ('training.volumetric_rendering.ray_marcher', 'MipRayMarcher2'),
    _persistent_reconstructor: ('torch_utils.persistence', '_reconstruct_persistent_obj'),
}
_TORCH_PLAIN = (nn.Sequential, nn.Softplus)


def _official_plane_axes(renderer):
    """`plane_axes` of the official renderer: per plane, unit rows picking its two axes, then
    the remaining one (docs/eg3d-reference.md 3.4; PanoHead's tri-grid: its three axes,
    docs/panohead-reference.md 3.1); an attribute, not a buffer, and never trained."""
    if isinstance(renderer, TriGridRenderer):
        return torch.eye(3)[torch.tensor(TRI_GRID_AXES)]
    return torch.eye(3)[torch.tensor([[a, b, 3 - a - b] for a, b in PLANE_AXES])]


def _official_state(module):
    """The instance dict the official plain class expects (it gets it via BUILD)."""
    state = dict(module.__dict__)
    if isinstance(module, ImportanceRenderer):
        state['_modules'] = {**state['_modules'], 'ray_marcher': _OfficialRayMarcher().eval()}
        state.setdefault('plane_axes', _official_plane_axes(module))
    elif isinstance(module, RaySampler):
        for name in ('ray_origins_h', 'ray_directions', 'depths', 'image_coords',
                     'rendering_options'):
            state.setdefault(name, None)
    return state


def _is_bundled(cls):
    """Whether `cls` is defined in a module whose source is part of the bundle."""
    module = getattr(cls, '__module__', '')
    prefix = PACKAGE + '.'
    return module.startswith(prefix) and module[len(prefix):] in BUNDLED_MODULES


class _SnapshotPickler(pickle._Pickler):
    """Pure-Python pickler that writes network modules and a few globals the official way."""

    def reducer_override(self, obj):
        if isinstance(obj, nn.Module):
            return self._reduce_module(obj)
        return NotImplemented

    def _reduce_module(self, module):
        cls = type(module)
        if cls in _OFFICIAL_GLOBALS:
            return copyreg.__newobj__, (cls,), _official_state(module)
        if cls in _TORCH_PLAIN:
            return NotImplemented
        # A subclass that adds behaviour only (engine.FastTriPlaneGenerator) is saved as the
        # bundled class it extends; copies leave its session behind (_snapshot_copy).
        saved = next((c for c in cls.__mro__ if _is_bundled(c)), None)
        if saved is not None and '_init_args' in module.__dict__:
            meta = {'type': 'class', 'version': PERSISTENCE_VERSION,
                    'module_src': bundle_source(), 'class_name': saved.__name__,
                    'state': module.__dict__}
            return _persistent_reconstructor, (meta,)
        raise pickle.PicklingError(
            f'cannot save a {cls.__module__}.{cls.__qualname__} in a network pickle (only '
            f'eg3d_runtime network classes with recorded constructor arguments)')

    def save_global(self, obj, name=None):
        target = _OFFICIAL_GLOBALS.get(obj)
        module = getattr(obj, '__module__', None) or ''
        if target is None and isinstance(obj, type) and issubclass(obj, dict) \
                and obj.__name__ == 'EasyDict':
            target = ('dnnlib.util', 'EasyDict')
        if target is None and module.startswith('numpy._core'):
            target = ('numpy.core' + module[len('numpy._core'):], name or obj.__qualname__)
        if target is None:
            return super().save_global(obj, name)
        self.save(target[0])
        self.save(target[1])
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

    dispatch = {**pickle._Pickler.dispatch, types.FunctionType: save_global}

    _in_storage = False

    def save(self, obj, *args, **kwargs):
        if isinstance(obj, torch.storage.TypedStorage):
            self._in_storage = True
            try:
                return super().save(obj, *args, **kwargs)
            finally:
                self._in_storage = False
        return super().save(obj, *args, **kwargs)

    def memoize(self, obj):
        # A storage, its reduce tuple and its byte stream occur once: memoizing them would keep
        # every tensor's bytes alive until the whole file is written. Names are still memoized.
        if not self._in_storage or isinstance(obj, (str, type, types.FunctionType)):
            super().memoize(obj)


def _snapshot_copy(module):
    """What the training loop stores: a deep copy in eval mode, no gradients, CPU float32."""
    module = copy.deepcopy(module).eval().requires_grad_(False).cpu().float()
    if getattr(module, '_last_planes', None) is not None:
        module._last_planes = None  # a render cache, not part of the network
    return module


def _check_plain(value, where):
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(k, where)
            _check_plain(v, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_plain(v, where)
    elif type(value) not in _PLAIN_DATA:
        raise ValueError(f'{where}: cannot save a {type(value).__name__} (plain data only)')


def _snapshot_dict(data):
    missing = [k for k in ('training_set_kwargs',) + NETWORK_KEYS if k not in data]
    if missing:
        raise ValueError(f'network snapshot data lacks {", ".join(missing)}')
    kwargs = data['training_set_kwargs']
    if kwargs is not None:
        _check_plain(kwargs, 'training_set_kwargs')
        kwargs = dict(kwargs)
    snapshot = {'training_set_kwargs': kwargs}
    for key in NETWORK_KEYS:
        value = data[key]
        if value is None and key == 'augment_pipe':
            snapshot[key] = None
        elif isinstance(value, nn.Module):
            snapshot[key] = _snapshot_copy(value)
        else:
            raise ValueError(f'{key}: expected a network, found {type(value).__name__}')
    for key, value in data.items():  # extra entries (e.g. training progress) come last
        if key not in snapshot:
            _check_plain(key, 'key')
            _check_plain(value, key)
            snapshot[key] = value
    return snapshot


def save_network_pkl(path, data):
    """Write `data` (keys training_set_kwargs: plain dict, G, D, G_ema: networks, augment_pipe:
    network or None; extra keys of plain data follow them) as an official EG3D snapshot at
    `path`, replacing any previous file atomically. The networks themselves are not changed."""
    snapshot = _snapshot_dict(data)
    with atomic_open(path) as f:
        _SnapshotPickler(f, protocol=PROTOCOL).dump(snapshot)
