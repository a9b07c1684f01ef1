"""--shapes of an interpolation video: each frame's shape as the official gen_videos.py writes
it (docs/eg3d-reference.md 6.2), and the camera poses of every frame."""
import numpy as np

from ..files import atomic_open
from ..shapes import BORDER_VALUE, DensityField, ShapeOptions, TriplaneField, export_field


class _VideoTrim(DensityField):
    """A field whose grid clears int(38 N/256) voxels at the top of the y axis, where the
    official gen_videos clears more than the int(30 N/256) of every other face (6.2)."""

    def __init__(self, field, resolution):
        self.field, self.box_warp, self.device = field, field.box_warp, field.device
        self.top = resolution - int(38 * resolution / 256)

    def grid_sigma(self, axis):
        sampler = self.field.grid_sigma(axis)

        def trimmed(I, J, K):
            return sampler(I, J, K).masked_fill((J >= self.top)[:, None, :, None], BORDER_VALUE)
        return trimmed


def shape_options(resolution):
    """The options of the official voxel-unit PLY at `resolution` points per axis."""
    return ShapeOptions(resolution=resolution, format='ply', voxel_units=True)


class ShapeWriter:
    """--shapes: each frame's shape as the official voxel-unit PLY at level 10, and at the end
    the camera poses. The official writes every grid cell to the same file name, so the last
    cell's shape is what it keeps; only that one is computed here. The cleared border is -1000
    (the official's is 0 here), which moves the vertices on the cut faces by under a voxel.
    Files go where `place(name)` says (files.Outputs.path)."""

    def __init__(self, session, place, layout_seeds, options):
        self.session, self.place, self.options = session, place, options
        self.cells = layout_seeds.shape[0] * layout_seeds.shape[1]
        self.dir, self.trajectory = self.names(layout_seeds)
        self.poses = []

    @staticmethod
    def names(layout_seeds):
        """The folder of the shapes and the file of the poses."""
        first = layout_seeds.reshape(-1)[:2]
        return 'interpolation_' + '_'.join(map(str, first)), 'interpolation_trajectory.npy'

    def __call__(self, frame, ws, c):
        self.poses += [c[0, :16].reshape(4, 4).cpu().numpy()] * self.cells
        field = _VideoTrim(TriplaneField(self.session, ws), self.options.resolution)
        export_field(field, self.place(f'{self.dir}/{frame:04d}_shape.ply'), self.options)

    def finish(self):
        """Write the poses of every frame and cell, [frames * cells, 4, 4], as official."""
        with atomic_open(self.place(self.trajectory), 'wb') as f:
            np.save(f, np.stack(self.poses))
