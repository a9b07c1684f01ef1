"""Fast inference for TriPlaneGenerator: the default path of `G.synthesis`, `G.planes` and
`G.sample_mixed` when no gradient is needed (the reference path is `faithful=True`).

It renders the same thing as the reference path (checked in tests/test_fast_paths.py: relative
RMS error ~1e-6 in float32; within 1e-2 with reduced precision). Where the time goes and what is
done about it, per stage of a frame:

- backbone (new w only): modulation and demodulation are folded into plain convolution weights
  for this w; on CPU big 3x3 layers run as Winograd F(4x4, 3x3), up-sampling layers as a
  transposed convolution + FIR, the rest as oneDNN convolutions into reused buffers, in row
  strips (conv.py, blocks.py); on CUDA up-sampling is one 3x3 convolution per output phase;
  NHWC throughout, buffers reused. With
  noise_mode 'const'/'none' the planes of the last w are kept, so repeated `G.planes(ws)` /
  `G.sample_mixed` calls (mesh export) do not recompute the backbone.
- tri-plane table (once per set of planes): the planes as one padded channels-last table.
- ray marching: one `embedding_bag` gathers the three planes' bilinear samples; decoder as two
  matrix products; chunked so that it runs in cache; compositing without colour gathers; only
  3 colour channels when no super-resolution follows (render.py).
- super-resolution (uses only the last w): folded weights are computed once per w and cached,
  so a camera-only change only runs the convolutions.
- CPU: independent pieces (convolution row strips, ray chunks) run on worker threads with one
  intra-op thread each (parallel.py), which also keeps frames fast when another process or the
  GUI thread takes a core for a moment.
- CUDA: the same code; fp16 super-resolution convolutions, and CUDA graphs (graphs.py) for
  the two launch-bound parts: the backbone of a new w (folding included; deterministic noise
  only) and the per-camera part of every frame (rays -> ray marching -> super-resolution; not
  with empty-space skipping or density noise), each captured once and replayed. New planes and
  a new w are copied into the tensors the per-camera graph reads (PlaneTable.refill,
  blocks.refold_into).

Per-generator state (caches, options, buffers) lives outside the module in a weak dictionary, so
it is never pickled, deep-copied or listed in a state dict. Options: `fast.path.options(G)`.
"""
import threading
import weakref

import torch

from ..rendering.tri_grid import TriGridRenderer
from . import conv as fc
from . import graphs, precision
from . import superresolution as fsr
from . import render as fr
from .blocks import FoldedBlock, block_ws, refold_into
from .parallel import parallel_map
from .tri_grid import TriGridTable


class FastOptions:
    """Switches of the fast path of one generator (`fast.path.options(G)`)."""

    def __init__(self):
        self.enabled = True          # False: G.synthesis always takes the reference path
        self.winograd = True         # Winograd convolutions on CPU
        # Arithmetic of the super-resolution and of the backbone convolutions, each one of
        # precision.NAMES. 'auto': super-resolution fp16 on CUDA; on a CPU bf16 only where it is
        # native AND measured faster for this network (precision.py), else fp32; backbone fp32
        # (13 layers deep: reduced formats only when asked for). Reduced formats skip Winograd.
        self.precision = 'auto'
        self.backbone_precision = 'auto'
        self.cuda_graphs = True      # replay camera-only frames as CUDA graphs
        self.chunk_points = None     # points per ray-marching step (None: 64K CPU, 2M CUDA)
        self.backbone_min_tiles = 256  # Winograd in the backbone from this many 4x4 tiles
        self.occupancy_resolution = 64  # empty-space skipping grid (previews)
        self.occupancy_threshold = 1e-3

    def set(self, name):
        """One precision for backbone and super-resolution alike (`--precision`)."""
        self.precision = self.backbone_precision = precision.check_name(name)


class _State:
    def __init__(self):
        self.lock = threading.RLock()
        self.options = FastOptions()
        self.workspace = fc.Workspace()
        self.sr = None                # (key, w, folded blocks per sample)
        self.backbone = None          # (key, ws, planes) for deterministic noise modes
        self.table = None             # (planes, version, PlaneTable)
        self.decoder = None           # (key, FoldedDecoder)
        self.graphs = {}              # CUDA graph runners
        self.graphs_failed = set()    # parts whose capture failed ('backbone', 'camera')
        self.auto = {}                # (part, device type, machine) -> name 'auto' resolved to
        self.family = {}              # caches of a family's own parts (fast/panohead.py)


