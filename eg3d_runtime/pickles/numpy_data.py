"""Inert stand-ins for the numpy globals a network pickle may name (dtypes, scalars, arrays):
only plain numeric data, rebuilt with `numpy.frombuffer`, never by numpy's own reducers."""
import math
import re

import numpy as np

from .unpickler import _one_line, _Problem


_DTYPE_SPEC = re.compile(r'[biufc]\d{1,2}\Z')


class _DTypeStub:
    """Stand-in for `numpy.dtype(spec, align, copy)` + BUILD(state); plain numeric types only."""

    def __init__(self, spec, align=False, copy=False):
        if not (isinstance(spec, str) and _DTYPE_SPEC.match(spec)):
            raise _Problem(f'unsupported numpy dtype {_one_line(repr(spec), 40)}')
        self.dtype = np.dtype(spec)

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ('<', '>', '|', '=')
                and all(part is None for part in state[2:5])):
            raise _Problem('unsupported numpy dtype (structured or malformed)')
        if state[1] in ('<', '>'):
            self.dtype = self.dtype.newbyteorder(state[1])


def _numpy_scalar(dtype, data):
    if not (isinstance(dtype, _DTypeStub) and isinstance(data, (bytes, bytearray))
            and len(data) == dtype.dtype.itemsize):
        raise _Problem('malformed numpy scalar')
    return np.frombuffer(data, dtype=dtype.dtype)[0].item()


def _numpy_array(data, dtype, shape, order):
    if not (isinstance(dtype, _DTypeStub) and isinstance(data, (bytes, bytearray))
            and isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
            and order in ('C', 'F') and len(data) == math.prod(shape) * dtype.dtype.itemsize):
        raise _Problem('malformed numpy array')
    array = np.frombuffer(data, dtype=dtype.dtype).reshape(shape, order=order)
    return array.astype(array.dtype.newbyteorder('='))  # a writable, native-endian copy


_NDARRAY = object()  # what the global numpy.ndarray stands for; only `_reconstruct` accepts it


class _ArrayStub:
    """Result of `_reconstruct`; BUILD supplies the data, `_swap_arrays` then puts in the array."""
    array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _Problem('malformed numpy array')
        _version, shape, dtype, fortran, data = state
        self.array = _numpy_array(data, dtype, shape, 'F' if fortran else 'C')
