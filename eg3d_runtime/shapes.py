"""Shape export: density volumes and marching-cubes meshes of an EG3D tri-plane field (spec 6).

Coordinates. Meshes are in the world frame the renderer uses (y up, frontal camera on +z, head
inside the `box_warp` cube), so a mesh overlays the rendered image. The grid is exactly regular:
voxel (i, j, k) sits at `-box_warp/2 + (i, j, k) * box_warp/(N-1)` (x, y, z). The density is high
inside, and faces wind counter-clockwise seen from outside (normals point out). `voxel_units`
gives the official PLY convention instead: vertex (a, b, c) = (z, y, N-1-x) in voxel indices.
The `.mrc` volume is the official file: the official grid with its float32 sub-voxel shear, axis 0
flipped, a border of -1000 (spec 6.1); only the header label and statistics differ.

Speed. The tri-planes are computed once per latent. The decoder's first layer is linear, so it
is folded into the planes (each texel holds its 64 hidden-layer contributions): a density is then
a weighted sum of 12 texels, the activation and a 64-dot, about 5x faster than `run_model`. On the
regular grid each plane sees only two axes, so the sum splits into two [N^2, 64] tables and a
voxel costs one add, the activation and the dot. The folding is checked against `run_model` on
random points and dropped (plain `run_model` queries) if they disagree. Coarse-to-fine sampling
evaluates a grid 4x coarser, then the fine grid only in the cells where the level set can pass
(sign change at the corners, dilated by one cell), so surfaces thinner than about 4 voxels can be
missed; dense sampling is exact. Peak memory: the volume (N^3 floats, minus the cleared border),
the two tables and chunks of 64k points.
"""
import contextlib
import dataclasses
import math
import os
import time
import warnings

import mcubes
import numpy as np
import torch
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from . import cameras
from .files import atomic_open
from .generate import latent

BORDER_VALUE = -1000.0          # official value of the cleared border (spec 6.1 step 4)
OFFICIAL_LEVEL = 10.0           # official iso level, raw sigma units
MESH_FORMATS = ('ply', 'obj', 'glb', 'stl')
VOLUME_FORMATS = ('mrc', 'npy')
COARSE_STEP = 4                 # fine voxels per coarse cell edge in coarse-to-fine sampling
CHUNK_POINTS = 1 << 16          # points per decoder evaluation: bounds working memory, fits caches
MIN_RESOLUTION = 8


class ShapeExportError(Exception):
    """A problem the user can fix (no surface at the level, not enough memory, unwritable
    directory); the message is one line naming the file or option."""


class ExportCancelled(Exception):
    """Raised when the cancel flag is set; the output file is not created."""


@dataclasses.dataclass
class ShapeOptions:
    resolution: int = 512
    level: float = OFFICIAL_LEVEL
    format: str = 'ply'
    colors: bool = False
    smooth: bool = False
    largest_component: bool = False
    voxel_units: bool = False
    coarse_to_fine: bool = False
    trim: int | None = None     # voxels cleared at every face of the cube; None: official amount
    psi: float = 1.0            # truncation, used when exporting a seed
    cutoff: int | None = 14

    @property
    def trim_voxels(self):
        """Official border: int(30 N / 256) voxels (60 at 512). Meshes always clear at least the
        outermost layer, so they are closed where the head meets the cube."""
        trim = official_trim(self.resolution) if self.trim is None else self.trim
        return max(trim, 1) if self.format in MESH_FORMATS else trim

    def check(self):
        """Raise ValueError naming the option for impossible combinations."""
        if self.format not in MESH_FORMATS + VOLUME_FORMATS:
            raise ValueError(f"unknown format '{self.format}' "
                             f"(use one of {', '.join(MESH_FORMATS + VOLUME_FORMATS)})")
        if self.resolution < MIN_RESOLUTION:
            raise ValueError(f'resolution {self.resolution} is too small '
                             f'(at least {MIN_RESOLUTION})')
        if self.trim is not None and not 0 <= self.trim < (self.resolution - 1) // 2:
            raise ValueError(f'trim {self.trim} leaves nothing of a {self.resolution}^3 grid')
        if self.format == 'stl' and self.colors:
            raise ValueError('stl files cannot hold colours (use ply, obj or glb)')
        if self.format in VOLUME_FORMATS:
            mesh_only = [name for name in ('colors', 'smooth', 'largest_component', 'voxel_units',
                                           'coarse_to_fine') if getattr(self, name)]
            if mesh_only:
                raise ValueError(f"{', '.join(mesh_only)} only apply to meshes, "
                                 f"not to the '{self.format}' volume")


