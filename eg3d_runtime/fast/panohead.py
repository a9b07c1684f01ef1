"""The fast path of PanoHead generators (networks/panohead.py is the reference): what differs
from EG3D's frame in path.py, built from its parts.

- The tri-grid is one TriGridTable (tri_grid.py) and the marcher removes densities outside
  the crop box (render.render_rays with the renderer's crop margin).
- The background network depends on ws only: folded like the backbone, run once per ws and
  neural rendering resolution, and kept (with noise 'const' or 'none'), so a camera-only frame
  costs only the blend. PanoHead's own code runs it on every frame.
- The ToRGB raw image is one 32 x 3 matrix per sample, folded once per w.
- The opacity the marcher sums anyway gives image_mask.

On CUDA the per-camera part is replayed as a CUDA graph as in path.py; a new ws is copied into
the background and ToRGB tensors the graph reads.
"""
import torch
import torch.nn.functional as F

from . import conv as fc
from . import graphs
from . import path
from . import superresolution as fsr
from .blocks import refold_into


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


def _background_image(G, source, noise_mode, dtype):
    """bcg_synthesis of the ws `source`, the last one repeated where it needs more (as
    PanoHead), NCHW at its own resolution."""
    missing = G.bcg_synthesis.num_ws - source.shape[1]
    if missing > 0:
        source = torch.cat([source, source[:, -1:].expand(-1, missing, -1)], 1)
    return path.run_synthesis(G, G.bcg_synthesis, source, noise_mode, dtype, 'background')


def background(G, ws, nrr, ws_bcg=None, noise_mode='random', force_fp32=False):
    """The background features NHWC [N, nrr, nrr, 32] PanoHead blends in, for ws (or
    `ws_bcg`): the network runs once per ws and precision (every call with random noise), its
    image is resized once per neural rendering resolution (the preview changes it)."""
    st = path.state(G)
    net = G.bcg_synthesis
    source = (ws if ws_bcg is None else ws_bcg)[:, :net.num_ws].float()
    dtype = path.conv_dtype(G, ws.device, 'backbone', force_fp32)
    resize = dict(size=(nrr, nrr), mode='bilinear', align_corners=False,
                  antialias=G.rendering_kwargs['sr_antialias'])
    if noise_mode == 'random':
        image = _background_image(G, source, noise_mode, dtype)
        return F.interpolate(image, **resize).permute(0, 2, 3, 1).contiguous()
    key = (noise_mode, path._signature(net), ws.device, dtype, tuple(source.shape))
    cached = st.family.get('background')
    if cached is None or cached.key != key:
        cached = st.family['background'] = _Background(
            key, path._held(source), _background_image(G, source, noise_mode, dtype))
    elif not path._holds(cached.held, source):
        cached.refill(path._held(source), _background_image(G, source, noise_mode, dtype))
    entry = cached.resized.get(nrr)
    if entry is None or not entry[1]:
        features = F.interpolate(cached.image, **resize).permute(0, 2, 3, 1)
        if entry is None:
            entry = cached.resized[nrr] = [features.contiguous(), True]
        else:
            entry[0].copy_(features)
            entry[1] = True
    return entry[0]


def folded_torgb(G, ws):
    """PanoHead's ToRGB layer folded for the last w of each sample (a 1x1 FixedConv each)."""
    st = path.state(G)
    w_last = ws[:, -1]
    key = (path._signature(G.torgb), w_last.device, tuple(w_last.shape))
    cached = st.family.get('torgb')
    if cached is not None and cached[0] == key and path._holds(cached[1], w_last):
        return cached[2]
    folded = [fc.fold_torgb(G.torgb, w_last[n].float()) for n in range(w_last.shape[0])]
    if cached is not None and cached[0] == key and refold_into(cached[2], folded):
        folded = cached[2]
    st.family['torgb'] = (key, path._held(w_last), folded)
    return folded


