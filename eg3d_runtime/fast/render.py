"""Fast volume rendering of tri-planes: same result as rendering/renderer.py
(docs/eg3d-reference.md 3.2-3.7).

What differs from the reference path, and why it gives the same numbers:

- Planes live in one channels-last table [N * 3 * (H+2) * (W+2), C] with a one-texel zero border,
  and all three planes are sampled by ONE `embedding_bag` call: per point 12 rows (4 bilinear
  corners x 3 planes) weighted by the bilinear weights. Clamping the texel coordinate to
  [-1, W] (border rows are zero) reproduces `grid_sample(..., padding_mode='zeros',
  align_corners=False)` exactly. The decoder's mean over planes becomes a sum (1/3 is folded into
  the first layer of the decoder).
- Rays are processed in chunks (a few ten thousand points per step) so that every intermediate
  stays in cache and no step allocates hundreds of MB.
- Compositing is rewritten without gathering colours: with final weights w_k over the sorted
  samples, sum_k w_k (c_k + c_k+1)/2 = sum_j c_j (w_j-1 + w_j)/2, so each sample's colour weight
  is scattered back to its unsorted position and the colours of the coarse and the fine pass are
  reduced with two small batched matrix products.
- Coarse samples are evaluated once: their densities drive the importance sampling and, with
  their colours, take part in the final composite (never re-evaluated).
- `colour_channels` limits the colour head to the first k feature channels (3 for a raw preview
  without super-resolution: the displayed image is exactly the same).
- Optional empty-space skipping (previews only; it may change the image slightly): an occupancy
  grid of the box is built once per set of planes and coarse samples in empty cells are not
  evaluated (they get zero density).
"""
import math

import torch
import torch.nn.functional as F

from ..rendering.renderer import disparity_depths, ray_box_bounds, sample_pdf
from ..rendering.plane_sampling import PLANE_AXES
from ..rendering.tri_grid import CROPPED_DENSITY, outside_crop
from .parallel import parallel_map

# grid column / row source axes for the three planes (XY, XZ, ZX), see rendering/plane_sampling.py
_COLS = [axes[0] for axes in PLANE_AXES]
_ROWS = [axes[1] for axes in PLANE_AXES]