_STATES = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def state(G):
    with _STATES_LOCK:
        st = _STATES.get(G)
        if st is None:
            st = _State()
            _STATES[G] = st
        return st


def options(G):
    """The FastOptions of generator G (mutable)."""
    return state(G).options


def clear_caches(G):
    """Drop cached folded weights, tables, planes, graphs and buffers of G."""
    st = state(G)
    with st.lock:
        st.sr = st.backbone = st.table = st.decoder = None
        st.family.clear()
        st.graphs.clear()
        st.workspace.clear()


_FAST_KWARGS = {'force_fp32', 'fused_modconv', 'noise_mode', 'update_emas'}


def usable(G, ws=None, synthesis_kwargs=None):
    """Whether the fast path may serve this call (inference only: no autograd, eval mode)."""
    st = state(G)
    if not st.options.enabled or G.training:
        return False
    if synthesis_kwargs and set(synthesis_kwargs) - _FAST_KWARGS:
        return False
    if torch.is_grad_enabled():
        if ws is not None and ws.requires_grad:
            return False
        if any(p.requires_grad for p in G.parameters()):
            return False
    return True


def backbone_planes(G, ws, noise_mode='random', force_fp32=False):
    """ws [N, num_ws, w_dim] -> backbone image [N, 96, 256, 256] (NCHW, float32).

    On CUDA with deterministic noise it is replayed from a CUDA graph captured once per
    generator, shape and precision (graphs.py), folding included: the eager backbone is bound
    by launching its kernels from Python."""
    st = state(G)
    ws = ws.float()
    if ws.device.type == 'cuda' and st.options.cuda_graphs and noise_mode != 'random' \
            and 'backbone' not in st.graphs_failed:
        key = (tuple(ws.shape), noise_mode, conv_dtype(G, ws.device, 'backbone', force_fp32),
               _signature(G.backbone.synthesis))
        return graphs.run(st, 'backbone', key, lambda w: {'planes': _run_backbone(
            G, w, noise_mode, force_fp32)}, ws)['planes']
    return _run_backbone(G, ws, noise_mode, force_fp32)


def _run_backbone(G, ws, noise_mode, force_fp32):
    """The backbone, eagerly (run_synthesis)."""
    return run_synthesis(G, G.backbone.synthesis, ws, noise_mode,
                         conv_dtype(G, ws.device, 'backbone', force_fp32), 'backbone')


def run_synthesis(G, synthesis_network, ws, noise_mode, dtype, name):
    """A StyleGAN2 synthesis network of G (the backbone, PanoHead's background) for ws
    [N, num_ws, w_dim] -> image [N, C, H, W]: fold every layer for this w, then run the
    blocks. No host synchronisation after the first call (so it can be captured)."""
    st = state(G)
    opts = st.options
    device = ws.device
    blocks = [getattr(synthesis_network, f'b{res}')
              for res in synthesis_network.block_resolutions]
    result = None
    for n in range(ws.shape[0]):
        x = img = None
        for block, bws in zip(blocks, block_ws(blocks, ws[n])):
            fb = FoldedBlock(block, bws, noise_mode, device, dtype, opts.winograd,
                              opts.backbone_min_tiles, None)
            x, img = fb(x, img, st.workspace, f'{name}.b{block.resolution}')
        if result is None:
            result = torch.empty(ws.shape[0], img.shape[2], img.shape[0], img.shape[1],
                                 device=device)
        result[n].copy_(img.permute(2, 0, 1))
    return result


def _signature(module):
    return fc.params_signature(module)


def _reading_waits(device):
    """Whether reading a tensor's values on the host waits for the device's queued work."""
    return device.type == 'cuda'


def _viewed(x):
    """The tensor that `x` is a view of (x itself if it is none)."""
    return x if x._base is None else x._base


def _held(x):
    """What a cache keeps of an input tensor to know it again: the tensor it views, where and
    how, that tensor's version (bumped by in-place changes) and a copy of the values."""
    return _viewed(x), x._version, x.storage_offset(), x.stride(), x.detach().clone()


