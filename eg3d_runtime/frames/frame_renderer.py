"""Turns RenderArgs into a displayable frame with eg3d_runtime's engine; no GUI code here.

Keeps what is expensive between frames: the loaded network and its engine session, the mapped
ws (recomputed only when the latent fields change) and the tri-planes (reused while only the
camera changes).
"""
import functools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import torch

from eg3d_runtime import PickleLoadError, views
from eg3d_runtime.engine import RenderSettings
from eg3d_runtime.memory import InsufficientMemory
from eg3d_runtime.networks.panohead import is_panohead
from eg3d_runtime.pickles import open_generator
from eg3d_runtime.preview import AdaptivePreview, ladder_for
from eg3d_runtime.rendering.footprint import require_frame_memory

from .layer_capture import capture_layers, layer_to_image
from .render_args import RenderArgs

SEED_GRID_WIDTH = 100


class RenderAborted(Exception):
    """A newer request made the frame in progress unwanted."""


@dataclass(frozen=True)
class NetworkInfo:
    """The facts of a frame's network that widgets and exports use, so the GUI thread never asks
    the renderer. The defaults are what the widgets assume before any network is loaded."""
    img_resolution: int = 512
    num_ws: int = 14
    default_nrr: int = 64
    depth_resolution: int = 48
    depth_resolution_importance: int = 48
    rendering_kwargs: Mapping = field(default_factory=lambda: MappingProxyType({}))
    panohead: bool = False                 # PanoHead: mask, background, pose_cond convention
    has_background: bool = False
    # The loaded G, for exports only: they render through its engine session from their own
    # thread (its calls are serialised; see MeshExportWidget), never the FrameRenderer.
    generator: object = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, G):
        rk = G.rendering_kwargs
        return cls(img_resolution=G.img_resolution, num_ws=G.backbone.mapping.num_ws,
                   default_nrr=G.neural_rendering_resolution,
                   depth_resolution=rk['depth_resolution'],
                   depth_resolution_importance=rk.get('depth_resolution_importance', 0),
                   rendering_kwargs=MappingProxyType(dict(rk)), panohead=is_panohead(rk),
                   has_background=getattr(G, 'bcg_synthesis', None) is not None, generator=G)

    @property
    def session(self):
        """The network's engine session (G.session)."""
        return self.generator.session


NO_NETWORK = NetworkInfo()


@dataclass(frozen=True)
class RenderResult:
    """One finished, failed or abandoned frame. Immutable: the GUI thread keeps reading it while
    the worker renders the next one."""
    args: RenderArgs
    quality: str = 'full'                  # 'full' | 'preview'
    image: torch.Tensor | None = None      # uint8 [H, W, 3] on the render device
    error: str | None = None
    message: str | None = None
    load_failed: bool = False              # the requested network could not be opened
    aborted: bool = False
    # stage -> milliseconds: load, mapping, synthesis, total, and the engine's (Frame.timings)
    timings: Mapping[str, float] = field(default_factory=dict)
    network: NetworkInfo | None = None     # None when no network could be used
    ws: torch.Tensor | None = None         # the latent the frame shows (a clone): exports use it
    # What this frame ran with (the preview picks its own resolution and samples).
    nrr: int | None = None
    samples: tuple[int, int] | None = None  # (depth, importance) samples per ray
    backbone_reused: bool = False
    precision: str | None = None
    layers: tuple = ()                     # (name, shape) of every layer, in the layer viewer

    @functools.cached_property
    def host_image(self):
        """`image` as numpy uint8 [H, W, 3], copied from the device on first use and kept."""
        return None if self.image is None else self.image.cpu().numpy()


def seed_blend(x, y):
    """The (seed, weight) pairs of the 4 integer grid points around (x, y), bilinear weights."""
    pairs = []
    for ox in (0, 1):
        for oy in (0, 1):
            sx, sy = math.floor(x) + ox, math.floor(y) + oy
            weight = (1 - abs(x - sx)) * (1 - abs(y - sy))
            if weight > 0:
                pairs.append(((sx + sy * SEED_GRID_WIDTH) % (1 << 32), weight))
    return pairs


def normals_to_image(depth, origins, directions, cam2world):
    """Camera-space normals of the depth surface as an RGB normal map (x red, y green, z blue)."""
    n, _, h, w = depth.shape
    points = (origins + directions * depth.reshape(n, -1, 1)).reshape(h, w, 3)
    dx = torch.zeros_like(points)
    dy = torch.zeros_like(points)
    dx[:, 1:-1] = points[:, 2:] - points[:, :-2]
    dy[1:-1] = points[2:] - points[:-2]
    normals = torch.nn.functional.normalize(torch.cross(dy, dx, dim=-1), dim=-1)
    facing = (normals * directions.reshape(h, w, 3)).sum(-1, keepdim=True)
    normals = torch.where(facing > 0, -normals, normals)
    cam = normals @ cam2world[0, :3, :3]                     # world -> OpenCV camera axes
    cam = cam * torch.tensor([1.0, -1.0, -1.0], device=cam.device)   # OpenGL-style normal map
    return ((cam * 0.5 + 0.5) * 255).clamp(0, 255).round().to(torch.uint8)