class PlaneTable:
    """Tri-planes [N, 3, C, H, W] as a padded channels-last lookup table."""

    def __init__(self, planes, dtype=torch.float32):
        n, p, c, h, w = planes.shape
        assert p == 3, 'three planes expected'
        self.batch, self.channels, self.height, self.width = n, c, h, w
        table = torch.zeros(n, p, h + 2, w + 2, c, dtype=dtype, device=planes.device)
        table[:, :, 1:h + 1, 1:w + 1].copy_(planes.permute(0, 1, 3, 4, 2))
        self.rows_per_sample = p * (h + 2) * (w + 2)
        self.table = table.view(n * self.rows_per_sample, c)
        self.device = planes.device
        self.dtype = dtype
        self.occupancy = {}                        # (box_warp, resolution, threshold) -> grid
        dev = planes.device
        # ixy = points @ proj + offset: texel coordinates (x of the 3 planes, then y of the 3)
        # for unit box_warp; grid_sample's unnormalisation ((g + 1) * W - 1) / 2, g = 2 p / box.
        proj = torch.zeros(3, 6, dtype=torch.float64)
        for i, (col, row) in enumerate(zip(_COLS, _ROWS)):
            proj[col, i] = w
            proj[row, 3 + i] = h
        self._proj = proj.float().to(dev)
        self._offset = torch.tensor([(w - 1) / 2] * 3 + [(h - 1) / 2] * 3, device=dev)
        self._lo = torch.full((6,), -1.0, device=dev)
        self._hi = torch.tensor([float(w)] * 3 + [float(h)] * 3, device=dev)
        self._hi_floor = self._hi - 1
        # row index of corner (x0, y0) of plane p: (y0 + 1) * (W + 2) + (x0 + 1) + p * stride
        stride = (h + 2) * (w + 2)
        to_row = torch.zeros(6, 3, dtype=torch.float64)
        for i in range(3):
            to_row[i, i] = 1
            to_row[3 + i, i] = w + 2
        self._to_row = to_row.float().to(dev)
        self._row_offset = torch.tensor([w + 3 + p * stride for p in range(3)],
                                        dtype=torch.float32, device=dev)
        self._corner_offsets = torch.tensor([0, 1, w + 2, w + 3], device=dev, dtype=torch.long)

    def refill(self, planes):
        """Take new planes of the same shape in place (the zero border stays), so that a CUDA
        graph captured reading this table renders them; False if the shape differs."""
        n, p, c, h, w = planes.shape
        if (n, c, h, w) != (self.batch, self.channels, self.height, self.width):
            return False
        self.table.view(n, p, h + 2, w + 2, c)[:, :, 1:h + 1, 1:w + 1].copy_(
            planes.permute(0, 1, 3, 4, 2))
        self.occupancy = {}
        return True

    def sample_sum(self, coords, box_warp, batch_index=0, planes=None):
        """Points [P, 3] in world units -> [P, C]: SUM over the three planes (or the indices in
        `planes`) of the bilinear samples (grid_sample semantics, zero outside)."""
        n = coords.shape[0]
        ixy = torch.addmm(self._offset, coords.float(), self._proj * (1.0 / box_warp))
        ixy = torch.maximum(ixy, self._lo, out=ixy)
        ixy = torch.minimum(ixy, self._hi, out=ixy)
        corner = torch.minimum(ixy.floor(), self._hi_floor)                   # [P, 6]
        frac = ixy.sub_(corner)                                               # [P, 6]
        rows = torch.addmm(self._row_offset, corner, self._to_row)            # [P, 3]
        corners = self._corner_offsets
        if batch_index:
            corners = corners + batch_index * self.rows_per_sample
        idx = rows.long().unsqueeze(-1) + corners                             # [P, 3, 4]
        fx, fy = frac[:, :3], frac[:, 3:]
        gx, gy = 1 - fx, 1 - fy
        wgt = torch.empty(n, 3, 4, dtype=frac.dtype, device=frac.device)     # same order as idx
        torch.mul(gx, gy, out=wgt[:, :, 0])
        torch.mul(fx, gy, out=wgt[:, :, 1])
        torch.mul(gx, fy, out=wgt[:, :, 2])
        torch.mul(fx, fy, out=wgt[:, :, 3])
        if planes is not None:
            idx, wgt = idx[:, list(planes)], wgt[:, list(planes)]
        return F.embedding_bag(idx.reshape(n, -1), self.table,
                               per_sample_weights=wgt.reshape(n, -1).to(self.dtype), mode='sum')


def _probe_fused_linear():
    """oneDNN linear + sigmoid in one call (a private op; probed once, else addmm + sigmoid)."""
    try:
        # Fixed numbers: a probe must not move the random numbers a frame draws next.
        x = torch.linspace(-1, 1, 12).reshape(4, 3)
        w, b = torch.linspace(-0.5, 0.7, 6).reshape(2, 3), torch.tensor([0.1, -0.2])
        y = torch.ops.mkldnn._linear_pointwise(x, w, b, 'sigmoid', [], '')
        return bool(torch.allclose(y, torch.sigmoid(x @ w.t() + b), atol=1e-5))
    except Exception:
        return False


_FUSED_LINEAR = None