def _holds(held, x):
    """Whether `x` has the values `held` was made from: the same view of the same unchanged
    tensor, or (where reading values is cheap) equal values. Where the host would wait for the
    device to read them (CUDA), another tensor counts as new: a new latent's frame must not wait
    for the previous work (the viewer passes the same ws tensor while the latent stays)."""
    base, version, offset, stride, values = held
    if _viewed(x) is base and x._version == version \
            and x.storage_offset() == offset and x.stride() == stride \
            and x.shape == values.shape:
        return True
    return not _reading_waits(x.device) and torch.equal(values, x)


def planes(G, ws, cache_backbone=False, use_cached_backbone=False, noise_mode='random',
           force_fp32=False):
    """Fast counterpart of G.planes: NCHW planes [N, 3, 32, H, W] (a view of the backbone image)."""
    st = state(G)
    with st.lock:
        if use_cached_backbone and G._last_planes is not None:
            img = G._last_planes
        else:
            img = None
            key = None
            if noise_mode != 'random':
                key = (noise_mode, _signature(G.backbone.synthesis), ws.device, ws.dtype,
                       tuple(ws.shape), conv_dtype(G, ws.device, 'backbone', force_fp32))
                cached = st.backbone
                if cached is not None and cached[0] == key and cached[2]._version == cached[3] \
                        and _holds(cached[1], ws):
                    img = cached[2]
            if img is None:
                img = backbone_planes(G, ws, noise_mode, force_fp32)
                if key is not None:
                    st.backbone = (key, _held(ws), img, img._version)
        if cache_backbone:
            G._last_planes = img
        return img.view(len(img), 3, img.shape[1] // 3, img.shape[-2], img.shape[-1])


def plane_table(G, planes5d):
    """PlaneTable for planes [N, 3, C, H, W] (a TriGridTable for PanoHead's tri-grid), cached
    while the same tensor is used; other planes of the same shape are copied into the same
    table (captured CUDA graphs read it)."""
    st = state(G)
    base = _viewed(planes5d)
    cached = st.table
    if cached is not None and cached[0] is base and cached[1] == base._version \
            and cached[2] == tuple(planes5d.shape):
        return cached[3]
    if cached is not None and cached[3].refill(planes5d):
        table = cached[3]
    elif isinstance(G.renderer, TriGridRenderer):
        table = TriGridTable(planes5d, G.rendering_kwargs['triplane_depth'])
    else:
        table = fr.PlaneTable(planes5d)
    st.table = (base, base._version, tuple(planes5d.shape), table)
    return table


def folded_decoder(G):
    st = state(G)
    key = _signature(G.decoder)
    if st.decoder is None or st.decoder[0] != key:
        st.decoder = (key, fr.FoldedDecoder(G.decoder))
    return st.decoder[1]


def _chunk_points(opts, device):
    if opts.chunk_points:
        return opts.chunk_points
    return 1 << 21 if device.type == 'cuda' else 1 << 16


def _occupancy(G, table, decoder, options):
    opts = state(G).options
    key = (options['box_warp'], opts.occupancy_resolution, opts.occupancy_threshold)
    grids = table.occupancy.get(key)
    if grids is None:
        start, end = options['ray_start'], options['ray_end']
        n = max(int(options['depth_resolution']), 2)
        delta = (end - start) / (n - 1) if not isinstance(start, str) else None
        grids = [fr.build_occupancy(table, decoder, options['box_warp'], opts.occupancy_resolution,
                                    opts.occupancy_threshold, b, delta)
                 for b in range(table.batch)]
        table.occupancy[key] = grids
    return grids


def _march_batch(table, decoder, origins, directions, options, deterministic, colour_channels,
                 chunk, grids, crop_margin=None):
    """Ray-march every sample of a batch -> features [N, M, k], depth [N, M, 1] (clamped to the
    batch's sample range), opacity [N, M, 1]."""
    feats, depths, opacities, lo, hi = [], [], [], [], []
    jitter = None if deterministic else fr.draw_jitter(*origins.shape[:2], options,
                                                       origins.device)
    for n in range(origins.shape[0]):
        f, d, o, dmin, dmax = fr.render_rays(table, decoder, origins[n], directions[n], options,
                                             None if jitter is None else [u[n] for u in jitter],
                                             n, colour_channels, chunk,
                                             grids[n] if grids else None, crop_margin)
        feats.append(f)
        depths.append(d)
        opacities.append(o)
        lo.append(dmin)
        hi.append(dmax)
    depth = fr.finish_depth(torch.stack(depths), torch.stack(lo).min(), torch.stack(hi).max())
    return torch.stack(feats), depth, torch.stack(opacities)


def render(G, planes5d, origins, directions, options, deterministic=False, colour_channels=None):
    """Fast ImportanceRenderer: -> features [N, M, k], depth [N, M, 1]."""
    st = state(G)
    with st.lock:
        table = plane_table(G, planes5d)
        decoder = folded_decoder(G)
        skip = options.get('empty_space_skipping', False)
        grids = _occupancy(G, table, decoder, options) if skip else None
        chunk = _chunk_points(st.options, origins.device)
        return _march_batch(table, decoder, origins, directions, options, deterministic,
                            colour_channels, chunk, grids, G.renderer.crop_margin)[:2]


# ------------------------------------------------------------------------------------------------
# Super-resolution with weights folded once per w
# ------------------------------------------------------------------------------------------------

def folded_superresolution(G, ws_last, noise_mode, force_fp32=False):
    """Per-sample folded SR blocks for the last w of each sample, cached by value of w; a new w
    is folded into the same tensors (captured CUDA graphs read them)."""
    st = state(G)
    opts = st.options
    device = ws_last.device
    dtype = conv_dtype(G, device, 'sr', force_fp32)
    sr = G.superresolution
    key = (noise_mode, _signature(sr), device, dtype, opts.winograd, tuple(ws_last.shape))
    cached = st.sr
    if cached is not None and cached[0] == key and _holds(cached[1], ws_last):
        return cached[2]
    folded = [fsr.fold(sr, w, noise_mode, device, dtype, opts.winograd) for w in ws_last]
    if cached is not None and cached[0] == key and refold_into(cached[2], folded):
        folded = cached[2]
    st.sr = (key, _held(ws_last), folded)
    return folded


def superresolution(G, features, ws, noise_mode=None):
    """features NHWC [N, h, h, 32] (rgb = first 3 channels) -> image NCHW [N, 3, R, R]."""
    st = state(G)
    with st.lock:
        noise_mode = noise_mode or G.rendering_kwargs.get('superresolution_noise_mode', 'none')
        folded = folded_superresolution(G, ws[:, -1], noise_mode)
        return fsr.run(G.superresolution, folded, features, st.workspace)[0]


# ------------------------------------------------------------------------------------------------
# Precision
# ------------------------------------------------------------------------------------------------

def conv_dtype(G, device, part, force_fp32=False):
    """The torch dtype of `part` ('backbone' | 'sr') convolutions for this call."""
    if force_fp32:
        return torch.float32
    st = state(G)
    name = st.options.precision if part == 'sr' else st.options.backbone_precision
    if name == 'auto':
        key = (part, device.type, precision.machine_key())
        name = st.auto.get(key)
        if name is None:
            name = st.auto[key] = precision.auto_name(G, device, part,
                                                          st.options.winograd)
    return precision.DTYPES[name]


def use_precision(G, name, device):
    """Apply a command's `--precision name` to G; returns the line the commands print."""
    options(G).set(name)
    return (f'precision: {precision.describe(precision_in_use(G, device))} '
            f'({name}, {torch.device(device).type})')


def precision_in_use(G, device, force_fp32=False, superresolution=True):
    """{'backbone': name, 'superresolution': name} as the next frame on `device` will run,
    for the Performance panel, the bench and the command-line logs. Without the
    super-resolution its entry is None, and 'auto' is not resolved (measured) for it."""
    device = torch.device(device)
    sr = precision.name_of(conv_dtype(G, device, 'sr', force_fp32)) if superresolution else None
    return {'backbone': precision.name_of(conv_dtype(G, device, 'backbone', force_fp32)),
            'superresolution': sr}


# ------------------------------------------------------------------------------------------------
# The frame
# ------------------------------------------------------------------------------------------------

def camera_rays(G, c, nrr):
    """Ray origins and directions [N, nrr * nrr, 3] of cameras c [N, 25]."""
    return G.ray_sampler(c[:, :16].view(-1, 4, 4), c[:, 16:25].view(-1, 3, 3), nrr)


def frame_superresolution(G, ws, enabled, force_fp32=False):
    """The folded super-resolution a frame of ws runs (None when it runs none)."""
    if not enabled:
        return None
    noise_mode = G.rendering_kwargs.get('superresolution_noise_mode', 'none')
    return folded_superresolution(G, ws[:, -1], noise_mode, force_fp32)


def _frame_fn(G, planes5d, ws, nrr, options, deterministic, superresolution_enabled,
              force_fp32=False):
    """The per-camera part of a frame as a function of c only (capturable in a CUDA graph:
    no host syncs, static shapes). Weight folding and table lookups happen before."""
    st = state(G)
    table = plane_table(G, planes5d)
    decoder = folded_decoder(G)
    skip = options.get('empty_space_skipping', False)
    grids = _occupancy(G, table, decoder, options) if skip else None
    k = 3 if not superresolution_enabled else None
    chunk = _chunk_points(st.options, ws.device)
    sr = G.superresolution
    folded_sr = frame_superresolution(G, ws, superresolution_enabled, force_fp32)

    def frame(c):
        origins, directions = camera_rays(G, c, nrr)
        n = origins.shape[0]
        feats, depth, _ = _march_batch(table, decoder, origins, directions, options,
                                       deterministic, k, chunk, grids)
        feature_image = feats.view(n, nrr, nrr, -1)                           # NHWC
        out = {'image_raw': feature_image[..., :3].permute(0, 3, 1, 2).contiguous(),
               'image_depth': depth.view(n, 1, nrr, nrr)}
        if superresolution_enabled:
            out['image'], raw = fsr.run(sr, folded_sr, feature_image, st.workspace)
            if raw is not None:                  # the official in-place quirk (superresolution.py)
                out['image_raw'] = raw
        return out
    return frame


def synthesis(G, ws, c, neural_rendering_resolution=None, noise_mode='random',
              cache_backbone=False, use_cached_backbone=False, deterministic=False,
              rendering_overrides=None, superresolution_enabled=True, force_fp32=False):
    """Fast G.synthesis (same arguments and outputs); `force_fp32` overrides the precision
    options for backbone and super-resolution alike."""
    st = state(G)
    with st.lock:
        options = {**G.rendering_kwargs, **(rendering_overrides or {})}
        nrr = int(neural_rendering_resolution or G.neural_rendering_resolution)
        c = c.float()
        planes5d = planes(G, ws, cache_backbone=cache_backbone,
                          use_cached_backbone=use_cached_backbone, noise_mode=noise_mode,
                          force_fp32=force_fp32)
        frame = _frame_fn(G, planes5d, ws, nrr, options, deterministic, superresolution_enabled,
                          force_fp32)
        use_graph = (c.device.type == 'cuda' and st.options.cuda_graphs
                     and 'camera' not in st.graphs_failed
                     and not options.get('empty_space_skipping', False)
                     and options.get('density_noise', 0) == 0)
        if not use_graph:
            return frame(c)
        key = graphs.graph_key(st, plane_table(G, planes5d), c, nrr, options, deterministic,
                               superresolution_enabled)
        return graphs.run(st, 'camera', key, frame, c)


def sample_mixed(G, coordinates, directions, ws, noise_mode='random', options=None,
                 force_fp32=False):
    """Fast G.sample_mixed: raw 'sigma' [N, P, 1] and 'rgb' [N, P, 32] at world points."""
    st = state(G)
    with st.lock:
        options = options or G.rendering_kwargs
        planes5d = planes(G, ws, noise_mode=noise_mode, force_fp32=force_fp32)
        table = plane_table(G, planes5d)
        decoder = folded_decoder(G)
        sigmas, rgbs = [], []
        chunk = _chunk_points(st.options, coordinates.device)
        box_warp = options['box_warp']
        for n in range(coordinates.shape[0]):
            pts = coordinates[n]
            parts = parallel_map(
                lambda i: decoder(table.sample_sum(pts[i:i + chunk], box_warp, n)),
                range(0, pts.shape[0], chunk), pts.device)
            sigmas.append(torch.cat([p[0] for p in parts]))
            rgbs.append(torch.cat([p[1] for p in parts]))
        sigma = torch.stack(sigmas).unsqueeze(-1)
        if options.get('density_noise', 0) > 0:
            sigma = sigma + torch.randn_like(sigma) * options['density_noise']
        return {'rgb': torch.stack(rgbs), 'sigma': sigma}