@dataclasses.dataclass
class ExportResult:
    path: str
    vertices: int = 0
    faces: int = 0
    seconds: dict = dataclasses.field(default_factory=dict)   # stage -> wall seconds


def official_trim(resolution):
    return int(30 * resolution / 256)


def seed_ws(G, seed, psi=1.0, cutoff=14):
    """ws of a seed as the official scripts and `generate` compute it: z from the seed, mapping
    conditioned on the frontal camera."""
    device = next(G.parameters()).device
    cond = cameras.orbit_camera_for(G.rendering_kwargs, 0.0, 0.0, device=device)
    return G.mapping(latent(seed, G.z_dim, device), cond, truncation_psi=psi,
                     truncation_cutoff=cutoff)


# ------------------------------------------------------------------------------------------------
# Density fields


class DensityField:
    """Raw density and colour over the box_warp cube. Subclasses give `sigma` and `colors`;
    `grid_sigma` may be overridden with a faster evaluation on a regular grid."""

    box_warp = 1.0
    device = 'cpu'

    def sigma(self, points):
        """[P, 3] float32 world points -> raw density [P]."""
        raise NotImplementedError

    def colors(self, points):
        """[P, 3] world points -> sRGB colour [P, 3] in [0, 1]."""
        raise NotImplementedError

    def grid_sigma(self, axis):
        """A sampler for the grid axis x axis x axis (`axis`: [N] float32 world coordinates):
        sampler(I, J, K) with index tensors [B, si], [B, sj], [B, sk] -> sigma [B, si, sj, sk]."""
        def sampler(I, J, K):
            x, y, z = torch.broadcast_tensors(axis[I][:, :, None, None], axis[J][:, None, :, None],
                                              axis[K][:, None, None, :])
            return self.sigma(torch.stack((x, y, z), -1).reshape(-1, 3)).reshape(x.shape)
        return sampler


class TriplaneField(DensityField):
    """The field of one latent: tri-planes computed once. Densities come from the folded decoder
    when it reproduces `run_model` (checked on random points), else from `run_model` itself;
    colours always from `run_model`."""

    def __init__(self, G, ws):
        self.G = G
        self.options = G.rendering_kwargs
        self.box_warp = float(self.options['box_warp'])
        self.planes = G.planes(ws, noise_mode='const')
        self.device = self.planes.device
        self.folded = self._fold()

    def _run(self, points):
        points = points.to(self.device, torch.float32)[None]
        directions = torch.zeros_like(points)
        directions[..., 2] = -1         # the official dummy direction; the decoder ignores it
        return self.G.renderer.run_model(self.planes, self.G.decoder, points, directions,
                                         self.options)

    def _fold(self):
        if self.options.get('density_noise', 0) > 0:
            return None                 # noisy densities cannot be folded
        try:
            folded = _FoldedPlanes(self.G.decoder, self.planes[0], self.box_warp)
        except (AttributeError, TypeError, ValueError, IndexError, RuntimeError):
            return None                 # a decoder of another shape: stay with run_model
        generator = torch.Generator().manual_seed(0)
        points = (torch.rand(4096, 3, generator=generator) - 0.5) * (1.2 * self.box_warp)
        fast, exact = folded.sigma(points.to(self.device)), self._run(points)['sigma'][0, :, 0]
        if not torch.allclose(fast, exact, rtol=1e-4, atol=1e-3):
            warnings.warn('the folded decoder disagrees with run_model; sampling through run_model '
                          f'(max difference {float((fast - exact).abs().max()):.3g})')
            return None
        return folded

    def sigma(self, points):
        if self.folded is not None:
            return self.folded.sigma(points.to(self.device, torch.float32))
        return self._run(points)['sigma'][0, :, 0]

    def colors(self, points):
        return self._run(points)['rgb'][0, :, :3].clamp(0, 1)

    def grid_sigma(self, axis):
        if self.folded is not None:
            return self.folded.grid_sampler(axis.to(self.device))
        return super().grid_sigma(axis.to(self.device))