class FoldedDecoder:
    """OSGDecoder as plain matrices: h = softplus(f W1' + b1) with the plane mean folded in;
    its colour activation (`activation`: EG3D's sigmoid, or PanoHead's lrelu or none) after."""

    def __init__(self, decoder, dtype=torch.float32):
        global _FUSED_LINEAR
        self.activation = getattr(decoder, 'activation', 'sigmoid')
        fc0, fc1 = decoder.net[0], decoder.net[2]
        self.w1 = (fc0.weight.float() * (fc0.weight_gain / 3)).t().contiguous().to(dtype)
        self.b1 = (fc0.bias.float() * fc0.bias_gain).to(dtype)
        w2 = fc1.weight.float() * fc1.weight_gain                                   # [33, 64]
        b2 = fc1.bias.float() * fc1.bias_gain
        self.w_sigma = w2[0].contiguous().to(dtype)
        self.b_sigma = float(b2[0])
        self.w_rgb = w2[1:].contiguous().to(dtype)                                  # [32, 64]
        self.w_rgb_t = self.w_rgb.t().contiguous()
        self.b_rgb = b2[1:].contiguous().to(dtype)
        softplus = decoder.net[1]
        self.beta = getattr(softplus, 'beta', 1.0)
        self.threshold = getattr(softplus, 'threshold', 20.0)
        self.dtype = dtype
        self.device = self.w1.device
        if _FUSED_LINEAR is None:
            _FUSED_LINEAR = _probe_fused_linear()
        self.fused = _FUSED_LINEAR and self.device.type == 'cpu' and dtype == torch.float32

    def __call__(self, features, colour_channels=None, raw=False):
        """[P, C] summed plane features -> (sigma [P], rgb [P, k]); with raw=True a sigmoid
        decoder's rgb is the plain sigmoid s (its colour is s * 1.002 - 0.001)."""
        x = features.to(self.dtype)
        h = F.softplus(torch.addmm(self.b1, x, self.w1), self.beta, self.threshold)
        sigma = torch.mv(h, self.w_sigma).add_(self.b_sigma).float()
        k = self.w_rgb.shape[0] if colour_channels is None else colour_channels
        sigmoid = self.activation == 'sigmoid'
        if k == 0:
            rgb = h.new_zeros(h.shape[0], 0)
        elif sigmoid and self.fused:
            rgb = torch.ops.mkldnn._linear_pointwise(h, self.w_rgb[:k], self.b_rgb[:k],
                                                     'sigmoid', [], '')
        else:
            rgb = torch.addmm(self.b_rgb[:k], h, self.w_rgb_t[:, :k])
            if sigmoid:
                rgb = torch.sigmoid(rgb)
            elif self.activation == 'lrelu':
                rgb = F.leaky_relu(rgb, 0.2).mul_(math.sqrt(2))
        rgb = rgb.float()
        if sigmoid and not raw:
            rgb = rgb.mul_(1 + 2 * 0.001).sub_(0.001)
        return sigma, rgb


def marcher_weights(sigma, depths):
    """MipRayMarcher2 weights [R, K-1] from raw densities and sorted depths [R, K]."""
    deltas = depths[:, 1:] - depths[:, :-1]
    dens = F.softplus((sigma[:, :-1] + sigma[:, 1:]) * 0.5 - 1)
    alpha = 1 - torch.exp(-dens * deltas)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], 1), 1)
    return alpha * trans[:, :-1]


def _importance(depths, weights, n, deterministic, u=None):
    w = F.avg_pool1d(F.max_pool1d(weights.unsqueeze(1), 2, 1, padding=1), 2, 1).squeeze(1) + 0.01
    bins = 0.5 * (depths[:, :-1] + depths[:, 1:])
    return sample_pdf(bins, w[:, 1:-1], n, deterministic, u=u)


def draw_jitter(batch, rays, options, device):
    """(coarse [N, M, n_coarse], fine [N, M, n_fine]) uniform numbers of a stochastic march,
    drawn up front in the reference renderer's order (every coarse offset of the batch, then
    every importance sample). Chunks drawing their own in worker threads would take them from
    the generator in whatever order the threads run, so the same seed would give another frame."""
    n_fine = options.get('depth_resolution_importance', 0) or 0
    return (torch.rand(batch, rays, options['depth_resolution'], device=device),
            torch.rand(batch, rays, n_fine, device=device))


