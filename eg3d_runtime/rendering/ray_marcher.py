"""MipRayMarcher2: NeRF compositing on interval midpoints (docs/eg3d-reference.md 3.7)."""
import torch
import torch.nn.functional as F


def composite(colors, densities, depths, rendering_options, signed=True):
    """colors [N,M,K,C], raw densities [N,M,K,1], sorted depths [N,M,K,1] ->
    (rgb [N,M,C], depth [N,M,1], weights [N,M,K-1,1]). With `signed` (EG3D's marcher) rgb is
    mapped from [0, 1] to about [-1, 1]; PanoHead's marcher leaves it as composited."""
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
    densities_mid = (densities[:, :, :-1] + densities[:, :, 1:]) / 2
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    if rendering_options.get('clamp_mode', 'softplus') != 'softplus':
        raise ValueError(f"unsupported clamp_mode {rendering_options['clamp_mode']!r}")
    alpha = 1 - torch.exp(-F.softplus(densities_mid - 1) * deltas)
    alpha_shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
    weights = alpha * torch.cumprod(alpha_shifted, -2)[:, :, :-1]
    rgb = torch.sum(weights * colors_mid, -2)
    weight_total = weights.sum(2)
    depth = torch.sum(weights * depths_mid, -2) / weight_total
    depth = torch.nan_to_num(depth, float('inf'))
    depth = torch.clamp(depth, torch.min(depths), torch.max(depths))
    if rendering_options.get('white_back', False):
        rgb = rgb + 1 - weight_total
    return (rgb * 2 - 1 if signed else rgb), depth, weights