def _frame_fn(G, planes5d, ws, nrr, options, deterministic, superresolution_enabled,
              background_on, ws_bcg, noise_mode, force_fp32):
    """The per-camera part of a PanoHead frame as a function of c only (see path._frame_fn)."""
    st = path.state(G)
    table = path.plane_table(G, planes5d)
    decoder = path.folded_decoder(G)
    skip = options.get('empty_space_skipping', False)
    grids = path._occupancy(G, table, decoder, options) if skip else None
    chunk = path._chunk_points(st.options, ws.device)
    # Only a raw preview without ToRGB can do with the first three colour channels.
    k = 3 if not superresolution_enabled and G.torgb is None else None
    blend = background(G, ws, nrr, ws_bcg, noise_mode, force_fp32) \
        if background_on and G.bcg_synthesis is not None else None
    torgb = folded_torgb(G, ws) if G.torgb is not None else None
    sr = G.superresolution
    folded_sr = path.frame_superresolution(G, ws, superresolution_enabled, force_fp32)

    def frame(c):
        origins, directions = path.camera_rays(G, c, nrr)
        n = origins.shape[0]
        feats, depth, opacity = path._march_batch(
            table, decoder, origins, directions, options, deterministic, k, chunk, grids,
            G.renderer.crop_margin)
        features = feats.view(n, nrr, nrr, -1)                                # NHWC
        opacity = opacity.view(n, nrr, nrr, 1)
        if blend is not None:
            features = features + (1 - opacity) * blend[..., :features.shape[-1]]
        if torgb is None:
            rgb = features[..., :3]
        else:
            rgb = torch.stack([torgb[i](features[i].contiguous()) for i in range(n)])
        out = _outputs(rgb, depth, opacity)
        if superresolution_enabled:
            out['image'], raw = fsr.run(sr, folded_sr, features, st.workspace, rgb=rgb)
            if raw is not None:                  # the official in-place quirk
                out['image_raw'] = raw
        return out
    return frame, (id(blend), id(torgb), id(folded_sr))


def _outputs(rgb, depth, opacity):
    """image_raw, image_depth, image_mask (NCHW) of NHWC raw image and opacity."""
    n, h, w, _ = rgb.shape
    return {'image_raw': rgb.permute(0, 3, 1, 2).contiguous(),
            'image_depth': depth.view(n, 1, h, w),
            'image_mask': opacity.permute(0, 3, 1, 2) * (1 + 2 * 0.001) - 0.001}


def synthesis(G, ws, c, neural_rendering_resolution=None, noise_mode='random',
              cache_backbone=False, use_cached_backbone=False, deterministic=False,
              rendering_overrides=None, superresolution_enabled=True, force_fp32=False,
              background_on=True, ws_bcg=None):
    """Fast PanoHeadGenerator.synthesis (same arguments and outputs)."""
    st = path.state(G)
    with st.lock:
        options = {**G.rendering_kwargs, **(rendering_overrides or {})}
        nrr = int(neural_rendering_resolution or G.neural_rendering_resolution)
        c = c.float()
        planes5d = path.planes(G, ws, cache_backbone=cache_backbone,
                               use_cached_backbone=use_cached_backbone, noise_mode=noise_mode,
                               force_fp32=force_fp32)
        frame, reads = _frame_fn(G, planes5d, ws, nrr, options, deterministic,
                                 superresolution_enabled, background_on, ws_bcg, noise_mode,
                                 force_fp32)
        use_graph = (c.device.type == 'cuda' and st.options.cuda_graphs
                     and 'camera' not in st.graphs_failed and noise_mode != 'random'
                     and not options.get('empty_space_skipping', False)
                     and options.get('density_noise', 0) == 0)
        if not use_graph:
            return frame(c)
        key = graphs.graph_key(st, path.plane_table(G, planes5d), c, nrr, options,
                               deterministic, superresolution_enabled) + reads
        return graphs.run(st, 'camera', key, frame, c)
