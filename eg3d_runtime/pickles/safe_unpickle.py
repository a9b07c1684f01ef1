"""Read official EG3D network pickles without executing anything stored in them.

The official loader `exec`s the module source embedded in every persistent network object and
imports whatever classes the pickle names. Here every global a pickle may reference is looked up
in a fixed whitelist (docs/eg3d-reference.md 1.8) that maps it to an inert stand-in; anything
else is refused before it can be called. The result is a plain object graph:

- persistent networks -> `PersistentRecord` (class name, state, sha256 of the embedded source);
- the few non-persistent module classes -> `PlainRecord` (qualified name, state);
- tensors and Parameters -> plain CPU `torch.Tensor`s with `requires_grad=False`, the same values
  `Module.state_dict()` would give (Parameters are deliberately not kept as Parameters);
- numpy scalars -> Python numbers, numpy arrays -> `numpy.ndarray`;
- `dnnlib.util.EasyDict` -> `EasyDict` (a dict subclass), `collections.OrderedDict` as itself.

Tensor storages are decoded from their embedded legacy `torch.save` streams
(docs/eg3d-reference.md 1.6) by a second restricted unpickler and `numpy.frombuffer`
(legacy_storage.py); `torch.load` is never called.
Both unpicklers are the pure-Python one, hardened against memory bombs (unpickler.py). The file
is streamed, so the peak memory is about twice the tensor data (the pickled bytes and the
decoded tensors).
"""
import collections
import dataclasses
import hashlib
import io
import os
import pickle
import re
import struct

import torch

from .legacy_storage import (_TENSOR_TYPES, _load_from_bytes, _rebuild_from_type_v2,
                             _rebuild_parameter, _rebuild_tensor)
from .numpy_data import _NDARRAY, _ArrayStub, _DTypeStub, _numpy_array, _numpy_scalar
from .unpickler import PickleLoadError, _describe, _one_line, _Problem, _PythonUnpickler, _refused

__all__ = ['EasyDict', 'PersistentRecord', 'PickleLoadError', 'PlainRecord', 'module_state_dict',
           'plain_structure', 'safe_load']


# ------------------------------------------------------------------------------------------------
# Records and containers


# Recorded constructor arguments and options hold about a hundred values, a few levels deep.
# The pickle memo lets a small file share one list many times over (a list holding the same
# list twice, 64 levels deep, is 2**64 values once copied out), so copies stop at these limits.
MAX_PLAIN_VALUES = 10_000
MAX_PLAIN_DEPTH = 32


