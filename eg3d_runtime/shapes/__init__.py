"""Shape export: density volumes and marching-cubes meshes of an EG3D tri-plane field
(docs/eg3d-reference.md 6).

Coordinates. Meshes are in the world frame the renderer uses (y up, frontal camera on +z, head
inside the `box_warp` cube), so a mesh overlays the rendered image. The grid is exactly regular:
voxel (i, j, k) sits at `-box_warp/2 + (i, j, k) * box_warp/(N-1)` (x, y, z). The density is high
inside, and faces wind counter-clockwise seen from outside (normals point out). `voxel_units`
gives the official PLY convention instead: vertex (a, b, c) = (z, y, N-1-x) in voxel indices.
The `.mrc` volume is the official file: the official grid with its float32 sub-voxel shear, axis 0
flipped, a border of -1000 (docs/eg3d-reference.md 6.1); only the header label and statistics
differ.

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

Modules: options (what to export, memory check), fields (density fields, weight folding),
sampling (grids, coarse-to-fine), mesh (marching cubes, clean-up, colours), formats (mrc and
output files), export (the entry points).
"""
import importlib

# Imported on first use (PEP 562): a command names its options (options.MIN_RESOLUTION,
# MESH_FORMATS) before torch is loaded.
_EXPORTS = {
    **dict.fromkeys(('export_field', 'export_shape'), '.export'),
    **dict.fromkeys(('DensityField', 'TriplaneField'), '.fields'),
    'srgb_to_linear': '.formats',
    'marching_cubes': '.mesh',
    **dict.fromkeys(('BORDER_VALUE', 'MESH_FORMATS', 'MIN_RESOLUTION', 'OFFICIAL_LEVEL',
                     'VOLUME_FORMATS', 'ExportCancelled', 'ShapeExportError', 'ShapeOptions',
                     'check_memory'), '.options'),
    **dict.fromkeys(('official_points', 'regular_axis', 'sample_volume'), '.sampling'),
}

def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
