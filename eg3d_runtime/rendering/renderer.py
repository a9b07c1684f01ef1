"""ImportanceRenderer: coarse stratified samples, then inverse-CDF importance samples
(docs/eg3d-reference.md 3.2-3.6)."""
import torch
import torch.nn.functional as F
from torch import nn

from .ray_marcher import composite
from .plane_sampling import sample_from_planes


def ray_box_bounds(origins, directions, box_side):
    """Slab-method entry/exit depths on the cube [-box_side/2, box_side/2]^3; misses get (-1, -2)."""
    half = box_side / 2
    inv = 1 / directions
    t0 = (-half - origins) * inv
    t1 = (half - origins) * inv
    t_near = torch.minimum(t0, t1).amax(dim=-1, keepdim=True)
    t_far = torch.maximum(t0, t1).amin(dim=-1, keepdim=True)
    miss = t_near > t_far
    return t_near.masked_fill(miss, -1.0), t_far.masked_fill(miss, -2.0)


def disparity_depths(s, start, end):
    """Depths at fractions `s` (0 at start, 1 at end) of the way in disparity (1 / depth):
    `disparity_space_sampling`, samples packed near the camera."""
    return 1 / ((1 / start) * (1 - s) + (1 / end) * s)


def stratified_depths(origins, ray_start, ray_end, n, deterministic, disparity=False):
    """[N, M, n, 1] depths: linspace over the bounds plus (unless deterministic) one interval of
    jitter; in disparity rather than depth with `disparity` (the option
    disparity_space_sampling)."""
    batch, rays = origins.shape[:2]
    steps = torch.linspace(0, 1, n, device=origins.device).reshape(1, 1, n, 1)
    if torch.is_tensor(ray_start):
        start, end = ray_start.unsqueeze(-2), ray_end.unsqueeze(-2)          # [N, M, 1, 1]
    else:
        start, end = ray_start, ray_end
    if disparity:
        s = steps.repeat(batch, rays, 1, 1)
        if not deterministic:
            s = s + torch.rand_like(s) / (n - 1)
        return disparity_depths(s, start, end)
    if torch.is_tensor(ray_start):
        depths = start + steps * (end - start)
    else:
        depths = torch.linspace(start, end, n, device=origins.device).reshape(1, 1, n, 1)
        depths = depths.repeat(batch, rays, 1, 1)
    if not deterministic:
        depths = depths + torch.rand_like(depths) * ((end - start) / (n - 1))
    return depths


def sample_pdf(bins, weights, n, deterministic, eps=1e-5, u=None):
    """Inverse-CDF sampling of n depths per ray from piecewise-constant weights over bins;
    `u` [rays, n] gives the uniform numbers instead of drawing them (fast/render.py draws them
    before its parallel chunks, so that a seed fixes them)."""
    rays, n_weights = weights.shape
    weights = weights + eps
    pdf = weights / torch.sum(weights, -1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    if deterministic:
        u = torch.linspace(0, 1, n, device=bins.device).expand(rays, n).contiguous()
    elif u is None:
        u = torch.rand(rays, n, device=bins.device)
    inds = torch.searchsorted(cdf, u, right=True)
    below = torch.clamp_min(inds - 1, 0)
    above = torch.clamp_max(inds, n_weights)
    pairs = torch.stack([below, above], -1).view(rays, 2 * n)
    cdf_g = torch.gather(cdf, 1, pairs).view(rays, n, 2)
    bins_g = torch.gather(bins, 1, pairs).view(rays, n, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


@torch.no_grad()
def importance_depths(depths, weights, n, deterministic):
    """Fine depths from the coarse marcher weights, smoothed by max-pool then avg-pool (+0.01)."""
    batch, rays, samples, _ = depths.shape
    z = depths.reshape(batch * rays, samples)
    w = weights.reshape(batch * rays, -1).unsqueeze(1).float()
    w = F.avg_pool1d(F.max_pool1d(w, 2, 1, padding=1), 2, 1).squeeze(1) + 0.01
    bins = 0.5 * (z[:, :-1] + z[:, 1:])
    fine = sample_pdf(bins, w[:, 1:-1], n, deterministic)
    return fine.detach().reshape(batch, rays, n, 1)


def merge_samples(depths1, colors1, densities1, depths2, colors2, densities2):
    """Concatenate two sample sets along the ray and sort everything by depth."""
    depths = torch.cat([depths1, depths2], dim=-2)
    colors = torch.cat([colors1, colors2], dim=-2)
    densities = torch.cat([densities1, densities2], dim=-2)
    depths, order = torch.sort(depths, dim=-2)
    colors = torch.gather(colors, -2, order.expand(-1, -1, -1, colors.shape[-1]))
    densities = torch.gather(densities, -2, order)
    return depths, colors, densities


class ImportanceRenderer(nn.Module):
    """Renders [N, M] rays through tri-planes with a decoder; returns features, depth, opacity."""

    signed_composite = True    # the marcher maps colours from [0, 1] to [-1, 1]
    crop_margin = None         # PanoHead's crop box (TriGridRenderer)

    def run_model(self, planes, decoder, coordinates, directions, options):
        features = sample_from_planes(planes, coordinates, box_warp=options['box_warp'])
        return self._decode(features, decoder, directions, options)

    @staticmethod
    def _decode(features, decoder, directions, options):
        out = decoder(features, directions)
        if options.get('density_noise', 0) > 0:
            out['sigma'] = out['sigma'] + torch.randn_like(out['sigma']) * options['density_noise']
        return out

    def _evaluated_densities(self, densities, coordinates, options):
        """Densities of the samples as the marcher sees them (PanoHead crops here)."""
        return densities

    def _evaluate(self, planes, decoder, origins, directions, depths, options):
        batch, rays, samples, _ = depths.shape
        coords = (origins.unsqueeze(-2) + depths * directions.unsqueeze(-2)).reshape(batch, -1, 3)
        dirs = directions.unsqueeze(-2).expand(-1, -1, samples, -1).reshape(batch, -1, 3)
        out = self.run_model(planes, decoder, coords, dirs, options)
        colors = out['rgb'].reshape(batch, rays, samples, out['rgb'].shape[-1])
        densities = self._evaluated_densities(out['sigma'], coords, options)
        return colors, densities.reshape(batch, rays, samples, 1)

    def forward(self, planes, decoder, origins, directions, options, deterministic=False):
        ray_start, ray_end = options['ray_start'], options['ray_end']
        if ray_start == ray_end == 'auto':
            ray_start, ray_end = ray_box_bounds(origins, directions, options['box_warp'])
            valid = ray_end > ray_start
            if torch.any(valid).item():
                # As the official code: invalid rays span [min start, max start] of valid rays.
                ray_start = torch.where(valid, ray_start, ray_start[valid].min())
                ray_end = torch.where(valid, ray_end, ray_start[valid].max())
        depths = stratified_depths(origins, ray_start, ray_end, options['depth_resolution'],
                                   deterministic, options.get('disparity_space_sampling', False))
        colors, densities = self._evaluate(planes, decoder, origins, directions, depths, options)
        n_fine = options.get('depth_resolution_importance', 0)
        if n_fine > 0:
            _, _, weights = composite(colors, densities, depths, options, self.signed_composite)
            fine = importance_depths(depths, weights, n_fine, deterministic)
            colors_f, densities_f = self._evaluate(planes, decoder, origins, directions, fine, options)
            depths, colors, densities = merge_samples(depths, colors, densities,
                                                      fine, colors_f, densities_f)
        rgb, depth, weights = composite(colors, densities, depths, options, self.signed_composite)
        return rgb, depth, weights.sum(2)
