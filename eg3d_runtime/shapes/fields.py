"""Density fields of a shape export: the interface the samplers use, and the field of one latent,
whose decoder's first layer is folded into the tri-planes and looked up with the fast path's
PlaneTable (the same bilinear tri-plane lookup the renderer uses; PanoHead's tri-grid through
its TriGridTable)."""
import warnings

import torch

from ..fast.render import PlaneTable
from ..fast.tri_grid import TriGridTable
from ..rendering.tri_grid import CROPPED_DENSITY, TriGridRenderer, outside_crop
from .options import CHUNK_POINTS


class DensityField:
    """Raw density and colour over the box_warp cube. Subclasses give `sigma` and `colors`;
    `grid_sigma` may be overridden with a faster evaluation on a regular grid."""

    box_warp = 1.0
    device = 'cpu'

    def sigma(self, points):
        """[P, 3] float32 world points -> raw density [P]."""
        raise NotImplementedError

    def colors(self, points):
        """[P, 3] world points -> sRGB colour [P, 3] in [0, 1]."""
        raise NotImplementedError

    def grid_sigma(self, axis):
        """A sampler for the grid axis x axis x axis (`axis`: [N] float32 world coordinates):
        sampler(I, J, K) with index tensors [B, si], [B, sj], [B, sk] -> sigma [B, si, sj, sk]."""
        def sampler(I, J, K):
            x, y, z = torch.broadcast_tensors(axis[I][:, :, None, None], axis[J][:, None, :, None],
                                              axis[K][:, None, None, :])
            return self.sigma(torch.stack((x, y, z), -1).reshape(-1, 3)).reshape(x.shape)
        return sampler


class TriplaneField(DensityField):
    """The field of one latent: tri-planes computed once by an engine session. Densities come
    from the folded decoder when it reproduces the reference `run_model` (checked on random
    points), else from `run_model` itself; colours always from `run_model`, as the raw image
    shows them (PanoHead: through its ToRGB layer).

    With `crop` a network whose renderer crops (PanoHead's box, rendering/tri_grid.py) has no
    density outside the crop box, as in its renders: meshes end where the rendered head does."""

    def __init__(self, session, ws, crop=True):
        self.G = G = session.G
        self.options = G.rendering_kwargs
        self.box_warp = float(self.options['box_warp'])
        self.planes = session.planes(ws, noise_mode='const')
        self.device = self.planes.device
        self.depth = self.options['triplane_depth'] \
            if isinstance(G.renderer, TriGridRenderer) else None
        self.crop_margin = G.renderer.crop_margin if crop else None
        self.sigmoid = G.decoder.activation == 'sigmoid'
        self.torgb = getattr(G, 'torgb', None)
        self.w_last = ws[:1, -1].float()
        self.folded = self._fold()

    def _run(self, points):
        points = points.to(self.device, torch.float32)[None]
        directions = torch.zeros_like(points)
        directions[..., 2] = -1         # the official dummy direction; the decoder ignores it
        return self.G.renderer.run_model(self.planes, self.G.decoder, points, directions,
                                         self.options)

    def _fold(self):
        if self.options.get('density_noise', 0) > 0:
            return None                 # noisy densities cannot be folded
        try:
            folded = _FoldedPlanes(self.G.decoder, self.planes[0], self.box_warp, self.depth)
        except (AttributeError, TypeError, ValueError, IndexError, RuntimeError):
            return None                 # a decoder of another shape: stay with run_model
        generator = torch.Generator().manual_seed(0)
        points = (torch.rand(4096, 3, generator=generator) - 0.5) * (1.2 * self.box_warp)
        fast, exact = folded.sigma(points.to(self.device)), self._run(points)['sigma'][0, :, 0]
        if not torch.allclose(fast, exact, rtol=1e-4, atol=1e-3):
            warnings.warn('the folded decoder disagrees with run_model; sampling through run_model '
                          f'(max difference {float((fast - exact).abs().max()):.3g})')
            return None
        return folded

    def sigma(self, points):
        points = points.to(self.device, torch.float32)
        if self.folded is not None:
            sigma = self.folded.sigma(points)
        else:
            sigma = self._run(points)['sigma'][0, :, 0]
        if self.crop_margin is not None:
            sigma = sigma.masked_fill(outside_crop(points, self.box_warp, self.crop_margin)[:, 0],
                                      CROPPED_DENSITY)
        return sigma

    def colors(self, points):
        features = self._run(points)['rgb'][0]
        if self.torgb is None and self.sigmoid:
            return features[:, :3].clamp(0, 1)          # EG3D: the raw image is 2 f - 1
        if self.sigmoid:
            features = features * 2 - 1
        if self.torgb is not None:
            features = self.torgb(features.t()[None, :, :, None], self.w_last,
                                  fused_modconv=False)[0, :, :, 0].t()
        return ((features[:, :3] + 1) / 2).clamp(0, 1)

    def grid_sigma(self, axis):
        if self.folded is not None and self.crop_margin is None and self.depth is None:
            return self.folded.grid_sampler(axis.to(self.device))
        return super().grid_sigma(axis.to(self.device))


