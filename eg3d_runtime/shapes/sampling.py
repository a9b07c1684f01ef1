"""Sampling a density field on the export grids: the regular grid of meshes and `.npy` volumes
(dense, or coarse-to-fine near the level set) and the official `.mrc` grid with its float32
sub-voxel shear, section by section in file order."""
import numpy as np
import torch

from .options import BORDER_VALUE, CHUNK_POINTS, OFFICIAL_LEVEL

COARSE_STEP = 4                 # fine voxels per coarse cell edge in coarse-to-fine sampling


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
    """The official shape grid (docs/eg3d-reference.md 6.1) at int64 flat indices
    n = i N^2 + j N + k, with the same float32 operations, so columns 0 and 1 keep the official
    sub-voxel shear."""
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
