"""Tensors from the legacy `torch.save` streams that official pickles embed as storages (spec
1.6): each stream is read by its own restricted unpickler that knows only storage types, and its
raw data is decoded with `numpy.frombuffer`; `torch.load` is never called. Kept apart from
safe_unpickle.py because it is a second file format inside the first."""
import dataclasses
import io

import numpy as np
import torch

from .unpickler import _describe, _Problem, _PythonUnpickler, _refused


@dataclasses.dataclass(frozen=True)
class _StorageType:
    """What a `torch.<X>Storage` global stands for in the inner stream: a dtype, not callable."""
    name: str
    numpy_dtype: str  # little-endian layout of the raw data
    torch_dtype: torch.dtype

    def decode(self, data, offset, count):
        array = np.frombuffer(data, dtype=self.numpy_dtype, count=count, offset=offset)
        if self.torch_dtype == torch.bool:
            array = array != 0  # any nonzero byte is True; torch must not see other values
        else:
            array = array.astype(array.dtype.newbyteorder('='))  # the one copy, native-endian
        return torch.from_numpy(array).view(self.torch_dtype)


_STORAGE_TYPES = {t.name: t for t in (
    _StorageType('FloatStorage', '<f4', torch.float32),
    _StorageType('HalfStorage', '<f2', torch.float16),
    _StorageType('DoubleStorage', '<f8', torch.float64),
    _StorageType('BFloat16Storage', '<i2', torch.bfloat16),
    _StorageType('LongStorage', '<i8', torch.int64),
    _StorageType('IntStorage', '<i4', torch.int32),
    _StorageType('ShortStorage', '<i2', torch.int16),
    _StorageType('CharStorage', '|i1', torch.int8),
    _StorageType('ByteStorage', '|u1', torch.uint8),
    _StorageType('BoolStorage', '|u1', torch.bool),
)}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


class _Storage:
    """A storage of the inner stream; `flat` is its 1-D tensor once the raw data is read."""

    def __init__(self, storage_type, numel):
        self.type, self.numel, self.flat = storage_type, numel, None


class _LegacyUnpickler(_PythonUnpickler):
    """For the pickles inside a legacy `torch.save` stream: storage types and storage ids only."""

    def __init__(self, stream, storages):
        super().__init__(stream)
        self._storages = storages

    def find_class(self, module, name):
        if module == 'torch' and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise _refused(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == 'storage'):
            raise _Problem('malformed tensor storage (unsupported persistent id)')
        _, storage_type, key, _location, numel, view_metadata = pid
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str)
                and type(numel) is int and numel >= 0 and view_metadata is None):
            raise _Problem('malformed tensor storage (unsupported persistent id)')
        storage = self._storages.setdefault(key, _Storage(storage_type, numel))
        if (storage.type, storage.numel) != (storage_type, numel):
            raise _Problem('malformed tensor storage (conflicting storage ids)')
        return storage


def _parse_legacy_stream(data):
    stream, storages = io.BytesIO(data), {}

    def next_pickle():
        return _LegacyUnpickler(stream, storages).load()

    magic, protocol, sys_info = next_pickle(), next_pickle(), next_pickle()
    if type(magic) is not int or magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
        raise _Problem('malformed tensor storage (not a legacy torch.save stream)')
    if not (isinstance(sys_info, dict) and sys_info.get('little_endian') is True):
        raise _Problem('malformed tensor storage (big-endian data is not supported)')
    result, keys = next_pickle(), next_pickle()
    if not isinstance(result, _Storage) or not isinstance(keys, list):
        raise _Problem('malformed tensor storage (the stream holds no single storage)')
    offset = stream.tell()
    for key in keys:
        storage = storages.get(key) if isinstance(key, str) else None
        if storage is None or storage.flat is not None:
            raise _Problem('malformed tensor storage (unknown or repeated storage key)')
        count = int.from_bytes(data[offset:offset + 8], 'little', signed=True)
        nbytes = storage.numel * np.dtype(storage.type.numpy_dtype).itemsize
        if count != storage.numel or offset + 8 + nbytes > len(data):
            raise _Problem('malformed tensor storage (data size does not match)')
        storage.flat = storage.type.decode(data, offset + 8, count)
        offset += 8 + nbytes
    if any(storage.flat is None for storage in storages.values()):
        raise _Problem('malformed tensor storage (storage data missing)')
    return result


def _load_from_bytes(data):
    """`torch.storage._load_from_bytes`: the storage is a complete legacy torch.save stream."""
    if not isinstance(data, (bytes, bytearray)):
        raise _Problem('malformed tensor storage (not bytes)')
    try:
        return _parse_legacy_stream(data)
    except _Problem:
        raise
    except Exception as e:
        raise _Problem(f'malformed tensor storage ({_describe(e)})') from None


def _is_int_tuple(value):
    return isinstance(value, tuple) and all(type(n) is int and n >= 0 for n in value)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False,
                    backward_hooks=None, metadata=None):
    """`_rebuild_tensor(_v2)`; gradient flags, hooks and metadata are dropped."""
    if not (isinstance(storage, _Storage) and type(storage_offset) is int and storage_offset >= 0
            and _is_int_tuple(size) and _is_int_tuple(stride) and len(size) == len(stride)):
        raise _Problem('malformed tensor (bad storage, offset, size or stride)')
    if 0 in size:
        end = storage_offset
    else:
        end = storage_offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if end > storage.numel:
        raise _Problem(f'malformed tensor (size {size} with stride {stride} at offset '
                       f'{storage_offset} exceeds its storage of {storage.numel} elements)')
    return torch.as_strided(storage.flat, size, stride, storage_offset)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """`_rebuild_parameter(_with_state)`: a Parameter comes back as its plain tensor."""
    if not isinstance(data, torch.Tensor):
        raise _Problem('malformed parameter (no tensor)')
    return data


_TENSOR_TYPES = (object(), object())  # stand-ins for the globals torch.Tensor and Parameter


def _rebuild_from_type_v2(func, new_type, args, state):
    """Tensors with Python attributes; only plain tensors and Parameters are accepted."""
    if func not in (_rebuild_tensor, _rebuild_parameter) or new_type not in _TENSOR_TYPES \
            or not isinstance(args, tuple):
        raise _Problem('malformed tensor (unsupported tensor subclass)')
    return func(*args)