def build_occupancy(table, decoder, box_warp, resolution=64, threshold=1e-3, batch_index=0,
                    delta=None):
    """Boolean [R, R, R] grid over the box: True where some sample could be visible (density
    times a typical step above `threshold`, dilated by one cell)."""
    dev = table.device
    step = box_warp / resolution
    centres = (torch.arange(resolution, device=dev, dtype=torch.float32) + 0.5) * step \
        - box_warp / 2
    zz, yy, xx = torch.meshgrid(centres, centres, centres, indexing='ij')
    pts = torch.stack([xx, yy, zz], -1).reshape(-1, 3)
    dens = []
    for i in range(0, pts.shape[0], 65536):
        sigma, _ = decoder(table.sample_sum(pts[i:i + 65536], box_warp, batch_index), 0)
        dens.append(F.softplus(sigma - 1))
    dens = torch.cat(dens).view(1, 1, resolution, resolution, resolution)
    dens = F.max_pool3d(dens, 3, 1, padding=1)[0, 0]
    delta = delta or step
    return dens * delta > threshold


def _occupied(grid, coords, box_warp):
    r = grid.shape[0]
    cell = ((coords.float() / box_warp + 0.5) * r).floor().long()
    inside = ((cell >= 0) & (cell < r)).all(-1)
    cell = cell.clamp_(0, r - 1)
    return inside & grid[cell[:, 2], cell[:, 1], cell[:, 0]]


def auto_bounds(origins, directions, box_warp):
    """'auto' ray bounds as the reference renderer computes them (rays missing the box span
    [min start, max start] of the rays that hit it), without a device-to-host sync."""
    start, end = ray_box_bounds(origins, directions, box_warp)
    valid = end > start
    inf = torch.full_like(start, float('inf'))
    lo = torch.where(valid, start, inf).min()
    hi = torch.where(valid, start, -inf).max()
    keep = valid | ~valid.any()
    return torch.where(keep, start, lo), torch.where(keep, end, hi)


