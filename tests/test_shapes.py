"""Shape export: sampled densities, the official mrc layout, meshes and colours as files load
back, cancel and errors, and the command line."""
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from eg3d_runtime import shapes
from eg3d_runtime.shapes import fields
from eg3d_runtime.shapes import (BORDER_VALUE, DensityField, ExportCancelled, ShapeExportError,
                                 ShapeOptions, TriplaneField, export_field, export_shape,
                                 official_points, regular_axis, sample_volume)
from eg3d_runtime.views import seed_ws

from conftest import REPO

CENTER = (0.1, -0.05, 0.08)
TWO_BLOBS = ((CENTER, 0.3), ((-0.2, 0.1, -0.1), 0.2))     # overlapping: a saddle where they meet


class Blob(DensityField):
    """Spheres of raw density 10 on their surface, rising inward; colour = position in the box."""

    def __init__(self, spheres=((CENTER, 0.3),), box_warp=1.0):
        self.spheres, self.box_warp = spheres, box_warp

    def sigma(self, points):
        p = points.double()
        fields = [10 + 100 * (r - (p - torch.tensor(c, dtype=torch.float64)).norm(dim=-1))
                  for c, r in self.spheres]
        return torch.stack(fields).amax(0).float()

    def colors(self, points):
        return (points / self.box_warp + 0.5).clamp(0, 1)


class Ramp(DensityField):
    """A density with a different slope along each axis, to check orientations."""

    def sigma(self, points):
        p = points.double()
        return (1000 * p[:, 0] + 100 * p[:, 1] + 10 * p[:, 2]).float()


def load_mesh(path):
    mesh = trimesh.load(path, process=False)
    if isinstance(mesh, trimesh.Scene):
        (mesh,) = mesh.geometry.values()
    return mesh


def outward(mesh, center):
    """Fraction of faces whose normal points away from `center`."""
    return float(np.mean(np.einsum('ij,ij->i', mesh.face_normals,
                                   mesh.triangles_center - center) > 0))


@pytest.fixture(scope='module')
def ws(fixture_G):
    return seed_ws(fixture_G, 0, psi=0.7)


@pytest.fixture(scope='module')
def field(fixture_G, ws):
    return TriplaneField(fixture_G.session, ws)


def grid_points(axis):
    x, y, z = torch.meshgrid(axis, axis, axis, indexing='ij')
    return torch.stack((x, y, z), -1).reshape(1, -1, 3)


def test_volume_matches_sample_mixed(fixture_G, ws, field):
    n, trim = 20, 2
    axis = torch.from_numpy(regular_axis(n, field.box_warp))
    assert field.folded is not None                                  # the fast path is used
    volume, first = sample_volume(field, n, trim, full=True)
    points = grid_points(axis)
    expected = fixture_G.sample_mixed(points, torch.zeros_like(points), ws,
                                      noise_mode='const')['sigma'].reshape(n, n, n).numpy()
    inner = slice(trim, n - trim)
    assert first == 0
    np.testing.assert_allclose(volume[inner, inner, inner], expected[inner, inner, inner],
                               rtol=1e-5, atol=1e-5)
    border = np.ones((n,) * 3, bool)
    border[inner, inner, inner] = False
    assert np.all(volume[border] == BORDER_VALUE)
    cropped, first = sample_volume(field, n, trim)
    assert first == trim - 1 and np.array_equal(cropped, volume[1:-1, 1:-1, 1:-1])


