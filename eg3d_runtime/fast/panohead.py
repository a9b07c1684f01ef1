"""What a PanoHead frame adds to EG3D's in the fast path (networks/panohead.py is the
reference), for the engine session that renders it:

- the tri-grid is one TriGridTable (tri_grid.py) and the marcher removes densities outside
  the crop box (render.render_rays with the renderer's crop margin);
- the background network depends on ws only: folded like the backbone, run once per ws and
  kept (with noise 'const' or 'none') with its resizes per neural rendering resolution, so a
  camera-only frame costs only the blend (PanoHead's own code runs it on every frame);
- the ToRGB raw image is one 32 x 3 matrix per sample, folded once per w;
- the opacity the marcher sums anyway gives image_mask.

A new ws is written into the tensors a captured per-camera CUDA graph reads (the background
image, the folded ToRGB), as the session does for the plane table and super-resolution.
"""
import torch
import torch.nn.functional as F

from . import tensor_keys
from ..networks.panohead import MASK_MARGIN
from . import backbone as fb
from . import superresolution as fsr
from .blocks import refold_into
from .fold import fold_torgb, params_signature
from .frame import camera_rays, march_batch
from .tri_grid import TriGridTable

class _Background:
    """The background network's image for one set of ws, and its resizes per neural rendering
    resolution (NHWC). A new ws is written into the same tensors: captured frames read them."""

    def __init__(self, key, held, image):
        self.key, self.held, self.image = key, held, image
        self.resized = {}                        # nrr -> [NHWC tensor, up to date]

    def refill(self, held, image):
        self.held = held
        self.image.copy_(image)
        for entry in self.resized.values():
            entry[1] = False


class PanoHeadParts:
    """A session's PanoHead caches: the background image of the last ws, the ToRGB layer
    folded for the last w."""

    def __init__(self):
        self._background = None
        self._torgb = None

    def clear(self):
        self._background = self._torgb = None

    @staticmethod
    def table(G, planes):
        """The tri-grid of planes [N, 3, 32 * depth, H, W] as one lookup table."""
        return TriGridTable(planes, G.rendering_kwargs['triplane_depth'])

    def background(self, G, ws, nrr, ws_bcg, noise_mode, dtype, workspace, options):
        """The background features NHWC [N, nrr, nrr, 32] PanoHead blends in, for ws (or
        `ws_bcg`): the network runs once per ws and precision (every call with random noise),
        its image is resized once per neural rendering resolution (the preview changes it)."""
        net = G.bcg_synthesis
        source = (ws if ws_bcg is None else ws_bcg)[:, :net.num_ws].float()
        missing = net.num_ws - source.shape[1]
        if missing > 0:                          # the last ws repeated, as PanoHead
            source = torch.cat([source, source[:, -1:].expand(-1, missing, -1)], 1)

        def run():
            return fb.run_synthesis(net, source, noise_mode, dtype, workspace, options.winograd,
                                    options.backbone_min_tiles, 'background')
        resize = dict(size=(nrr, nrr), mode='bilinear', align_corners=False,
                      antialias=G.rendering_kwargs['sr_antialias'])
        if noise_mode == 'random':
            return F.interpolate(run(), **resize).permute(0, 2, 3, 1).contiguous()
        key = (noise_mode, params_signature(net), ws.device, dtype, tuple(source.shape))
        cached = self._background
        if cached is None or cached.key != key:
            cached = self._background = _Background(key, tensor_keys.held(source), run())
        elif not tensor_keys.holds(cached.held, source):
            cached.refill(tensor_keys.held(source), run())
        entry = cached.resized.get(nrr)
        if entry is None or not entry[1]:
            features = F.interpolate(cached.image, **resize).permute(0, 2, 3, 1)
            if entry is None:
                entry = cached.resized[nrr] = [features.contiguous(), True]
            else:
                entry[0].copy_(features)
                entry[1] = True
        return entry[0]

    def torgb(self, G, ws):
        """PanoHead's ToRGB layer folded for the last w of each sample (a 1x1 FixedConv each)."""
        w_last = ws[:, -1]
        key = (params_signature(G.torgb), w_last.device, tuple(w_last.shape))
        cached = self._torgb
        if cached is not None and cached[0] == key and tensor_keys.holds(cached[1], w_last):
            return cached[2]
        folded = [fold_torgb(G.torgb, w_last[n].float()) for n in range(w_last.shape[0])]
        if cached is not None and cached[0] == key and refold_into(cached[2], folded):
            folded = cached[2]
        self._torgb = (key, tensor_keys.held(w_last), folded)
        return folded


def camera_frame(G, table, decoder, folded_sr, workspace, nrr, options, deterministic, chunk,
                 grids=None, blend=None, torgb=None, lap=None):
    """fast.frame.camera_frame for a PanoHead network: c [N, 25] -> {'image_raw',
    'image_depth', 'image_mask'} plus 'image' when `folded_sr` is given. `blend`: the
    background features (PanoHeadParts.background) or None for the head alone; `torgb`: the
    folded ToRGB layers, or None where the raw image is the first three feature channels."""
    lap = lap or (lambda stage: None)
    # Only a raw preview without ToRGB can do with the first three colour channels.
    k = 3 if folded_sr is None and torgb is None else None
    ray_sampler, sr, crop_margin = G.ray_sampler, G.superresolution, G.renderer.crop_margin

    def frame(c):
        origins, directions = camera_rays(ray_sampler, c, nrr)
        n = origins.shape[0]
        feats, depth, opacity = march_batch(table, decoder, origins, directions, options,
                                            deterministic, k, chunk, grids, crop_margin)
        lap('march')
        features = feats.view(n, nrr, nrr, -1)                                # NHWC
        opacity = opacity.view(n, nrr, nrr, 1)
        if blend is not None:
            features = features + (1 - opacity) * blend[..., :features.shape[-1]]
        if torgb is None:
            rgb = features[..., :3]
        else:
            rgb = torch.stack([torgb[i](features[i].contiguous()) for i in range(n)])
        out = {'image_raw': rgb.permute(0, 3, 1, 2).contiguous(),
               'image_depth': depth.view(n, 1, nrr, nrr),
               'image_mask': opacity.permute(0, 3, 1, 2) * (1 + 2 * MASK_MARGIN) - MASK_MARGIN}
        if folded_sr is not None:
            out['image'], raw = fsr.run(sr, folded_sr, features, workspace, rgb=rgb)
            if raw is not None:                  # the official in-place quirk
                out['image_raw'] = raw
            lap('superresolution')
        return out
    return frame