class FrameRenderer:
    """Renders frames for the viewer. Not thread-safe: one render worker owns it."""

    def __init__(self, device='cpu', preview_fps=20.0):
        self.device = torch.device(device)
        self.preview_fps = preview_fps
        self._preview = None            # AdaptivePreview for the loaded network
        self._pkl = None
        self._G = None
        self._latent_key = None
        self._ws = None
        self._planes_key = None
        self._planes = None             # tri-planes of the latent on screen, for camera moves

    def network(self, pkl, on_progress=lambda fraction: None):
        """The G_ema of a pickle, opened once per process (the compare panels, mesh export and
        inversion share it and its engine session, G.session). If the new one fails to load,
        the previous network stays loaded and usable."""
        if pkl != self._pkl:
            G = open_generator(pkl, self.device, on_progress)
            self._G, self._pkl = G, pkl
            self._latent_key = self._planes_key = self._planes = None
            self._preview = AdaptivePreview(self.preview_fps, ladder=ladder_for(G))
        return self._G

    def camera(self, G, yaw, pitch, args):
        return views.camera(G, yaw, pitch, args.fov_degrees, pivot=args.lookat)

    def latent_ws(self, G, args):
        """ws of the blended seeds (every seed mapped with the conditioning camera), style mix;
        or the saved ws of `args.ws_file` as they are."""
        if args.latent_key() == self._latent_key:
            return self._ws
        if args.ws_file:
            ws = torch.from_numpy(np.load(args.ws_file, allow_pickle=False)).float()
            expected = (G.backbone.mapping.num_ws, G.w_dim)
            if ws.ndim != 3 or tuple(ws.shape[1:]) != expected:
                raise ValueError(f'{args.ws_file}: ws of shape {tuple(ws.shape)}, this network '
                                 f'needs [1, {expected[0]}, {expected[1]}]')
            self._ws = ws[:1].to(self.device)
            self._latent_key, self._planes_key = args.latent_key(), None
            return self._ws
        cond = self.camera(G, args.cond_yaw, args.cond_pitch, args)
        w_avg = G.backbone.mapping.w_avg

        def mapped(seed):
            return G.mapping(views.latent(seed, G.z_dim, self.device), cond, truncation_psi=args.psi,
                             truncation_cutoff=args.cutoff) - w_avg

        ws = sum(weight * mapped(seed) for seed, weight in seed_blend(args.seed_x, args.seed_y))
        if args.stylemix_idx:
            idx = list(args.stylemix_idx)
            ws[:, idx] = mapped(args.stylemix_seed)[:, idx]
        self._ws = ws + w_avg
        self._latent_key = args.latent_key()
        self._planes_key = None
        return self._ws

    def render(self, args, should_abort=lambda: False, on_progress=lambda fraction: None):
        """One frame for `args`; errors come back in the result, never as exceptions."""
        quality = 'preview' if args.preview else 'full'
        if not args.pkl:
            return RenderResult(args, quality,
                                message='No network loaded: open a pickle in "Network & latent"')
        t0 = time.perf_counter()
        network = None
        try:
            G = self.network(args.pkl, on_progress)
            network = NetworkInfo.of(G)
            t1 = time.perf_counter()
            with torch.no_grad():
                ws = self.latent_ws(G, args)
                t2 = time.perf_counter()
                if should_abort():
                    raise RenderAborted()
                if not args.preview:      # refused in one line, not grown until killed
                    nrr = args.nrr or G.neural_rendering_resolution
                    require_frame_memory(G, self.device, f'neural res. {nrr} x {nrr}',
                                         'choose a smaller one in Render', nrr,
                                         sample_mult=args.depth_mult)
                frame = self._synthesize(G, ws, args, quality, should_abort)
            self._sync()
            t3 = time.perf_counter()
            if args.preview:
                self._preview.update(t3 - t2)
            return replace(frame, network=network, ws=ws.clone(),
                           timings={**frame.timings, 'load': (t1 - t0) * 1e3,
                                    'mapping': (t2 - t1) * 1e3, 'synthesis': (t3 - t2) * 1e3,
                                    'total': (t3 - t1) * 1e3})
        except RenderAborted:
            return RenderResult(args, quality, network=network, aborted=True)
        except PickleLoadError as e:
            return RenderResult(args, quality, error=str(e), load_failed=True)
        except InsufficientMemory as e:
            return RenderResult(args, quality, network=network, error=str(e))
        except Exception as e:  # a bad network or option must not take the viewer down
            return RenderResult(args, quality, network=network,
                                error=f'{type(e).__name__}: {e}'.splitlines()[0])

    def _synthesize(self, G, ws, args, quality, should_abort):
        """The frame's image and the facts of how it was made (network, ws and the load and
        mapping times are added by `render`)."""
        if args.render_type == 'image_mask' and not is_panohead(G.rendering_kwargs):
            return RenderResult(args, quality, message='Mask (opacity): only PanoHead networks '
                                                       'have one; choose another render type')
        planes_key = (args.latent_key(), args.noise_mode, args.noise_seed, args.force_fp32)
        reuse = args.cache_backbone and planes_key == self._planes_key \
            and self._planes is not None and not args.layer_view
        torch.manual_seed(args.noise_seed)     # once: the backbone may draw before the frame
        c = self.camera(G, args.yaw, args.pitch, args)
        settings = self._settings(G, args)
        if args.layer_view:
            out, layers = self._reference_frame(G, ws, c, settings, args)
            nrr = settings.nrr or G.neural_rendering_resolution
            samples = (settings.depth_resolution, settings.depth_resolution_importance)
            precision, timings = 'reference path (official arithmetic)', {}
        else:
            planes = self._planes if reuse else G.session.planes(ws, args.noise_mode,
                                                                 args.force_fp32)
            if not reuse and should_abort():   # a stale frame skips rendering after the backbone
                raise RenderAborted()
            frame = G.session.frame(ws, c, settings, planes)
            self._planes_key, self._planes = (planes_key, planes) if args.cache_backbone \
                else (None, None)
            out, layers = frame.as_dict(), None
            nrr, samples, precision = frame.nrr, frame.samples, frame.precision.describe()
            timings = frame.timings
        show_sr = (args.render_type == 'image' or args.layer_view) and not args.preview
        if layers is not None and layers.captured is not None:
            image = layer_to_image(layers.captured, args.layer_channel, args.layer_rgb,
                                   args.layer_normalize, args.layer_gain_db)
        elif args.render_type == 'normals':
            origins, directions = G.ray_sampler(c[:, :16].view(-1, 4, 4),
                                                c[:, 16:25].view(-1, 3, 3), nrr)
            image = normals_to_image(out['image_depth'], origins, directions,
                                     c[:, :16].view(-1, 4, 4))
        elif args.render_type in ('image_depth', 'image_mask'):
            image = views.picture(out, args.render_type)
        else:       # a preview or the raw image type shows the neural rendering
            image = views.picture(out, 'image' if show_sr else 'image_raw')
        return RenderResult(
            args, quality, image=image, nrr=nrr, samples=samples, backbone_reused=reuse,
            layers=tuple(layers.layers) if layers is not None else (), precision=precision,
            timings=timings)

    def _settings(self, G, args):
        """The engine's RenderSettings of `args`: a preview at the resolution and samples
        chosen to hold the preview frame rate, else the full frame."""
        if args.preview:
            return self._preview.settings.render_settings(noise_mode=args.noise_mode,
                                                          force_fp32=args.force_fp32,
                                                          background=args.background)
        rk = G.rendering_kwargs
        return RenderSettings(
            nrr=args.nrr or None, noise_mode=args.noise_mode, force_fp32=args.force_fp32,
            depth_resolution=max(2, int(round(rk['depth_resolution'] * args.depth_mult))),
            depth_resolution_importance=int(round(
                rk.get('depth_resolution_importance', 0) * args.importance_mult)),
            superresolution=args.render_type == 'image', background=args.background,
            # the official raw image of some networks (ShapeNet at nrr 64) includes the first
            # super-resolution block's RGB: then the super-resolution runs to show it
            official_raw=args.render_type == 'image_raw')

    @staticmethod
    def _reference_frame(G, ws, c, settings, args):
        """The layer viewer's frame: the reference path module by module, with forward hooks
        recording every layer (the engine's folded path has no modules to hook)."""
        with capture_layers(G, args.layer) as layers:
            out = G.synthesis(ws, c, neural_rendering_resolution=settings.nrr,
                              noise_mode=settings.noise_mode,
                              rendering_overrides=settings.rendering_options({}),
                              superresolution=not args.preview, force_fp32=settings.force_fp32,
                              faithful=True, **({'background': settings.background}
                                                if is_panohead(G.rendering_kwargs) else {}))
        return out, layers

    def _sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
