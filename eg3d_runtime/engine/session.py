"""The engine session: the one owner of a network's fast inference on one device.

A Session holds what makes frames fast and must not be computed twice: the tri-planes of the
last latent, the plane table, the folded decoder and super-resolution weights, reusable
buffers, the CUDA graphs and what 'auto' precision resolved to. Every caller renders through
it (viewer, compare panels, commands, bench, exports, the training fakes grid); the networks
stay the reference modules, which training and `faithful=True` run.

Where the time goes and what is done about it, per stage of a frame:

- backbone (new w only): modulation and demodulation are folded into plain convolution weights
  for this w (fast/fold.py); on CPU big 3x3 layers run as Winograd F(4x4, 3x3), up-sampling
  layers as a transposed convolution + FIR, the rest as oneDNN convolutions into reused
  buffers, in row strips (fast/conv.py, fast/kernel_forms.py, fast/blocks.py); on CUDA
  up-sampling is one 3x3 convolution per output phase; NHWC throughout, buffers reused. With
  noise_mode 'const'/'none' the planes of the last w are kept, so repeated `planes(ws)` /
  `density` calls (mesh export) do not recompute the backbone.
- tri-plane table (once per set of planes): the planes as one padded channels-last table.
- ray marching: one `embedding_bag` gathers the three planes' bilinear samples; decoder as two
  matrix products; chunked so that it runs in cache; only 3 colour channels when no
  super-resolution follows (fast/render.py).
- super-resolution (uses only the last w): folded weights are computed once per w and kept, so
  a camera-only change only runs the convolutions.
- CPU: independent pieces (convolution row strips, ray chunks) run on worker threads with one
  intra-op thread each (fast/parallel.py).
- CUDA: fp16 super-resolution, and CUDA graphs (fast/graphs.py) for the backbone of a new w
  (deterministic noise only) and the per-camera part of every frame (not with empty-space
  skipping or density noise). New planes and a new w are copied into the tensors the
  per-camera graph reads (PlaneTable.refill, blocks.refold_into).

Calls are serialised by a lock, so the viewer's render thread and a mesh export may share one
session."""
import threading
import weakref

import torch

from ..fast import backbone as fb
from ..fast import conv as fc
from ..fast import frame as ff
from ..fast import graphs
from ..fast import panohead as fph
from ..fast import precision as fp
from ..fast import render as fr
from ..fast import superresolution as fsr
from ..fast import tensor_keys
from ..fast.blocks import refold_into
from ..fast.fold import params_signature
from ..networks.panohead import is_panohead
from .timing import Stopwatch
from .values import Density, EngineOptions, Frame, Precision, RenderSettings


def device_of(G):
    """The device G's weights are on."""
    return G.backbone.mapping.w_avg.device


