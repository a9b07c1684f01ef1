"""A picture of an exported mesh (README's docs/demo-mesh.png): the mesh file itself, not the
network, seen from the data cameras of procedural.orbit_label at a few yaws, side by side.

    python tools/render_mesh.py shapes/seed0000.ply docs/demo-mesh.png [--yaws=-0.8,0,0.8]

Dense marching-cubes meshes have vertices about as close together as the pixels, so each vertex
is drawn as a 2x2 pixel dot with a depth test (no rasteriser needed): its colour (vertex colours
when the file has them, else grey) under the data's light (procedural.LIGHT), with the vertex
normal.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eg3d_runtime import procedural

BACKGROUND = 255


def render_view(mesh, label, size):
    """uint8 [size, size, 3] picture of `mesh` from the camera `label` (25 floats)."""
    cam2world, k = label[:16].reshape(4, 4), label[16:].reshape(3, 3)
    camera = (np.asarray(mesh.vertices) - cam2world[:3, 3]) @ cam2world[:3, :3]  # OpenCV frame
    depth = camera[:, 2]
    u = (k[0, 0] * camera[:, 0] / depth + k[0, 2]) * size
    v = (k[1, 1] * camera[:, 1] / depth + k[1, 2]) * size
    x, y = np.floor(u).astype(int), np.floor(v).astype(int)
    visible = (depth > 0) & (x >= 0) & (x < size) & (y >= 0) & (y < size)
    light = procedural.LIGHT / np.linalg.norm(procedural.LIGHT)
    shade = procedural.AMBIENT + procedural.DIFFUSE * np.clip(mesh.vertex_normals @ light, 0, 1)
    colours = mesh.visual.vertex_colors[:, :3] / 255.0 if mesh.visual.kind == 'vertex' else \
        np.full((len(mesh.vertices), 3), 0.8)
    rgb = np.clip(colours * shade[:, None], 0, 1)
    # Each vertex covers its pixel and the three below and to the right, which closes the gaps
    # of meshes whose vertices are about a pixel apart; a depth buffer keeps the nearest.
    index = np.nonzero(visible)[0]
    pixels = np.concatenate([(y[index] + dy) * (size + 1) + x[index] + dx
                             for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1))])
    vertex = np.tile(index, 4)
    nearest = np.full((size + 1) ** 2, np.inf)
    np.minimum.at(nearest, pixels, depth[vertex])
    front = depth[vertex] == nearest[pixels]
    image = np.full(((size + 1) ** 2, 3), BACKGROUND, np.uint8)
    image[pixels[front]] = np.rint(rgb[vertex[front]] * 255).astype(np.uint8)
    image = image.reshape(size + 1, size + 1, 3)
    return image[:size, :size]


def render_views(mesh, yaws, size):
    return np.concatenate([render_view(mesh, procedural.orbit_label(yaw).astype(np.float64), size)
                           for yaw in yaws], axis=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('mesh', help='a mesh file shapes_export.py wrote (ply, obj, glb, stl)')
    p.add_argument('output', help='PNG to write')
    p.add_argument('--yaws', default='-0.8,0,0.8', help='comma-separated yaws in radians')
    p.add_argument('--size', type=int, default=256, help='pixels per view')
    args = p.parse_args(argv)
    try:
        mesh = trimesh.load(args.mesh, force='mesh')
    except (OSError, ValueError) as e:
        print(f'{args.mesh}: cannot read a mesh ({e})', file=sys.stderr)
        return 1
    yaws = [float(y) for y in args.yaws.split(',')]
    Image.fromarray(render_views(mesh, yaws, args.size)).save(args.output)
    print(f'{args.output}: {len(mesh.vertices)} vertices, watertight {mesh.is_watertight}, '
          f'{len(mesh.split(only_watertight=False))} connected piece(s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
