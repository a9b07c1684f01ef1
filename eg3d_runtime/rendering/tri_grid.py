"""PanoHead's tri-grid: three feature volumes read in 3-D, and the crop box of its renderer
(docs/panohead-reference.md 2, 3).

Each of the three planes is a volume of `depth` slices of 32 channels, sampled trilinearly;
channel `c` of slice `d` is channel `c * depth + d` of the backbone's plane. Unlike EG3D's planes
(plane_sampling.py) the third one reads (y, z), with its slices along x.
"""
import torch
import torch.nn.functional as F

from .renderer import ImportanceRenderer

# For each volume, the indices of the point coordinates that become grid (column, row, slice).
TRI_GRID_AXES = ((0, 1, 2), (0, 2, 1), (1, 2, 0))
# Densities outside the crop box are set to this (no opacity at all once activated).
CROPPED_DENSITY = -1e3
CROP_MARGIN = 0.1


def sample_from_tri_grid(planes, coordinates, box_warp, depth):
    """planes [N, 3, C * depth, H, W], points [N, M, 3] in world units -> features
    [N, 3, M, C]."""
    n, n_planes, channels, h, w = planes.shape
    m = coordinates.shape[1]
    scaled = (2 / box_warp) * coordinates
    grid = torch.stack([scaled[..., list(axes)] for axes in TRI_GRID_AXES], dim=1)
    volumes = planes.reshape(n * n_planes, channels // depth, depth, h, w)
    features = F.grid_sample(volumes, grid.reshape(n * n_planes, 1, 1, m, 3).float(),
                             mode='bilinear', padding_mode='zeros', align_corners=False)
    return features.permute(0, 4, 3, 2, 1).reshape(n, n_planes, m, channels // depth)


def outside_crop(coordinates, box_warp, margin=CROP_MARGIN):
    """[..., 3] points -> [..., 1] bool: beyond `box_warp / 2 - margin` in x or in z (the
    head's box; y is not cropped)."""
    return (coordinates[..., [0, 2]].abs() > box_warp / 2 - margin).any(dim=-1, keepdim=True)


class TriGridRenderer(ImportanceRenderer):
    """The importance renderer on a tri-grid: densities outside the crop box are removed in
    both passes (not in `run_model`, which the density probe and mesh export call), and the
    composite stays in the decoder's range (PanoHead's marcher does not map [0, 1] to
    [-1, 1]; its generator does that for a sigmoid decoder)."""

    signed_composite = False
    crop_margin = CROP_MARGIN

    def run_model(self, planes, decoder, coordinates, directions, options):
        features = sample_from_tri_grid(planes, coordinates, options['box_warp'],
                                        options['triplane_depth'])
        return self._decode(features, decoder, directions, options)

    def _evaluated_densities(self, densities, coordinates, options):
        outside = outside_crop(coordinates, options['box_warp'], self.crop_margin)
        return densities.masked_fill(outside, CROPPED_DENSITY)