class _FoldedPlanes:
    """The decoder's first layer is linear, so it is folded into the planes: each texel holds its
    contribution to the hidden layer (weight / 3: the decoder averages the planes). A point then
    costs one weighted sum of 12 texels (an embedding bag), the activation and the sigma row of
    the last layer, instead of 3 x 32-channel bilinear samples and the whole MLP. The look-ups
    follow spec 3.4: coordinates scaled by 2 / box_warp; plane 0 sees (x, y), plane 1 (x, z),
    plane 2 (z, x) as (column, row); bilinear, align_corners=False, zero outside the plane."""

    PLANE_AXES = ((0, 1), (0, 2), (2, 0))
    BORDER = 2      # zero texels around each plane: every tap of a clamped point falls inside

    def __init__(self, decoder, planes, box_warp):
        first, self.activation, last = decoder.net
        _, channels, height, width = planes.shape
        eye = torch.eye(channels, device=planes.device)
        self.bias1 = first(torch.zeros_like(eye[:1]))[0]
        weight1 = first(eye) - self.bias1                               # [C, hidden]
        eye = torch.eye(len(self.bias1), device=planes.device)
        bias2 = last(torch.zeros_like(eye[:1]))
        self.weight2 = (last(eye) - bias2)[:, 0].contiguous()          # sigma row, [hidden]
        self.bias2 = bias2[0, 0]
        b = self.BORDER
        texels = planes.permute(0, 2, 3, 1) @ (weight1 / 3)             # [3, H, W, hidden]
        texels = torch.nn.functional.pad(texels, (0, 0, b, b, b, b))
        self.texels = texels.reshape(-1, texels.shape[-1])              # [3 (H+2b) (W+2b), hidden]
        # Texel coordinate = world * slope + offset (grid_sample: ((u + 1) W - 1) / 2 with
        # u = 2 p / box_warp, plus the border). Below -1 or above W every tap is outside the
        # plane, so coordinates are clamped to [-1.5, W + 0.5]: their taps stay in the zero border.
        size = torch.tensor([width, height], device=planes.device)
        self.slope, self.offset = size / box_warp, (size - 1) / 2 + b
        self.low, self.high = torch.full_like(self.slope, b - 1.5), size + (b + 0.5)
        self.stride = width + 2 * b
        self.plane_size = self.stride * (height + 2 * b)
        self.corners = torch.tensor([0, 1, self.stride, self.stride + 1], device=planes.device)

    def features(self, points, planes=(0, 1, 2)):
        """Sum over `planes` of the folded bilinear samples at [P, 3] world points: [P, hidden]."""
        axes = torch.tensor([self.PLANE_AXES[p] for p in planes], device=points.device)
        xy = (points[:, axes] * self.slope + self.offset).clamp(self.low, self.high)  # [P, k, 2]
        corner = xy.floor()
        fx, fy = (xy - corner).unbind(-1)
        first = torch.tensor(planes, device=points.device) * self.plane_size
        index = (corner[..., 1] * self.stride + corner[..., 0]).long() + first  # [P, k]
        index = index[..., None] + self.corners                                  # [P, k, 4]
        weight = torch.stack(((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy), -1)
        return torch.nn.functional.embedding_bag(index.view(len(points), -1), self.texels,
                                                 per_sample_weights=weight.view(len(points), -1),
                                                 mode='sum')

    def output(self, hidden):
        return self.activation(hidden) @ self.weight2 + self.bias2

    def sigma(self, points):
        """Raw density at [P, 3] world points."""
        return torch.cat([self.output(self.bias1 + self.features(points[c:c + CHUNK_POINTS]))
                          for c in range(0, len(points), CHUNK_POINTS)])

    def grid_sampler(self, axis):
        """Sampler for the regular grid axis^3. Plane 0 sees (x, y) and planes 1, 2 see x and z,
        so the hidden layer is A[i, j] + B[i, k]: two [N^2, hidden] tables, and a voxel costs one
        add, the activation and the dot. Points (t_a, t_b, t_b) give both tables indexed
        [a N + b]: (x, y) = (t_a, t_b) on plane 0, (x, z) and (z, x) from (t_a, t_b) on 1 and 2."""
        n = len(axis)
        points = torch.stack((axis.repeat_interleave(n), axis.repeat(n), axis.repeat(n)), -1)
        chunks = [points[c:c + CHUNK_POINTS] for c in range(0, n * n, CHUNK_POINTS)]
        A = torch.cat([self.bias1 + self.features(c, (0,)) for c in chunks])
        B = torch.cat([self.features(c, (1, 2)) for c in chunks])

        def sampler(I, J, K):
            (batch, si), sj, sk = I.shape, J.shape[1], K.shape[1]
            ij = A.index_select(0, (I[:, :, None] * n + J[:, None, :]).reshape(-1))
            ik = B.index_select(0, (I[:, :, None] * n + K[:, None, :]).reshape(-1))
            return self.output(ij.view(batch, si, sj, 1, -1) + ik.view(batch, si, 1, sk, -1))
        return sampler


# ------------------------------------------------------------------------------------------------
# Sampling


class _Tracker:
    """Progress in [0, 1] over weighted stages, cancellation checks and stage timings."""

    def __init__(self, progress=None, cancel=None):
        self.progress = progress
        self.cancelled = getattr(cancel, 'is_set', cancel) or (lambda: False)
        self.seconds = {}
        self.span = (0.0, 0.0)
        self.name = None
        self.started = None

    def stage(self, name, start, stop):
        self.finish()
        self.name, self.span, self.started = name, (start, stop), time.perf_counter()
        self.update(0.0)

    def update(self, fraction):
        if self.cancelled():
            raise ExportCancelled('export cancelled')
        if self.progress is not None:
            start, stop = self.span
            self.progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), self.name)

    def finish(self):
        if self.name is not None:
            self.seconds[self.name] = time.perf_counter() - self.started
            self.name = None


