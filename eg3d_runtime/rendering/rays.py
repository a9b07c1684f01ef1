"""Camera rays for every pixel of the neural rendering (docs/eg3d-reference.md 3.1)."""
import torch
from torch import nn


class RaySampler(nn.Module):
    """Pixel-centre rays of an OpenCV camera with normalised intrinsics; unit directions."""

    def forward(self, cam2world, intrinsics, resolution):
        n = cam2world.shape[0]
        device = cam2world.device
        fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
        cx, cy = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None]
        sk = intrinsics[:, 0, 1, None]
        centres = torch.arange(resolution, device=device, dtype=torch.float32) * (1. / resolution) \
            + (0.5 / resolution)
        v, u = torch.meshgrid(centres, centres, indexing='ij')   # row-major: m = row * R + col
        u = u.reshape(1, -1).expand(n, -1)
        v = v.reshape(1, -1).expand(n, -1)
        x_lift = (u - cx + cy * sk / fy - sk * v / fy) / fx
        y_lift = (v - cy) / fy
        ones = torch.ones_like(u)
        cam_points = torch.stack((x_lift, y_lift, ones, ones), dim=-1)
        world_points = torch.bmm(cam2world, cam_points.permute(0, 2, 1)).permute(0, 2, 1)[:, :, :3]
        origins = cam2world[:, :3, 3]
        directions = nn.functional.normalize(world_points - origins[:, None, :], dim=2)
        return origins.unsqueeze(1).expand(-1, directions.shape[1], -1), directions