def test_run_model_fallback(fixture_G, ws, field, monkeypatch):
    """A fold that disagrees with run_model is dropped with a warning; run_model then gives the
    same volume and official densities."""
    outside = torch.tensor([[5.0, -7.0, 0.3], [0.51, 0.49, -0.502], [-0.5, 0.503, 0.0]])
    points = torch.cat([official_points(12, 1.0, torch.arange(500)), outside])
    volume, sigma = sample_volume(field, 12, 1)[0], field.sigma(points)
    folded_features = fields._FoldedPlanes.features
    monkeypatch.setattr(fields._FoldedPlanes, 'features',
                        lambda self, points, planes=None: 2 * folded_features(self, points, planes))
    with pytest.warns(UserWarning, match='folded decoder disagrees'):
        plain = TriplaneField(fixture_G.session, ws)
    assert plain.folded is None
    np.testing.assert_allclose(sample_volume(plain, 12, 1)[0], volume, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(plain.sigma(points), sigma, rtol=1e-5, atol=1e-5)


def test_coarse_to_fine_equals_dense_near_the_surface(field):
    n = 40
    dense, _ = sample_volume(field, n, 1)
    level = float(np.quantile(dense[1:-1, 1:-1, 1:-1], 0.8))
    fine, _ = sample_volume(field, n, 1, coarse_to_fine=True, level=level)
    assert np.array_equal(dense > level, fine > level)
    a, b = (shapes.marching_cubes(v, 0, n, 1.0, level) for v in (dense, fine))
    np.testing.assert_allclose(np.sort(a.vertices, 0), np.sort(b.vertices, 0), atol=1e-6)


def test_marching_cubes_agrees_with_pymcubes():
    """scikit-image's marching cubes replaced PyMCubes 0.1.6 (no Python 3.13 wheel): on two
    overlapping blobs at 24^3 it gives PyMCubes' vertices (tests/data/pymcubes-two-blobs.npz,
    PyMCubes' mesh of this volume) and a watertight surface facing the same way. The two split
    some cells into other triangles, so faces are compared by the volume they enclose."""
    n = 24
    mesh = shapes.marching_cubes(*sample_volume(Blob(TWO_BLOBS), n, 1), n, 1.0, 10)
    with np.load(REPO / 'tests' / 'data' / 'pymcubes-two-blobs.npz') as ref:
        reference = trimesh.Trimesh(ref['vertices'], ref['faces'], process=False)
    assert len(mesh.vertices) == len(reference.vertices) > 1000
    assert len(mesh.faces) == len(reference.faces)
    hausdorff = max(cKDTree(a.vertices).query(b.vertices)[0].max()
                    for a, b in ((mesh, reference), (reference, mesh)))
    assert hausdorff < 1e-6
    assert mesh.is_watertight and reference.is_watertight
    np.testing.assert_allclose(mesh.volume, reference.volume, rtol=1e-3)   # measured 1.5e-4
    assert mesh.volume > 0


def test_official_grid_follows_the_spec():
    # Spec 6.1: for N = 4 the last point is (0.8125, 0.75, 0.5), not (0.5, 0.5, 0.5).
    last = official_points(4, 1.0, torch.tensor([63]))[0]
    assert last.tolist() == [0.8125, 0.75, 0.5]
    # All of a small grid, and part of a 512^3 one where float32(n) itself rounds (n > 2^24).
    late = 500 * 512 ** 2
    for n, flat in ((16, np.arange(16 ** 3)), (512, np.arange(late, late + 4096))):
        col1 = np.remainder(flat.astype(np.float32) / np.float32(n), np.float32(n))
        col0 = np.remainder(flat.astype(np.float32) / np.float32(n) / np.float32(n), np.float32(n))
        cols = np.stack([col0, col1, (flat % n).astype(np.float32)], 1)
        expected = cols * np.float32(1 / (n - 1)) + np.float32(-0.5)
        actual = official_points(n, 1.0, torch.from_numpy(flat)).numpy()
        np.testing.assert_array_equal(actual, expected)


def read_mrc(path):
    raw = path.read_bytes()
    ints = np.frombuffer(raw[:1024], '<i4')
    floats = np.frombuffer(raw[:1024], '<f4')
    nx, ny, nz = ints[:3]
    data = np.frombuffer(raw[1024:], '<f4').reshape(nz, ny, nx)
    return raw[:1024], ints, floats, data


def test_mrc_has_the_official_layout(tmp_path):
    n = 16
    path = tmp_path / 'ramp.mrc'
    export_field(Ramp(), path, ShapeOptions(resolution=n, format='mrc'))
    header, ints, floats, data = read_mrc(path)
    assert path.stat().st_size == 1024 + 4 * n ** 3
    assert list(ints[:10]) == [n, n, n, 2, 0, 0, 0, n, n, n]              # size, mode 2, start, m
    assert list(floats[13:16]) == [90, 90, 90] and list(ints[16:19]) == [1, 2, 3]
    assert ints[22] == 1 and ints[23] == 0 and ints[27] == 20140           # ispg, nsymbt, version
    assert header[208:212] == b'MAP ' and header[212:214] == b'\x44\x44' and ints[55] == 1
    np.testing.assert_allclose(floats[19:22], [data.min(), data.max(), data.mean()], rtol=1e-5)
    np.testing.assert_allclose(floats[54], data.std(dtype=np.float64), rtol=1e-4)
    # The official volume built from the spec: sigma on the sheared grid reshaped [i, j, k],
    # axis 0 flipped, int(30 N / 256) = 1 voxel at every face set to -1000.
    points = official_points(n, 1.0, torch.arange(n ** 3))
    expected = np.flip(Ramp().sigma(points).numpy().reshape(n, n, n), 0).copy()
    pad = 1
    for axis in range(3):
        view = np.moveaxis(expected, axis, 0)
        view[:pad] = view[-pad:] = BORDER_VALUE
    np.testing.assert_array_equal(data, expected)
    # Orientation: sections run from +x to -x, rows along +y, columns along +z.
    assert data[pad, 8, 8] > data[n - 1 - pad, 8, 8]
    assert data[8, pad, 8] < data[8, n - 1 - pad, 8] and data[8, 8, pad] < data[8, 8, n - 1 - pad]


def test_mrc_of_a_network_matches_sample_mixed(tmp_path, fixture_G, ws):
    n = 12
    path = tmp_path / 'seed.mrc'
    export_shape(fixture_G.session, ws, path, ShapeOptions(resolution=n, format='mrc', trim=0))
    data = read_mrc(path)[3]
    points = official_points(n, 1.0, torch.arange(n ** 3))[None]
    sigma = fixture_G.sample_mixed(points, torch.zeros_like(points), ws, noise_mode='const')
    np.testing.assert_allclose(data, np.flip(sigma['sigma'].reshape(n, n, n).numpy(), 0),
                               rtol=1e-5, atol=1e-6)


def test_npy_is_the_regular_volume(tmp_path, field):
    path = tmp_path / 'v.npy'
    export_field(field, path, ShapeOptions(resolution=16, format='npy'))
    np.testing.assert_array_equal(np.load(path), sample_volume(field, 16, 1, full=True)[0])


def test_mesh_is_in_world_coordinates_with_outward_normals(tmp_path):
    n, radius = 48, 0.3
    path = tmp_path / 'blob.ply'
    result = export_field(Blob(), path, ShapeOptions(resolution=n, trim=0))
    mesh = load_mesh(path)
    assert (result.vertices, result.faces) == (len(mesh.vertices), len(mesh.faces))
    voxel = 1 / (n - 1)
    distance = np.linalg.norm(mesh.vertices - CENTER, axis=1)
    assert np.all(np.abs(distance - radius) < voxel / 4)
    np.testing.assert_allclose(mesh.bounds, [np.subtract(CENTER, radius),
                                             np.add(CENTER, radius)], atol=voxel / 4)
    assert mesh.is_watertight and outward(mesh, CENTER) == 1.0 and mesh.volume > 0


def test_voxel_units_follow_the_official_ply_convention(tmp_path):
    n = 48
    world, voxels = tmp_path / 'w.ply', tmp_path / 'v.ply'
    export_field(Blob(), world, ShapeOptions(resolution=n, trim=0))
    export_field(Blob(), voxels, ShapeOptions(resolution=n, trim=0, voxel_units=True))
    w, v = load_mesh(world), load_mesh(voxels)
    ijk = (w.vertices + 0.5) * (n - 1)
    np.testing.assert_allclose(v.vertices, np.stack([ijk[:, 2], ijk[:, 1], n - 1 - ijk[:, 0]], 1),
                               atol=1e-5)                     # PLY stores float32
    center = (np.array(CENTER) + 0.5) * (n - 1)
    assert outward(v, [center[2], center[1], n - 1 - center[0]]) == 1.0


@pytest.mark.parametrize('coarse_to_fine', [False, True])
def test_trim_closes_the_mesh_at_the_cleared_border(tmp_path, coarse_to_fine):
    n = 32
    path = tmp_path / 'big.stl'
    export_field(Blob(((CENTER, 0.6),)), path, ShapeOptions(resolution=n, format='stl', trim=4,
                                                            coarse_to_fine=coarse_to_fine))
    mesh = load_mesh(path)
    mesh.merge_vertices()
    assert mesh.is_watertight and outward(mesh, CENTER) > 0.99
    assert np.all(np.abs(mesh.vertices) <= 0.5 - 3.5 / (n - 1))
    assert mesh.vertices[:, 0].max() > 0.5 - 4.5 / (n - 1)        # cut by the border
    dense = shapes.marching_cubes(*sample_volume(Blob(((CENTER, 0.6),)), n, 4), n, 1.0, 10)
    np.testing.assert_allclose(np.sort(mesh.vertices, 0), np.sort(dense.vertices, 0), atol=1e-6)


@pytest.mark.parametrize('fmt', ['ply', 'obj', 'glb'])
def test_vertex_colours_are_the_decoder_colours(tmp_path, fmt):
    path = tmp_path / f'blob.{fmt}'
    export_field(Blob(), path, ShapeOptions(resolution=32, trim=0, format=fmt, colors=True))
    mesh = load_mesh(path)
    expected = np.clip(mesh.vertices + 0.5, 0, 1)
    if fmt == 'glb':                      # glTF stores linear colours
        expected = shapes.srgb_to_linear(expected)
    colours = mesh.visual.vertex_colors
    assert np.abs(colours[:, :3].astype(float) - expected * 255).max() <= 1.0
    assert np.all(colours[:, 3] == 255)


def test_network_glb_with_colours(tmp_path, fixture_G, field):
    volume, _ = sample_volume(field, 32, 1)
    level = float(np.quantile(volume[1:-1, 1:-1, 1:-1], 0.8))
    path = tmp_path / 'seed0.glb'
    export_shape(fixture_G.session, 0, path, ShapeOptions(resolution=32, level=level, psi=0.7,
                                                  colors=True, format='glb'))
    mesh = load_mesh(path)
    assert np.all(np.abs(mesh.vertices) <= 0.5) and len(mesh.faces) > 100
    points = torch.from_numpy(mesh.vertices[:50].astype(np.float32))
    expected = shapes.srgb_to_linear(field.colors(points).numpy()) * 255
    assert np.abs(mesh.visual.vertex_colors[:50, :3] - expected).max() <= 1.0


def test_largest_component_and_smoothing(tmp_path):
    spheres = (((-0.2, 0, 0), 0.15), ((0.25, 0, 0), 0.08))
    path = tmp_path / 'two.ply'
    export_field(Blob(spheres), path, ShapeOptions(resolution=48, trim=0))
    assert len(load_mesh(path).split(only_watertight=False)) == 2
    export_field(Blob(spheres), path, ShapeOptions(resolution=48, trim=0, largest_component=True,
                                                   smooth=True))
    mesh = load_mesh(path)
    assert mesh.vertices[:, 0].max() < 0 and mesh.is_watertight
    np.testing.assert_allclose(mesh.volume, 4 / 3 * np.pi * 0.15 ** 3, rtol=0.03)


def test_cancel_leaves_no_file(tmp_path):
    cancel = threading.Event()
    stages = []

    def progress(fraction, stage):
        stages.append((fraction, stage))
        if stage == 'density' and fraction > 0:
            cancel.set()

    with pytest.raises(ExportCancelled):
        export_field(Blob(), tmp_path / 'x.ply', ShapeOptions(resolution=32), progress, cancel)
    assert list(tmp_path.iterdir()) == []
    assert all(0 <= f <= 1 for f, _ in stages) and [f for f, _ in stages] == sorted(
        f for f, _ in stages)


def test_no_surface_keeps_the_old_file(tmp_path):
    path = tmp_path / 'seed0000.ply'
    path.write_bytes(b'previous')
    with pytest.raises(ShapeExportError, match=rf'^{path}: no surface at level 1000'):
        export_field(Blob(), path, ShapeOptions(resolution=16, level=1000))
    assert path.read_bytes() == b'previous' and len(list(tmp_path.iterdir())) == 1


def test_options_are_checked():
    for bad in (dict(format='mrc', colors=True), dict(format='stl', colors=True),
                dict(resolution=4), dict(resolution=32, trim=15), dict(format='fbx')):
        with pytest.raises(ValueError):
            ShapeOptions(**bad).check()


def run_cli(*args):
    return subprocess.run([sys.executable, 'shapes_export.py', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_command_line(tmp_path, fixture_pkl):
    r = run_cli('--network', fixture_pkl, '--seeds', '0-1', '--resolution', 24, '--level', -1.3,
                '--format', 'obj', '--colors', '--coarse-to-fine', '--outdir', tmp_path, '--bench',
                '--precision', 'bf16')
    assert r.returncode == 0, r.stderr
    assert 'peak RSS' in r.stdout and 'precision: backbone bf16 (bf16;' in r.stdout
    for seed in (0, 1):
        assert len(load_mesh(tmp_path / f'seed{seed:04d}.obj').faces) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ['seed0000.obj', 'seed0001.obj']
