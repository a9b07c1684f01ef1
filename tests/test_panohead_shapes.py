"""Shape export of PanoHead networks: the tri-grid folded like EG3D's planes, meshes ending at
the crop box as the renders do, the official volume as PanoHead's script writes it, colours
through its ToRGB layer."""
import subprocess
import sys

import numpy as np
import torch
import trimesh

from eg3d_runtime import views
from eg3d_runtime.rendering.tri_grid import CROPPED_DENSITY
from eg3d_runtime.shapes import TriplaneField

from conftest import REPO


def test_field_folds_the_tri_grid_and_crops(panohead_G):
    ws = views.seed_ws(panohead_G, 1, 0.7)
    field = TriplaneField(panohead_G.session, ws)
    assert field.folded is not None                           # checked against run_model
    points = (torch.rand(3000, 3, generator=torch.Generator().manual_seed(2)) - 0.5)
    sigma = field.sigma(points)
    outside = (points[:, [0, 2]].abs() > 0.4).any(-1)
    assert outside.any() and (~outside).any()
    assert torch.all(sigma[outside] == CROPPED_DENSITY)
    with torch.no_grad():
        exact = panohead_G.sample_mixed(points[None], torch.zeros_like(points[None]), ws,
                                        noise_mode='const', faithful=True)['sigma'][0, :, 0]
    assert torch.allclose(sigma[~outside], exact[~outside], atol=1e-4, rtol=1e-4)
    uncropped = TriplaneField(panohead_G.session, ws, crop=False)
    assert torch.allclose(uncropped.sigma(points), exact, atol=1e-4, rtol=1e-4)
    colours = field.colors(points[:100])
    assert colours.shape == (100, 3) and 0 <= float(colours.min()) <= float(colours.max()) <= 1


def test_shapes_export_command(panohead_pkl, tmp_path):
    out = tmp_path / 'shapes'
    common = [sys.executable, str(REPO / 'shapes_export.py'), '--network', str(panohead_pkl),
              '--seeds', '0', '--resolution', '64', '--outdir', str(out)]
    r = subprocess.run(common + ['--level', '0', '--colors', '--format', 'ply'],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    mesh = trimesh.load(out / 'seed0000.ply')
    assert len(mesh.faces) > 0 and mesh.visual.vertex_colors.shape[0] == len(mesh.vertices)
    assert np.abs(mesh.vertices[:, [0, 2]]).max() <= 0.4 + 1 / 63
    r = subprocess.run(common + ['--format', 'npy'], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    volume = np.load(out / 'seed0000.npy')
    axis = np.arange(64) / 63 - 0.5
    beyond = np.abs(axis) > 0.4
    trim = int(30 * 64 / 256)
    inner = volume[trim:-trim, trim:-trim, trim:-trim]
    inner_beyond = beyond[trim:-trim]
    assert np.all(inner[inner_beyond] == CROPPED_DENSITY)       # x beyond the crop box
    assert np.any(inner[~inner_beyond][:, :, ~inner_beyond] != CROPPED_DENSITY)
