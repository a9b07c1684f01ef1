"""tools/render_mesh.py: the README's picture of an exported mesh."""
import importlib.util
import os

import numpy as np
import trimesh

from eg3d_runtime import procedural

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location('render_mesh', os.path.join(REPO, 'tools',
                                                                          'render_mesh.py'))
render_mesh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render_mesh)


def test_a_sphere_appears_where_the_data_camera_sees_it():
    """A sphere of radius 0.2 at the origin, seen frontally from the data camera (radius 2.7,
    FFHQ focal 4.26): a centred disc of radius 0.2 * 4.26 / 2.7 of the width, lit from above."""
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=0.2)
    size = 128
    image = render_mesh.render_view(sphere, procedural.orbit_label(0.0).astype(np.float64), size)
    drawn = (image != render_mesh.BACKGROUND).any(2)
    ys, xs = np.nonzero(drawn)
    assert abs(xs.mean() - size / 2) < 1.5 and abs(ys.mean() - size / 2) < 1.5
    expected_area = np.pi * (0.2 * 4.2634 / np.sqrt(2.7 ** 2 - 0.2 ** 2) * size) ** 2
    assert abs(drawn.sum() / expected_area - 1) < 0.08
    top, bottom = image[ys.min() + 3, size // 2, 0], image[ys.max() - 3, size // 2, 0]
    assert top > bottom            # the light is above


def test_the_script_writes_the_views_side_by_side(tmp_path, capsys):
    path = tmp_path / 'ball.ply'
    trimesh.creation.icosphere(subdivisions=4, radius=0.2).export(path)
    out = tmp_path / 'ball.png'
    assert render_mesh.main([str(path), str(out), '--yaws=-0.5,0.5', '--size', '64']) == 0
    from PIL import Image
    assert Image.open(out).size == (128, 64)
    assert 'watertight True, 1 connected piece(s)' in capsys.readouterr().out
    assert render_mesh.main([str(tmp_path / 'missing.ply'), str(out)]) == 1
    assert 'missing.ply: cannot read a mesh' in capsys.readouterr().err