class _FoldedPlanes:
    """The decoder's first layer is linear, so it is folded into the planes: each texel holds its
    contribution to the hidden layer (weight / 3: the decoder averages the planes). A point then
    costs one weighted sum of 12 texels (the fast path's PlaneTable), the
    activation and the sigma row of the last layer, instead of 3 x 32-channel bilinear samples
    and the whole MLP."""

    def __init__(self, decoder, planes, box_warp, depth=None):
        """planes [3, C, H, W], or PanoHead's tri-grid [3, C * depth, H, W] with `depth`."""
        first, self.activation, last = decoder.net
        channels = planes.shape[1] // (depth or 1)
        eye = torch.eye(channels, device=planes.device)
        self.bias1 = first(torch.zeros_like(eye[:1]))[0]
        weight1 = first(eye) - self.bias1                               # [C, hidden]
        eye = torch.eye(len(self.bias1), device=planes.device)
        bias2 = last(torch.zeros_like(eye[:1]))
        self.weight2 = (last(eye) - bias2)[:, 0].contiguous()          # sigma row, [hidden]
        self.bias2 = bias2[0, 0]
        if depth is None:
            texels = planes.permute(0, 2, 3, 1) @ (weight1 / 3)         # [3, H, W, hidden]
            self.table = PlaneTable(texels.permute(0, 3, 1, 2)[None])
        else:
            h, w = planes.shape[-2:]
            volumes = planes.reshape(3, channels, depth, h, w).permute(0, 2, 3, 4, 1)
            texels = (volumes @ (weight1 / 3)).permute(0, 4, 1, 2, 3)   # [3, hidden, D, H, W]
            self.table = TriGridTable(texels.reshape(1, 3, -1, h, w), depth)
        self.box_warp = box_warp

    def features(self, points, planes=None):
        """Sum over `planes` (default all three) of the folded bilinear samples at [P, 3] world
        points: [P, hidden]."""
        return self.table.sample_sum(points, self.box_warp, planes=planes)

    def output(self, hidden):
        return self.activation(hidden) @ self.weight2 + self.bias2

    def sigma(self, points):
        """Raw density at [P, 3] world points."""
        return torch.cat([self.output(self.bias1 + self.features(points[c:c + CHUNK_POINTS]))
                          for c in range(0, len(points), CHUNK_POINTS)])

    def grid_sampler(self, axis):
        """Sampler for the regular grid axis^3 (EG3D's planes only). Plane 0 sees (x, y) and
        planes 1, 2 see x and z,
        so the hidden layer is A[i, j] + B[i, k]: two [N^2, hidden] tables, and a voxel costs one
        add, the activation and the dot. Points (t_a, t_b, t_b) give both tables indexed
        [a N + b]: (x, y) = (t_a, t_b) on plane 0, (x, z) and (z, x) from (t_a, t_b) on 1 and 2."""
        n = len(axis)
        points = torch.stack((axis.repeat_interleave(n), axis.repeat(n), axis.repeat(n)), -1)
        chunks = [points[c:c + CHUNK_POINTS] for c in range(0, n * n, CHUNK_POINTS)]
        A = torch.cat([self.bias1 + self.features(c, (0,)) for c in chunks])
        B = torch.cat([self.features(c, (1, 2)) for c in chunks])

        def sampler(I, J, K):
            (batch, si), sj, sk = I.shape, J.shape[1], K.shape[1]
            ij = A.index_select(0, (I[:, :, None] * n + J[:, None, :]).reshape(-1))
            ik = B.index_select(0, (I[:, :, None] * n + K[:, None, :]).reshape(-1))
            return self.output(ij.view(batch, si, sj, 1, -1) + ik.view(batch, si, 1, sk, -1))
        return sampler
