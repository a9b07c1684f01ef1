"""Meshes of the level set: marching cubes in world coordinates, the optional clean-up (largest
component, Taubin smoothing), vertex colours and the official voxel-unit convention."""
import numpy as np
import torch
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import marching_cubes as lewiner_marching_cubes

from .formats import srgb_to_linear
from .options import CHUNK_POINTS, ShapeExportError
from .sampling import sample_volume


def marching_cubes(volume, first, resolution, box_warp, level):
    """Triangles of the level set of `volume` (grid indices starting at `first` on each axis), in
    world coordinates, faces outward. scikit-image's marching cubes, as the official code uses
    (wheels for every supported Python); 'ascent' because the inside is above the level."""
    if not volume.min() <= level <= volume.max():     # scikit-image refuses such a level
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), process=False)
    vertices, faces, _, _ = lewiner_marching_cubes(volume, float(level),
                                                   gradient_direction='ascent')
    vertices = (vertices.astype(np.float64) + first) * (box_warp / (resolution - 1)) - box_warp / 2
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