class Session:
    """Fast frames, tri-planes and densities of network G on `device` (default: where G's
    weights are; G must be there). `precision`: one of fast.precision.NAMES for both parts, or
    a Precision choosing each; 'auto' is decided per machine (fast/precision.py)."""

    def __init__(self, G, device=None, precision='auto', options=None):
        self._network = lambda: G                 # weakly, for the session G holds itself
        self.device = torch.device(device) if device is not None else device_of(G)
        self.precision = Precision.of(precision)
        if self.precision.superresolution is None:
            raise ValueError('a session needs a super-resolution precision')
        self.options = options or EngineOptions()
        self._lock = threading.RLock()
        self._workspace = fc.Workspace()
        self._backbone = None      # (key, held ws, planes, planes version): deterministic noise
        self._table = None         # (planes base, version, shape, PlaneTable)
        self._decoder = None       # (weights signature, FoldedDecoder)
        self._sr = None            # (key, held last w, folded blocks per sample)
        self._graphs = graphs.GraphCache()
        self._auto = {}            # (part, device type, machine) -> what 'auto' resolved to
        # PanoHead's tri-grid, crop box, background network, ToRGB and mask (fast/panohead.py)
        self._panohead = fph.PanoHeadParts() if is_panohead(G.rendering_kwargs) else None

    @property
    def G(self):
        """The network this session renders."""
        G = self._network()
        if G is None:
            raise ReferenceError('the network of this session is gone (a session of G.session '
                                 'lives as long as G)')
        return G

    def held_by_network(self):
        """Refer to G weakly, for the session G keeps itself (G.session): no reference cycle
        then keeps a dropped network and the session's buffers alive until the next garbage
        collection. Returns the session."""
        self._network = weakref.ref(self.G)
        return self

    # ---- precision ---------------------------------------------------------------------------
    def dtype(self, part, force_fp32=False):
        """The torch dtype of `part` ('backbone' | 'sr') convolutions."""
        if force_fp32:
            return torch.float32
        name = self.precision.superresolution if part == 'sr' else self.precision.backbone
        if name == 'auto':
            key = (part, self.device.type, fp.machine_key())
            name = self._auto.get(key)
            if name is None:
                name = self._auto[key] = fp.auto_name(self.G, self.device, part,
                                                      self.options.winograd)
        return fp.DTYPES[name]

    def precision_in_use(self, force_fp32=False, superresolution=True):
        """The Precision the next frame runs in (without super-resolution: the backbone's
        only, and 'auto' measures nothing for it)."""
        return Precision(fp.name_of(self.dtype('backbone', force_fp32)),
                         fp.name_of(self.dtype('sr', force_fp32)) if superresolution else None)

    def describe(self):
        """The line the commands print: 'precision: backbone fp32, super-resolution fp32
        (auto, cpu)'."""
        choice = self.precision
        asked = choice.backbone if choice.backbone == choice.superresolution else \
            f'{choice.backbone} backbone, {choice.superresolution} super-resolution'
        return f'precision: {self.precision_in_use().describe()} ({asked}, {self.device.type})'

    # ---- tri-planes --------------------------------------------------------------------------
    @torch.no_grad()
    def planes(self, ws, noise_mode='const', force_fp32=False):
        """ws [N, num_ws, w_dim] -> tri-planes [N, 3, C, H, W]. With deterministic noise the
        planes of the last ws are kept and returned again for the same ws."""
        with self._lock:
            dtype = self.dtype('backbone', force_fp32)
            key = None
            if noise_mode != 'random':
                key = (noise_mode, fb.signature(self.G.backbone), ws.device, ws.dtype,
                       tuple(ws.shape), dtype)
                cached = self._backbone
                if cached is not None and cached[0] == key and cached[2]._version == cached[3] \
                        and tensor_keys.holds(cached[1], ws):
                    return fb.as_planes(cached[2])
            image = self._run_backbone(ws.float(), noise_mode, dtype)
            if key is not None:
                self._backbone = (key, tensor_keys.held(ws), image, image._version)
            return fb.as_planes(image)

    def _run_backbone(self, ws, noise_mode, dtype):
        """On CUDA with deterministic noise, replayed from a CUDA graph captured once per shape
        and precision (folding included: the eager backbone is bound by launching kernels)."""
        opts, backbone, workspace = self.options, self.G.backbone, self._workspace

        def run(w):       # holds G's modules, not the session or G (a captured graph keeps it)
            return fb.run_backbone(backbone, w, noise_mode, dtype, workspace, opts.winograd,
                                   opts.backbone_min_tiles)
        if ws.device.type == 'cuda' and opts.cuda_graphs and noise_mode != 'random' \
                and 'backbone' not in self._graphs.failed:
            key = (tuple(ws.shape), noise_mode, dtype, fb.signature(backbone))
            return self._graphs.run('backbone', key, lambda w: {'planes': run(w)}, ws)['planes']
        return run(ws)

    # ---- what frames are made of -------------------------------------------------------------
    def _plane_table(self, planes):
        """PlaneTable of planes [N, 3, C, H, W] (PanoHead's tri-grid: a TriGridTable), kept
        while the same tensor is used; other planes of the same shape are copied into the same
        table (captured graphs read it)."""
        base = tensor_keys.viewed(planes)
        cached = self._table
        if cached is not None and cached[0] is base and cached[1] == base._version \
                and cached[2] == tuple(planes.shape):
            return cached[3]
        if cached is not None and cached[3].refill(planes):
            table = cached[3]
        elif self._panohead is not None:
            table = self._panohead.table(self.G, planes)
        else:
            table = fr.PlaneTable(planes)
        self._table = (base, base._version, tuple(planes.shape), table)
        return table

    def _folded_decoder(self):
        key = params_signature(self.G.decoder)
        if self._decoder is None or self._decoder[0] != key:
            self._decoder = (key, fr.FoldedDecoder(self.G.decoder))
        return self._decoder[1]

    def _folded_superresolution(self, ws_last, force_fp32):
        """Folded blocks for the last w of each sample, kept for the same w; a new w is folded
        into the same tensors (captured graphs read them)."""
        sr = self.G.superresolution
        noise_mode = self.G.rendering_kwargs.get('superresolution_noise_mode', 'none')
        dtype = self.dtype('sr', force_fp32)
        key = (noise_mode, params_signature(sr), ws_last.device, dtype,
               self.options.winograd, tuple(ws_last.shape))
        cached = self._sr
        if cached is not None and cached[0] == key and tensor_keys.holds(cached[1], ws_last):
            return cached[2]
        folded = [fsr.fold(sr, w, noise_mode, ws_last.device, dtype, self.options.winograd)
                  for w in ws_last]
        if cached is not None and cached[0] == key and refold_into(cached[2], folded):
            folded = cached[2]
        self._sr = (key, tensor_keys.held(ws_last), folded)
        return folded

    def _occupancy(self, table, options):
        if not options.get('empty_space_skipping', False):
            return None
        return ff.occupancy(table, self._folded_decoder(), options,
                            self.options.occupancy_resolution, self.options.occupancy_threshold)

    # ---- frames ------------------------------------------------------------------------------
    @torch.no_grad()
    def frame(self, ws, camera, settings=RenderSettings(), planes=None, ws_bcg=None):
        """A frame of ws [N, num_ws, w_dim] seen from camera c [N, 25] (or 25 numbers).
        `planes`: this ws's tri-planes from `planes(ws, settings.noise_mode,
        settings.force_fp32)`, kept by the caller to re-render other cameras (otherwise the
        session's own keep them for deterministic noise only). `ws_bcg`: other ws for a
        PanoHead network's background (default ws)."""
        G = self.G
        c = torch.as_tensor(camera, dtype=torch.float32, device=self.device).reshape(-1, 25)
        options = settings.rendering_options(G.rendering_kwargs)
        nrr = int(settings.nrr or G.neural_rendering_resolution)
        run_sr = settings.superresolution or (
            settings.official_raw and fsr.raw_needs_superresolution(G, nrr))
        with self._lock:
            clock = Stopwatch(self.device)
            computed = planes is None
            if computed:
                planes = self.planes(ws, settings.noise_mode, settings.force_fp32)
                clock.lap('planes')
            out = self._render(planes, ws, c, nrr, options, settings, run_sr, clock, ws_bcg)
            precision = self.precision_in_use(settings.force_fp32, run_sr)
        samples = (int(options['depth_resolution']),
                   int(options.get('depth_resolution_importance', 0) or 0))
        return Frame(image_raw=out['image_raw'], image_depth=out['image_depth'],
                     image=out.get('image'), image_mask=out.get('image_mask'),
                     precision=precision, nrr=nrr, samples=samples, planes_computed=computed,
                     stopwatch=clock)

    def _render(self, planes, ws, c, nrr, options, settings, superresolution, clock,
                ws_bcg=None):
        """The per-camera part: through a CUDA graph where it can be captured (timed as one
        'render' stage), else eagerly ('march', 'superresolution')."""
        G, deterministic, force_fp32 = self.G, settings.deterministic, settings.force_fp32
        use_graph = (c.device.type == 'cuda' and self.options.cuda_graphs
                     and 'camera' not in self._graphs.failed
                     and not options.get('empty_space_skipping', False)
                     and options.get('density_noise', 0) == 0
                     # a PanoHead background with random noise is new every frame
                     and (self._panohead is None or settings.noise_mode != 'random'))
        table = self._plane_table(planes)
        decoder = self._folded_decoder()
        folded_sr = self._folded_superresolution(ws[:, -1], force_fp32) \
            if superresolution else None
        chunk = ff.chunk_points(self.options.chunk_points, c.device)
        grids = self._occupancy(table, options)
        lap = None if use_graph else clock.lap
        reads = ()
        if self._panohead is None:
            frame = ff.camera_frame(G.ray_sampler, G.superresolution, table, decoder, folded_sr,
                                    self._workspace, nrr, options, deterministic, chunk, grids,
                                    lap=lap)
        else:
            blend = self._panohead.background(
                G, ws, nrr, ws_bcg, settings.noise_mode, self.dtype('backbone', force_fp32),
                self._workspace, self.options) \
                if settings.background and G.bcg_synthesis is not None else None
            torgb = self._panohead.torgb(G, ws) if G.torgb is not None else None
            frame = fph.camera_frame(G, table, decoder, folded_sr, self._workspace, nrr,
                                     options, deterministic, chunk, grids, blend, torgb, lap=lap)
            reads = (id(blend), id(torgb))
        if not use_graph:
            return frame(c)
        key = graphs.graph_key(table, folded_sr, decoder, c, nrr, options, deterministic) + reads
        out = self._graphs.run('camera', key, frame, c)
        clock.lap('render')
        return out

    # ---- density -----------------------------------------------------------------------------
    @torch.no_grad()
    def density(self, points, ws, noise_mode='const', force_fp32=False):
        """Raw density and colour features at world points [N, P, 3] of ws's tri-planes (the
        decoder's view direction is unused, as in EG3D). Density noise of the network's
        rendering options is added, as the official sample_mixed does."""
        with self._lock:
            options = self.G.rendering_kwargs
            table = self._plane_table(self.planes(ws, noise_mode, force_fp32))
            sigma, features = ff.sample_points(
                table, self._folded_decoder(), points,
                options['box_warp'], ff.chunk_points(self.options.chunk_points, points.device))
        sigma = sigma.unsqueeze(-1)
        if options.get('density_noise', 0) > 0:
            sigma = sigma + torch.randn_like(sigma) * options['density_noise']
        return Density(sigma=sigma, features=features)

    def clear(self):
        """Drop the kept planes, tables, folded weights, graphs and buffers."""
        with self._lock:
            self._backbone = self._table = self._decoder = self._sr = None
            if self._panohead is not None:
                self._panohead.clear()
            self._graphs.clear()
            self._workspace.clear()