def plain_structure(value):
    """A copy in which EasyDicts (and any other dicts) are plain dicts, so callers can use
    `**kwargs` or JSON. ValueError (saying which limit) for a structure past the limits above."""
    count = 0

    def copy(value, depth):
        nonlocal count
        count += 1
        if count > MAX_PLAIN_VALUES:
            raise ValueError(f'too large (more than {MAX_PLAIN_VALUES} values once shared parts '
                             'are expanded)')
        if depth > MAX_PLAIN_DEPTH:
            raise ValueError(f'nested too deeply (more than {MAX_PLAIN_DEPTH} levels)')
        if isinstance(value, dict):
            return {k: copy(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(copy(v, depth + 1) for v in value)
        return value

    return copy(value, 0)


@dataclasses.dataclass(eq=False, repr=False)
class PersistentRecord:
    """What `torch_utils.persistence._reconstruct_persistent_obj(meta)` would have built."""
    class_name: str
    state: dict
    module_src_digest: str

    @property
    def init_args(self):
        return plain_structure(self.state.get('_init_args', ()))

    @property
    def init_kwargs(self):
        return plain_structure(self.state.get('_init_kwargs', {}))

    def __repr__(self):
        return f'PersistentRecord({self.class_name!r}, {len(self.state)} state entries)'


@dataclasses.dataclass(eq=False, repr=False)
class PlainRecord:
    """A whitelisted non-persistent module (decoder, renderer, Sequential, ...)."""
    qualname: str
    state: dict

    def __repr__(self):
        return f'PlainRecord({self.qualname!r}, {len(self.state)} state entries)'


class _PlainStub(PlainRecord):
    """Pickle builds plain modules as NEWOBJ(cls, ()) then BUILD(state): one subclass per class."""
    _qualname = ''

    def __new__(cls, *args):
        if args:
            raise _Problem(f'{cls._qualname}: unexpected constructor arguments')
        record = super().__new__(cls)
        record.qualname, record.state = cls._qualname, {}
        return record

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise _Problem(f'{self.qualname}: state is not a dict')
        self.state = state


PLAIN_CLASSES = (
    'training.triplane.OSGDecoder',
    'training.volumetric_rendering.renderer.ImportanceRenderer',
    'training.volumetric_rendering.ray_sampler.RaySampler',
    'training.volumetric_rendering.ray_marcher.MipRayMarcher2',
    'torch.nn.modules.container.Sequential',
    'torch.nn.modules.activation.Softplus',
)
_PLAIN_STUBS = {
    tuple(qualname.rsplit('.', 1)):
        type(qualname.rsplit('.', 1)[1], (_PlainStub,), {'_qualname': qualname})
    for qualname in PLAIN_CLASSES
}


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a dict whose keys are also attributes."""
    __slots__ = ()

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]


def _copyreg_reconstructor(cls, base, state):
    """Protocol 0/1 form of NEWOBJ, limited to the whitelisted classes."""
    is_dict = isinstance(cls, type) and cls in (EasyDict, collections.OrderedDict)
    is_plain = isinstance(cls, type) and issubclass(cls, _PlainStub)
    if not ((is_dict and base is dict) or (is_plain and base is object and state is None)):
        raise _Problem('copyreg._reconstructor with an unsupported class')
    obj = cls.__new__(cls)
    if is_dict:
        obj.update(state)
    return obj


def _empty_bytes():
    """Protocols 0-2 write b'' as `bytes()`; other arguments (e.g. a huge size) are refused."""
    return b''


def _latin1_encode(text, encoding):
    """Protocols 0-2 write other bytes as `_codecs.encode(text, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise _Problem("refuses _codecs.encode other than of text to 'latin1'")
    return text.encode('latin-1')


# ------------------------------------------------------------------------------------------------
# numpy arrays (the stand-ins are in numpy_data.py)


def _swap_arrays(obj, done):
    """Replace every _ArrayStub in the graph by its array (BUILD fills stubs after they are
    referenced, so they cannot be replaced while unpickling)."""
    key = id(obj)
    if key in done:
        return done[key]
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise _Problem('numpy array without data')
        done[key] = obj.array
        return obj.array
    done[key] = obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = _swap_arrays(v, done)
    elif isinstance(obj, list):
        obj[:] = [_swap_arrays(v, done) for v in obj]
    elif isinstance(obj, tuple):
        done[key] = tuple(_swap_arrays(v, done) for v in obj)
    elif isinstance(obj, (PersistentRecord, PlainRecord)):
        _swap_arrays(obj.state, done)
    return done[key]


# ------------------------------------------------------------------------------------------------
# The outer unpickler


_BUILTINS = ('builtins', '__builtin__')
_GLOBALS = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('dnnlib.util', 'EasyDict'): EasyDict,
    ('dnnlib', 'EasyDict'): EasyDict,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
    ('torch._tensor', '_rebuild_from_type_v2'): _rebuild_from_type_v2,
    ('torch', 'Tensor'): _TENSOR_TYPES[0],
    ('torch._tensor', 'Tensor'): _TENSOR_TYPES[0],
    ('torch.nn.parameter', 'Parameter'): _TENSOR_TYPES[1],
    ('torch.storage', '_load_from_bytes'): _load_from_bytes,
    ('numpy', 'dtype'): _DTypeStub,
    ('numpy', 'ndarray'): _NDARRAY,
    ('numpy.core.multiarray', 'scalar'): _numpy_scalar,
    ('numpy._core.multiarray', 'scalar'): _numpy_scalar,
    ('numpy.core.numeric', '_frombuffer'): _numpy_array,  # protocol 5 arrays
    ('numpy._core.numeric', '_frombuffer'): _numpy_array,
    ('_codecs', 'encode'): _latin1_encode,
    ('copyreg', '_reconstructor'): _copyreg_reconstructor,
    ('copy_reg', '_reconstructor'): _copyreg_reconstructor,
    **{(b, 'set'): set for b in _BUILTINS},
    **{(b, 'frozenset'): frozenset for b in _BUILTINS},
    **{(b, 'bytes'): _empty_bytes for b in _BUILTINS},
    **{(b, 'dict'): dict for b in _BUILTINS},  # base classes for copyreg._reconstructor
    **{(b, 'object'): object for b in _BUILTINS},
    **_PLAIN_STUBS,
}


class _RestrictedUnpickler(_PythonUnpickler):
    """The outer stream: whitelisted globals only, persistent objects become records."""
    buildable = (_PlainStub, _DTypeStub, _ArrayStub)

    def __init__(self, file):
        super().__init__(file)
        self.array_stubs = []
        self._digests = {}  # module source -> sha256; each source string is hashed once

    def find_class(self, module, name):
        if (module, name) == ('torch_utils.persistence', '_reconstruct_persistent_obj'):
            return self._reconstruct_persistent_obj
        if module in ('numpy.core.multiarray', 'numpy._core.multiarray') and name == '_reconstruct':
            return self._reconstruct_array
        try:
            return _GLOBALS[module, name]
        except KeyError:
            raise _refused(module, name) from None

    def persistent_load(self, pid):
        raise _Problem('refuses persistent ids outside tensor storages')

    def _reconstruct_persistent_obj(self, meta):
        if not isinstance(meta, dict):
            raise _Problem('malformed persistent object (meta is not a dict)')
        kind, version = meta.get('type'), meta.get('version')
        if not (isinstance(kind, str) and kind == 'class'
                and type(version) is int and version == 6):
            raise _Problem(f'unsupported persistent object (type {_one_line(repr(kind), 40)}, '
                           f'version {_one_line(repr(version), 40)}; expected class, 6)')
        class_name, source = meta.get('class_name'), meta.get('module_src')
        state = meta.get('state')
        if not (isinstance(class_name, str) and isinstance(source, str)
                and isinstance(state, dict)):
            raise _Problem('malformed persistent object (class_name, module_src or state)')
        digest = self._digests.get(source)
        if digest is None:
            digest = hashlib.sha256(source.encode('utf-8', 'surrogatepass')).hexdigest()
            self._digests[source] = digest
        return PersistentRecord(class_name, state, digest)

    def _reconstruct_array(self, subtype, shape, dtype_code):
        if subtype is not _NDARRAY:
            raise _Problem('numpy _reconstruct of an unsupported array type')
        stub = _ArrayStub()
        self.array_stubs.append(stub)
        return stub


# ------------------------------------------------------------------------------------------------
# Entry points


class _Replay:
    """Serves the sniffed header again before the rest of a stream that cannot seek back."""

    def __init__(self, head, file):
        self._head, self._file = head, file

    def read(self, n):
        if not self._head:
            return self._file.read(n)
        data, self._head = self._head[:n], self._head[n:]
        return data + self._file.read(n - len(data)) if len(data) < n else data

    def readline(self):
        if not self._head:
            return self._file.readline()
        end = self._head.find(b'\n') + 1
        if end:
            line, self._head = self._head[:end], self._head[end:]
            return line
        line, self._head = self._head, b''
        return line + self._file.readline()


_SNIFF_BYTES = 64
_PROTO = 0x80
# How protocol 0/1 pickles of a dict, list or object begin (they have no PROTO header).
_OLD_PROTOCOL_START = re.compile(rb'[(}\]]|c[\w.]+\n')
_SIGNATURES = (
    (b'\x89PNG', 'PNG image'),
    (b'\xff\xd8\xff', 'JPEG image'),
    (b'PK\x03\x04', 'zip archive, e.g. a torch.save checkpoint'),
    (b'\x1f\x8b', 'gzip data'),
)


def _sniff(head):
    """Why `head` cannot start a pickle, or None if it can."""
    if head[0] == _PROTO:
        if len(head) < 2:
            return 'file is truncated'
        if head[1] > pickle.HIGHEST_PROTOCOL:
            return f'not a pickle file (unknown pickle protocol {head[1]})'
        return None
    if _OLD_PROTOCOL_START.match(head):
        return None
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return f'not a pickle file ({kind})'
    text = head.decode('utf-8', 'ignore')
    if text and all(c.isprintable() or c.isspace() for c in text):
        return 'not a pickle file (text)'
    return f'not a pickle file (starts with {head[:8]!r})'


def _load(file, name):
    try:
        head = file.read(_SNIFF_BYTES)
    except Exception as e:  # OSError, or a decoding error from a text-mode file
        raise PickleLoadError(f'{name}: cannot read ({_describe(e)})') from None
    if not isinstance(head, bytes):
        raise PickleLoadError(f'{name}: file is not opened in binary mode')
    if not head:
        raise PickleLoadError(f'{name}: file is empty')
    problem = _sniff(head)
    if problem:
        raise PickleLoadError(f'{name}: {problem}')
    seekable = getattr(file, 'seekable', None)
    if seekable is not None and seekable():
        file.seek(-len(head), io.SEEK_CUR)
    else:
        file = _Replay(head, file)
    unpickler = _RestrictedUnpickler(file)
    try:
        obj = unpickler.load()
        return _swap_arrays(obj, {}) if unpickler.array_stubs else obj
    except _Problem as e:
        detail = str(e)
    except (EOFError, struct.error):  # struct.error: a fixed-size argument cut short
        detail = 'file is truncated'
    except pickle.UnpicklingError as e:
        truncated = 'truncated' in str(e) or 'exhausted' in str(e)
        detail = 'file is truncated' if truncated else f'corrupt pickle ({_describe(e)})'
    except OSError as e:
        detail = f'cannot read ({_describe(e)})'
    except Exception as e:  # anything else the bytes can provoke is a corrupt file, not a bug
        detail = f'corrupt or truncated pickle ({_describe(e)})'
    raise PickleLoadError(f'{name}: {_one_line(detail)}') from None


def safe_load(path_or_file):
    """Unpickle an EG3D network pickle (or any pickle within the whitelist) from a path or a
    binary file object, without executing code from it. Every failure is a PickleLoadError."""
    if isinstance(path_or_file, (str, os.PathLike)):
        name = str(path_or_file)
        try:
            file = open(path_or_file, 'rb')
        except FileNotFoundError:
            raise PickleLoadError(f'{name}: no such file') from None
        except OSError as e:
            raise PickleLoadError(f'{name}: cannot open ({e.strerror or _describe(e)})') from None
        with file:
            return _load(file, name)
    if not hasattr(path_or_file, 'read'):
        raise TypeError(f'safe_load() needs a path or a binary file object, '
                        f'not {type(path_or_file).__name__}')
    return _load(path_or_file, str(getattr(path_or_file, 'name', '<stream>')))


def module_state_dict(record):
    """The `state_dict()` of the module a record stands for: own parameters, own persistent
    buffers, then each child with a dotted prefix, in insertion order (docs/eg3d-reference.md
    2.9). Malformed records raise ValueError."""
    result = collections.OrderedDict()
    active = set()  # ids on the current path, to stop on cyclic (malicious) module graphs
    visits = 0      # a child shared many times over is visited once per path (see plain_structure)

    def visit(node, prefix):
        nonlocal visits
        where = prefix.rstrip('.') or 'record'
        if not (isinstance(node, (PersistentRecord, PlainRecord)) and isinstance(node.state, dict)):
            raise ValueError(f'{where}: not a module record ({type(node).__name__})')
        if id(node) in active:
            raise ValueError(f'{where}: module graph contains a cycle')
        visits += 1
        if visits > MAX_PLAIN_VALUES:
            raise ValueError(f'module graph too large: more than {MAX_PLAIN_VALUES} modules once '
                             'its shared children are expanded')
        if len(active) >= MAX_PLAIN_DEPTH:
            raise ValueError(f'{where}: modules nested too deeply (more than {MAX_PLAIN_DEPTH} '
                             'levels)')
        active.add(id(node))
        skipped = node.state.get('_non_persistent_buffers_set', set())
        if not isinstance(skipped, (set, frozenset)):
            raise ValueError(f'{where}: _non_persistent_buffers_set is not a set')
        for group, skip in (('_parameters', ()), ('_buffers', skipped)):
            for name, tensor in _named_entries(node.state, group, where):
                if tensor is None or name in skip:
                    continue
                if not isinstance(tensor, torch.Tensor):
                    raise ValueError(f'{prefix}{name}: not a tensor ({type(tensor).__name__})')
                result[prefix + name] = tensor
        for name, child in _named_entries(node.state, '_modules', where):
            if child is not None:
                visit(child, f'{prefix}{name}.')
        active.discard(id(node))

    visit(record, '')
    return result


def _named_entries(state, key, where):
    entries = state.get(key) or {}
    if not (isinstance(entries, dict) and all(isinstance(name, str) for name in entries)):
        raise ValueError(f'{where}: {key} is not a dict of names')
    return entries.items()
