"""What an engine session takes and gives: plain frozen values (names, numbers, flags) and
tensors, so that the same calls can later travel as JSON and binary frames to a render server."""
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..fast import precision as fp

NOISE_MODES = ('const', 'random', 'none')


@dataclass(frozen=True)
class Precision:
    """Arithmetic of the backbone and of the super-resolution: a choice (each one of
    fast.precision.NAMES, 'auto' included) or, in a Frame, what ran (None: the
    super-resolution did not run)."""
    backbone: str = 'auto'
    superresolution: str | None = 'auto'

    def __post_init__(self):
        fp.check_name(self.backbone)
        if self.superresolution is not None:
            fp.check_name(self.superresolution)

    @classmethod
    def of(cls, choice):
        """'bf16' -> the same for both parts; a Precision as it is."""
        return choice if isinstance(choice, Precision) else cls(choice, choice)

    def describe(self):
        """'backbone fp32, super-resolution bf16' (the Performance panel, bench, command logs)."""
        if self.superresolution is None:
            return f'backbone {self.backbone}, no super-resolution'
        return f'backbone {self.backbone}, super-resolution {self.superresolution}'

    def as_dict(self):
        return {'backbone': self.backbone, 'superresolution': self.superresolution}


@dataclass(frozen=True)
class RenderSettings:
    """How to render a frame, apart from the latent and the camera.

    nrr: neural rendering resolution (None: the network's). depth_resolution,
    depth_resolution_importance: samples per ray (None: the network's). superresolution: run it
    and return `image`. official_raw: without super-resolution, still run it where the official
    image_raw includes the first super-resolution block's RGB (ShapeNet at nrr 64), so that
    image_raw is the official one; False gives the plain neural rendering (previews).
    deterministic: no sample jitter. force_fp32: float32 whatever the session's precision.
    empty_space_skipping: skip empty cells of an occupancy grid (previews; approximate).
    background: PanoHead networks: blend in the background network (False: the head alone);
    EG3D networks have none.
    overrides: any other rendering option of the network, as (name, value) pairs."""
    nrr: int | None = None
    depth_resolution: int | None = None
    depth_resolution_importance: int | None = None
    noise_mode: str = 'const'
    deterministic: bool = False
    superresolution: bool = True
    official_raw: bool = False
    force_fp32: bool = False
    empty_space_skipping: bool = False
    background: bool = True
    overrides: tuple = ()

    def __post_init__(self):
        if self.noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, "
                             f'got {self.noise_mode!r}')
        for name, low in (('nrr', 1), ('depth_resolution', 2),
                          ('depth_resolution_importance', 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < low):
                raise ValueError(f'{name} must be an integer of at least {low} or None, '
                                 f'got {value!r}')
        if isinstance(self.overrides, Mapping):
            object.__setattr__(self, 'overrides', tuple(sorted(self.overrides.items())))

    def rendering_options(self, network_options):
        """The network's rendering options with these settings applied."""
        options = {**network_options, **dict(self.overrides)}
        if self.depth_resolution is not None:
            options['depth_resolution'] = self.depth_resolution
        if self.depth_resolution_importance is not None:
            options['depth_resolution_importance'] = self.depth_resolution_importance
        if self.empty_space_skipping:
            options['empty_space_skipping'] = True
        return options


@dataclass(frozen=True)
class EngineOptions:
    """Tuning of a session's fast path (the defaults are what the benchmark chose)."""
    winograd: bool = True                # Winograd convolutions on CPU (float32 only)
    cuda_graphs: bool = True             # replay the backbone and camera-only frames on CUDA
    chunk_points: int | None = None      # points per ray-marching step (None: 64K CPU, 2M CUDA)
    backbone_min_tiles: int = 256        # Winograd in the backbone from this many 4x4 tiles
    occupancy_resolution: int = 64       # empty-space skipping grid
    occupancy_threshold: float = 1e-3


@dataclass(frozen=True)
class Frame:
    """One rendered frame and how it was made. Images are NCHW in about [-1, 1] on the session's
    device; `image` is None when the super-resolution did not run."""
    image_raw: torch.Tensor               # [N, 3, nrr, nrr]
    image_depth: torch.Tensor             # [N, 1, nrr, nrr]
    image: torch.Tensor | None            # [N, 3, R, R]
    precision: Precision                  # what ran
    nrr: int
    samples: tuple[int, int]              # (depth, importance) samples per ray
    planes_computed: bool                 # False when the caller's planes were used
    image_mask: torch.Tensor | None = None    # [N, 1, nrr, nrr] PanoHead's opacity; else None
    stopwatch: object = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def timings(self):
        """Milliseconds per stage as it ran: 'planes' (when computed by this call), 'march'
        (rays, tri-plane table, ray marching) and 'superresolution', or 'render' for the
        per-camera part replayed as one CUDA graph. On CUDA, reading them waits for the frame
        to finish on the device."""
        return self.stopwatch.laps() if self.stopwatch is not None else {}

    def as_dict(self):
        """The official synthesis outputs: 'image' (when it ran), 'image_raw', 'image_depth'
        and, for a PanoHead network, 'image_mask'."""
        out = {'image_raw': self.image_raw, 'image_depth': self.image_depth}
        if self.image is not None:
            out['image'] = self.image
        if self.image_mask is not None:
            out['image_mask'] = self.image_mask
        return out


@dataclass(frozen=True)
class Density:
    """Raw density and colour features at world points."""
    sigma: torch.Tensor                   # [N, P, 1]
    features: torch.Tensor                # [N, P, C] (the decoder's 'rgb': C = 32)
