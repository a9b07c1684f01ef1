"""The files a shape export writes besides trimesh's meshes: the official MRC2014 volume
(header and streamed sections), an output file replaced atomically with one-line errors a user
can act on, and the sRGB-to-linear conversion glTF vertex colours need."""
import contextlib
import math
import os

import numpy as np

from ..files import atomic_open
from .options import ShapeExportError


def mrc_header(shape, dmin, dmax, dmean, rms, label=b'eg3d_runtime shapes_export'):
    """The 1024-byte MRC2014 header of a little-endian mode-2 (float32) volume [nz, ny, nx],
    with the fields the official files have (cell 0, angles 90, axes 1 2 3, space group 1)."""
    nz, ny, nx = shape
    header = bytearray(1024)
    ints = np.array([nx, ny, nz, 2, 0, 0, 0, nx, ny, nz], '<i4')
    header[0:40] = ints.tobytes()
    header[40:64] = np.array([0, 0, 0, 90, 90, 90], '<f4').tobytes()      # cella, cellb
    header[64:76] = np.array([1, 2, 3], '<i4').tobytes()                  # mapc, mapr, maps
    header[76:88] = np.array([dmin, dmax, dmean], '<f4').tobytes()
    header[88:96] = np.array([1, 0], '<i4').tobytes()                     # ispg, nsymbt
    header[108:112] = np.array([20140], '<i4').tobytes()                  # nversion
    header[208:212] = b'MAP '
    header[212:216] = bytes((0x44, 0x44, 0, 0))                           # little-endian stamp
    header[216:220] = np.array([rms], '<f4').tobytes()
    header[220:224] = np.array([1], '<i4').tobytes()                      # nlabl
    header[224:224 + len(label)] = label
    return bytes(header)


def write_mrc(file, sections, shape):
    """Stream float32 sections into an MRC file: a provisional header, the data, then the header
    again with the statistics (min, max, mean, rms deviation)."""
    file.write(bytes(1024))
    lo, hi, total, squares, count = math.inf, -math.inf, 0.0, 0.0, 0
    for section in sections:
        file.write(section.astype('<f4', copy=False).tobytes())
        lo, hi = min(lo, float(section.min())), max(hi, float(section.max()))
        total += float(section.sum(dtype=np.float64))
        squares += float(np.square(section, dtype=np.float64).sum())
        count += section.size
    mean = total / count
    file.seek(0)
    file.write(mrc_header(shape, lo, hi, mean, math.sqrt(max(squares / count - mean * mean, 0.0))))


@contextlib.contextmanager
def _output_file(path):
    """`atomic_open(path, 'w+b')`, telling in one line the failures a user can fix: a folder it
    cannot write to (found before any work) and a file it cannot replace."""
    step = 'open'
    try:
        with atomic_open(path, 'w+b') as file:
            step = 'export'
            yield file
            step = 'replace'
    except OSError as e:
        if step == 'open':
            raise ShapeExportError(f'{os.path.dirname(os.path.abspath(path))}: cannot write to '
                                   f'the directory ({e.strerror})') from None
        if step == 'replace':
            raise ShapeExportError(f'{os.fspath(path)}: cannot write the file '
                                   f'({e.strerror})') from None
        raise


def srgb_to_linear(c):
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