def render_rays(table, decoder, origins, directions, options, jitter=None, batch_index=0,
                colour_channels=None, chunk_points=1 << 16, occupancy=None, crop_margin=None):
    """Rays of one sample -> (features [M, k], depth [M, 1] before the global clamp, opacity
    [M, 1] (the summed weights), depth min/max over all samples). Same semantics as
    ImportanceRenderer.forward, or with `crop_margin` TriGridRenderer's (densities outside the
    crop box removed). Features are mapped to [-1, 1] for a sigmoid decoder, as the reference
    generators do (EG3D in its marcher, PanoHead after it). `jitter`: this sample's (coarse,
    fine) part of draw_jitter; None marches deterministically."""
    m = origins.shape[0]
    deterministic = jitter is None
    box_warp = options['box_warp']
    n_coarse = options['depth_resolution']
    n_fine = options.get('depth_resolution_importance', 0) or 0
    white_back = options.get('white_back', False)
    density_noise = options.get('density_noise', 0) or 0
    if options.get('clamp_mode', 'softplus') != 'softplus':
        raise ValueError(f"unsupported clamp_mode {options['clamp_mode']!r}")
    ray_start, ray_end = options['ray_start'], options['ray_end']
    disparity = options.get('disparity_space_sampling', False)
    per_ray = ray_start == ray_end == 'auto'
    if per_ray:
        ray_start, ray_end = auto_bounds(origins, directions, box_warp)
    k = colour_channels
    sigmoid = decoder.activation == 'sigmoid'
    dev = origins.device
    lin = torch.linspace(0, 1, n_coarse, device=dev)
    samples = n_coarse + n_fine
    rays_per_chunk = max(1, chunk_points // max(samples, 1))

    def evaluate(o, d, t, skip=None):
        r, s = t.shape
        pts = (o.unsqueeze(1) + t.unsqueeze(-1) * d.unsqueeze(1)).reshape(-1, 3)
        if skip is not None:
            keep = _occupied(skip, pts, box_warp)
            idx = keep.nonzero().squeeze(1)
            sigma = torch.full((r * s,), -1e4, device=dev)
            rgb = torch.zeros(r * s, k if k is not None else table.channels, device=dev)
            if idx.numel():
                sg, cl = decoder(table.sample_sum(pts[idx], box_warp, batch_index), k, raw=True)
                sigma[idx] = sg
                rgb[idx] = cl
        else:
            sigma, rgb = decoder(table.sample_sum(pts, box_warp, batch_index), k, raw=True)
        if density_noise > 0:
            sigma = sigma + torch.randn_like(sigma) * density_noise
        if crop_margin is not None:
            sigma = sigma.masked_fill(outside_crop(pts, box_warp, crop_margin)[:, 0],
                                      CROPPED_DENSITY)
        return sigma.view(r, s), rgb.view(r, s, -1)

    def chunk(r0):
        r1 = min(m, r0 + rays_per_chunk)
        o, d = origins[r0:r1], directions[r0:r1]
        if per_ray:
            start, end = ray_start[r0:r1], ray_end[r0:r1]               # [R, 1]
        else:
            start, end = ray_start, ray_end
        if disparity:
            s = lin.expand(r1 - r0, n_coarse).contiguous()
            if not deterministic:
                s = s + jitter[0][r0:r1] / (n_coarse - 1)
            t = disparity_depths(s, start, end)
        else:
            t = start + lin * (end - start)
            if not deterministic:
                t = t + jitter[0][r0:r1] * ((end - start) / (n_coarse - 1))
        if t.dim() == 1:                  # deterministic, the same depths for every ray
            t = t.expand(r1 - r0, n_coarse)
        t = t.contiguous()
        sigma_c, rgb_c = evaluate(o, d, t, occupancy)
        if n_fine > 0:
            w = marcher_weights(sigma_c, t)
            t_f = _importance(t, w, n_fine, deterministic,
                              None if deterministic else jitter[1][r0:r1])
            sigma_f, rgb_f = evaluate(o, d, t_f)
            t_all = torch.cat([t, t_f], 1)
            sigma_all = torch.cat([sigma_c, sigma_f], 1)
        else:
            t_all, sigma_all = t, sigma_c
        t_sorted, order = torch.sort(t_all, dim=1)
        w = marcher_weights(torch.gather(sigma_all, 1, order), t_sorted)   # [R, K-1]
        zero = torch.zeros_like(w[:, :1])
        v_sorted = (torch.cat([zero, w], 1) + torch.cat([w, zero], 1)) * 0.5
        v = torch.empty_like(v_sorted).scatter_(1, order, v_sorted)
        feat = torch.bmm(v[:, None, :n_coarse], rgb_c).squeeze(1)
        if n_fine > 0:
            feat = feat + torch.bmm(v[:, None, n_coarse:], rgb_f).squeeze(1)
        total = w.sum(1, keepdim=True)
        if sigmoid:
            # colours were plain sigmoids s: sum v (1.002 s - 0.001) = 1.002 sum v s - 0.001 sum v
            feat = feat.mul_(1 + 2 * 0.001).sub_(v.sum(1, keepdim=True), alpha=0.001)
        depth = (w * (t_sorted[:, :-1] + t_sorted[:, 1:]) * 0.5).sum(1, keepdim=True) / total
        if white_back:
            feat = feat + 1 - total
        if sigmoid:
            feat = feat * 2 - 1
        return feat, depth, total, t_sorted[:, 0].min(), t_sorted[:, -1].max()

    parts = parallel_map(chunk, range(0, m, rays_per_chunk), dev)
    feats = torch.cat([p[0] for p in parts])
    depths = torch.cat([p[1] for p in parts])
    opacity = torch.cat([p[2] for p in parts])
    dmin = torch.stack([p[3] for p in parts]).min()
    dmax = torch.stack([p[4] for p in parts]).max()
    return feats, depths, opacity, dmin, dmax


def finish_depth(depth, dmin, dmax):
    """The reference marcher's NaN -> +inf and clamp to the depth range of the whole batch."""
    return torch.nan_to_num(depth, float('inf')).clamp_(dmin, dmax)
