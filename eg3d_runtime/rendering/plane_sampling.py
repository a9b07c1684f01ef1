"""Tri-plane feature lookup (docs/eg3d-reference.md 3.4), with the official XY, XZ and ZX planes.

The third plane is (z, x), not (y, z): a known quirk of the official code that the released
weights were trained with, so it is reproduced here on purpose.
"""
import torch
import torch.nn.functional as F

# For each plane, the indices of the point coordinates that become grid (column, row).
PLANE_AXES = ((0, 1), (0, 2), (2, 0))


def project_onto_planes(coordinates):
    """[N, M, 3] points -> [N, 3, M, 2] grid coordinates on the three planes."""
    return torch.stack([coordinates[..., list(axes)] for axes in PLANE_AXES], dim=1)


def sample_from_planes(planes, coordinates, box_warp):
    """planes [N, 3, C, H, W], points [N, M, 3] in world units -> features [N, 3, M, C]."""
    n, n_planes, c, h, w = planes.shape
    m = coordinates.shape[1]
    grid = project_onto_planes((2 / box_warp) * coordinates).reshape(n * n_planes, 1, m, 2)
    features = F.grid_sample(planes.reshape(n * n_planes, c, h, w), grid.float(), mode='bilinear',
                             padding_mode='zeros', align_corners=False)
    return features.permute(0, 3, 2, 1).reshape(n, n_planes, m, c)