def regular_axis(resolution, box_warp):
    """The grid coordinates along every axis, float32 (exactly what the decoder is queried at)."""
    step = box_warp / (resolution - 1)
    return (np.arange(resolution) * step - box_warp / 2).astype(np.float32)


def _sample_box(sampler, I, J, K, out, report=None):
    """out[a, b, c] = sigma at grid indices (I[a], J[b], K[c]), in chunks of about CHUNK_POINTS."""
    slabs = max(1, CHUNK_POINTS // (len(J) * len(K)))
    rows = max(1, CHUNK_POINTS // (slabs * len(K)))
    for a in range(0, len(I), slabs):
        for b in range(0, len(J), rows):
            sigma = sampler(I[None, a:a + slabs], J[None, b:b + rows], K[None])[0]
            out[a:a + slabs, b:b + rows] = sigma.cpu().numpy()
        if report:
            report(min(a + slabs, len(I)) / len(I))


def _dilate(mask):
    """One-cell dilation along each axis in turn (3x3x3 box)."""
    for axis in range(3):
        m = np.moveaxis(mask, axis, 0)
        grown = m.copy()
        grown[1:] |= m[:-1]
        grown[:-1] |= m[1:]
        mask = np.moveaxis(grown, 0, axis)
    return mask


def _sample_coarse_to_fine(sampler, idx, out, level, report):
    """Fill `out` (the interior, [m, m, m]) exactly in the blocks of COARSE_STEP^3 voxels whose
    coarse cell (or a neighbour) changes sign at the level; elsewhere with a value of the right
    sign (the cell's corner), which marching cubes never triangulates."""
    m, s = len(idx), COARSE_STEP
    blocks = -(-m // s)
    corner = np.minimum(np.arange(blocks + 1) * s, m - 1)
    coarse = np.empty((blocks + 1,) * 3, np.float32)
    _sample_box(sampler, idx[corner], idx[corner], idx[corner], coarse,
                lambda f: report(0.1 * f))
    above = coarse > level
    any_above = np.zeros((blocks,) * 3, bool)
    all_above = np.ones((blocks,) * 3, bool)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                c = above[dx:dx + blocks, dy:dy + blocks, dz:dz + blocks]
                any_above |= c
                all_above &= c
    active = any_above & ~all_above
    # Cells against the cleared border close the surface there when any corner is inside.
    face = np.zeros_like(active)
    face[[0, -1]] = face[:, [0, -1]] = face[:, :, [0, -1]] = True
    active = _dilate(active | (face & any_above))
    cell = np.arange(m) // s
    for a in range(m):
        out[a] = coarse[cell[a]][np.ix_(cell, cell)]
    todo = np.argwhere(active)
    batch = max(1, CHUNK_POINTS // s ** 3)
    offsets = np.arange(s)
    for start in range(0, len(todo), batch):
        b = todo[start:start + batch]
        I, J, K = (np.minimum(b[:, axis:axis + 1] * s + offsets, m - 1) for axis in range(3))
        values = sampler(idx[I], idx[J], idx[K]).cpu().numpy()
        out[I[:, :, None, None], J[:, None, :, None], K[:, None, None, :]] = values
        report(0.1 + 0.9 * min(start + batch, len(todo)) / len(todo))


def sample_volume(field, resolution, trim, coarse_to_fine=False, level=OFFICIAL_LEVEL, full=False,
                  report=None):
    """Raw sigma on the regular grid, indexed [x, y, z], with `trim` voxels at every face set to
    -1000. Returns (volume, first index): the whole N^3 grid if `full`, otherwise only the
    evaluated interior plus one cleared layer around it (all marching cubes needs)."""
    report = report or (lambda fraction: None)
    lo, hi = trim, resolution - trim
    first = 0 if full else max(lo - 1, 0)
    size = (resolution if full else min(hi + 1, resolution)) - first
    volume = np.full((size,) * 3, BORDER_VALUE, np.float32)
    inner = volume[lo - first:hi - first, lo - first:hi - first, lo - first:hi - first]
    sampler = field.grid_sigma(torch.from_numpy(regular_axis(resolution, field.box_warp)))
    idx = torch.arange(lo, hi, device=field.device)
    if coarse_to_fine:
        _sample_coarse_to_fine(sampler, idx, inner, level, report)
    else:
        _sample_box(sampler, idx, idx, idx, inner, report)
    return volume, first


def official_points(resolution, box_warp, flat_index):
    """The official shape grid (spec 6.1) at int64 flat indices n = i N^2 + j N + k, with the same
    float32 operations, so columns 0 and 1 keep the official sub-voxel shear."""
    n = resolution
    voxel_size = box_warp / (n - 1)
    origin = -box_warp / 2
    col2 = (flat_index % n).to(torch.float32)
    col1 = (flat_index.to(torch.float32) / n) % n
    col0 = ((flat_index.to(torch.float32) / n) / n) % n
    return torch.stack([c * voxel_size + origin for c in (col0, col1, col2)], -1)


def official_sections(field, resolution, trim, report=None):
    """The official volume section by section in file order: section s holds x index N-1-s (axis
    0 flipped), rows y, columns z; `trim` voxels at every face are -1000."""
    n = resolution
    inner = torch.arange(trim, n - trim, dtype=torch.int64)
    plane = (inner[:, None] * n + inner[None, :]).reshape(-1)
    for s in range(n):
        i = n - 1 - s
        section = np.full((n, n), BORDER_VALUE, np.float32)
        if trim <= i < n - trim:
            points = official_points(n, field.box_warp, i * n * n + plane)
            sigma = torch.cat([field.sigma(points[c:c + CHUNK_POINTS]).cpu()
                               for c in range(0, len(points), CHUNK_POINTS)])
            section[trim:n - trim, trim:n - trim] = sigma.reshape(len(inner), len(inner)).numpy()
        if report:
            report((s + 1) / n)
        yield section


# ------------------------------------------------------------------------------------------------
# Files


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


# ------------------------------------------------------------------------------------------------
# Memory


def available_memory():
    """Bytes the system can still give us (Linux MemAvailable), or None when unknown."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def required_memory(options):
    """A generous estimate of the bytes an export needs beyond the loaded network: the volume,
    the folded tables, working chunks and, for meshes, a surface of ~10 N^2 vertices."""
    n = options.resolution
    trim = options.trim_voxels
    if options.format == 'mrc':
        return 2 * n * n * 4 + (256 << 20)
    side = n if options.format == 'npy' else n - 2 * trim + 2
    mesh = 0 if options.format in VOLUME_FORMATS else 10 * n * n * 200
    return side ** 3 * 4 + 2 * n * n * 64 * 4 + mesh + (256 << 20)


def check_memory(options):
    needed, free = required_memory(options), available_memory()
    if free is not None and needed > free:
        raise ShapeExportError(f'resolution {options.resolution}: needs about {needed / 2**30:.1f} '
                               f'GiB of memory, only {free / 2**30:.1f} GiB available '
                               f'(use a smaller --resolution)')


# ------------------------------------------------------------------------------------------------
# Meshes


def marching_cubes(volume, first, resolution, box_warp, level):
    """Triangles of the level set of `volume` (grid indices starting at `first` on each axis), in
    world coordinates. PyMCubes orients faces outward when the inside is above the level."""
    vertices, faces = mcubes.marching_cubes(volume, float(level))
    vertices = (vertices + first) * (box_warp / (resolution - 1)) - box_warp / 2
    return trimesh.Trimesh(vertices, faces.astype(np.int64), process=False)


def keep_largest_component(mesh):
    """Keep the connected piece with the most faces (drops floaters and specks)."""
    faces = mesh.faces
    edges = coo_matrix((np.ones(faces.size, bool), (faces.ravel(), np.roll(faces, 1, 1).ravel())),
                       shape=(len(mesh.vertices),) * 2)
    _, labels = connected_components(edges, directed=False)
    face_labels = labels[faces[:, 0]]
    mesh.update_faces(face_labels == np.bincount(face_labels).argmax())
    mesh.remove_unreferenced_vertices()


def to_voxel_units(mesh, resolution, box_warp):
    """World vertices -> the official PLY convention (z, y, N-1-x) in voxel indices. The map is a
    rotation, so face orientation is unchanged."""
    ijk = (mesh.vertices + box_warp / 2) / (box_warp / (resolution - 1))
    mesh.vertices = np.stack([ijk[:, 2], ijk[:, 1], resolution - 1 - ijk[:, 0]], 1)


def build_mesh(field, options, tracker, name='mesh'):
    n, level = options.resolution, options.level
    tracker.stage('density', 0.05, 0.75)
    volume, first = sample_volume(field, n, options.trim_voxels, options.coarse_to_fine, level,
                                  report=tracker.update)
    tracker.stage('marching cubes', 0.75, 0.85)
    mesh = marching_cubes(volume, first, n, field.box_warp, level)
    if len(mesh.faces) == 0:
        inner = volume[1:-1, 1:-1, 1:-1]
        raise ShapeExportError(f'{name}: no surface at level {level:g}: the raw density in the '
                               f'box ranges from {inner.min():.3g} to {inner.max():.3g} (choose '
                               f'--level in between)')
    del volume
    tracker.stage('clean-up', 0.85, 0.88)
    if options.largest_component:
        keep_largest_component(mesh)
    if options.smooth:
        trimesh.smoothing.filter_taubin(mesh, iterations=10)
    if options.colors:
        tracker.stage('colours', 0.88, 0.97)
        points = torch.from_numpy(mesh.vertices.astype(np.float32))
        rgb = np.empty((len(points), 3), np.float32)
        for start in range(0, len(points), CHUNK_POINTS):
            chunk = points[start:start + CHUNK_POINTS]
            rgb[start:start + CHUNK_POINTS] = field.colors(chunk).cpu().numpy()
            tracker.update(start / len(points))
        if options.format == 'glb':     # glTF vertex colours are linear (glTF 2.0, COLOR_0)
            rgb = srgb_to_linear(rgb)
        rgba = np.full((len(rgb), 4), 255, np.uint8)
        rgba[:, :3] = np.round(rgb * 255)
        mesh.visual.vertex_colors = rgba
    if options.voxel_units:
        to_voxel_units(mesh, n, field.box_warp)
    return mesh


# ------------------------------------------------------------------------------------------------
# Entry points (command line and viewer)


def _export(field, file, options, tracker, result):
    if options.format == 'mrc':
        tracker.stage('density', 0.05, 1.0)
        write_mrc(file, official_sections(field, options.resolution, options.trim_voxels,
                                          tracker.update), (options.resolution,) * 3)
    elif options.format == 'npy':
        tracker.stage('density', 0.05, 0.95)
        volume, _ = sample_volume(field, options.resolution, options.trim_voxels, full=True,
                                  report=tracker.update)
        tracker.stage('write', 0.95, 1.0)
        np.save(file, volume)
    else:
        mesh = build_mesh(field, options, tracker, result.path)
        result.vertices, result.faces = len(mesh.vertices), len(mesh.faces)
        tracker.stage('write', 0.97, 1.0)
        # glTF viewers shade flat without normals; PLY/OBJ readers compute smooth ones themselves.
        extra = {'include_normals': True} if options.format == 'glb' else {}
        mesh.export(file, file_type=options.format, **extra)
    tracker.update(1.0)
    tracker.finish()


def _run(make_field, path, options, progress, cancel):
    options = options or ShapeOptions()
    options.check()
    check_memory(options)
    tracker, result = _Tracker(progress, cancel), ExportResult(os.fspath(path))
    try:
        with torch.no_grad(), _output_file(path) as file:
            tracker.stage('planes', 0.0, 0.05)
            _export(make_field(), file, options, tracker, result)
    except MemoryError:
        raise ShapeExportError(f'{result.path}: out of memory at resolution {options.resolution} '
                               f'(use a smaller resolution)') from None
    result.seconds = tracker.seconds
    return result


def export_field(field, path, options=None, progress=None, cancel=None):
    """Export a density field to `path` in options.format (see ShapeOptions).
    `progress(fraction, stage)` is called often with fraction in [0, 1]; `cancel` (a
    threading.Event or a callable) is checked as often and makes the export raise ExportCancelled
    without creating the file. User-fixable problems raise ShapeExportError (one line)."""
    return _run(lambda: field, path, options, progress, cancel)


def export_shape(G, seed_or_ws, path, options=None, progress=None, cancel=None):
    """Export the shape of a seed (int; z and mapping as `generate`, with options.psi/cutoff) or
    of ws [1, num_ws, w_dim] of generator G; the tri-planes are computed once. Blocking and
    GUI-free: a viewer runs it in a worker thread with a progress callback and a cancel Event."""
    def make_field():
        ws = seed_or_ws
        if isinstance(seed_or_ws, int):
            options_ = options or ShapeOptions()
            ws = seed_ws(G, seed_or_ws, options_.psi, options_.cutoff)
        return TriplaneField(G, ws)
    return _run(make_field, path, options, progress, cancel)
