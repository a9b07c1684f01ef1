"""Interactive preview while the camera moves: adaptive neural rendering resolution and depth
samples chosen from measured frame times to hold a target frame rate.

    ctrl = AdaptivePreview(target_fps=20)
    planes = session.planes(ws)
    while dragging:
        t0 = time.perf_counter()
        frame = render_preview(session, ws, c, ctrl.settings, planes)   # raw, no super-resolution
        texture = views.image_to_uint8(frame.image_raw)
        ctrl.update(time.perf_counter() - t0)

A preview frame is NOT the full-quality frame: it is the raw neural rendering (no
super-resolution) at a lower resolution and with fewer depth samples, optionally with
empty-space skipping. When the camera stops, render the full frame.

Policy (instant-ngp style): the cost of a setting is taken as nrr^2 x (coarse + fine samples).
The measured frame time is smoothed; only when it is more than `tolerance` (20%) away from the
target, the wanted cost is scaled by target/measured (i.e. the resolution by
sqrt(target/measured) at equal samples) and the ladder rung with the largest cost not above it
is taken (never going up by more than `max_step_up` rungs at once).
"""
import time
from dataclasses import dataclass

from . import views
from .engine import RenderSettings


@dataclass(frozen=True)
class PreviewSettings:
    nrr: int                          # neural rendering resolution
    depth_resolution: int             # coarse samples per ray
    depth_resolution_importance: int  # fine samples per ray

    @property
    def cost(self):
        return self.nrr * self.nrr * (self.depth_resolution + self.depth_resolution_importance)

    def overrides(self):
        return {'depth_resolution': self.depth_resolution,
                'depth_resolution_importance': self.depth_resolution_importance}

    def render_settings(self, **fields):
        """The engine's RenderSettings of a preview frame: the raw neural rendering at these
        settings, no super-resolution (`fields`: noise_mode, deterministic, ...)."""
        return RenderSettings(nrr=self.nrr, depth_resolution=self.depth_resolution,
                              depth_resolution_importance=self.depth_resolution_importance,
                              superresolution=False, **fields)


# Cheapest first; each rung costs roughly 1.3-2x the previous one.
DEFAULT_LADDER = tuple(PreviewSettings(*s) for s in (
    (32, 8, 8), (32, 12, 12), (48, 12, 12), (48, 16, 16), (64, 12, 12), (64, 16, 16),
    (64, 24, 24), (96, 16, 16), (96, 24, 24), (128, 16, 16), (128, 24, 24), (128, 32, 32),
    (128, 48, 48)))


def ladder_for(G, ladder=DEFAULT_LADDER):
    """The ladder limited to what the network renders at full quality (nrr, sample counts)."""
    rk = G.rendering_kwargs
    max_nrr = max(int(G.neural_rendering_resolution), 32)
    max_d = int(rk.get('depth_resolution', 48))
    max_i = int(rk.get('depth_resolution_importance', 48))
    rungs = [s for s in ladder if s.nrr <= max_nrr and s.depth_resolution <= max_d
             and s.depth_resolution_importance <= max(max_i, 0)]
    return tuple(rungs) or (ladder[0],)


class AdaptivePreview:
    """Picks preview settings from measured frame times to hold `target_fps`."""

    def __init__(self, target_fps=20.0, ladder=DEFAULT_LADDER, tolerance=0.2, start=None,
                 smoothing=0.5, max_step_up=2):
        if target_fps <= 0:
            raise ValueError('target_fps must be positive')
        self.ladder = tuple(sorted(ladder, key=lambda s: s.cost))
        self.target_fps = float(target_fps)
        self.tolerance = float(tolerance)
        self.smoothing = float(smoothing)
        self.max_step_up = int(max_step_up)
        self.index = self._start_index(start)
        self.smoothed = None          # smoothed frame time (s) at the current rung
        self.history = []             # (settings, frame seconds) as measured

    def _start_index(self, start):
        if start is None:
            return len(self.ladder) // 2
        if isinstance(start, PreviewSettings):
            costs = [abs(s.cost - start.cost) for s in self.ladder]
            return costs.index(min(costs))
        return max(0, min(int(start), len(self.ladder) - 1))

    @property
    def settings(self):
        return self.ladder[self.index]

    @property
    def target_seconds(self):
        return 1.0 / self.target_fps

    def overrides(self):
        return self.settings.overrides()

    def reset(self):
        self.smoothed = None

    def update(self, frame_seconds):
        """Record the time of a frame rendered with `self.settings`; returns the settings for
        the next frame (possibly another rung)."""
        frame_seconds = max(float(frame_seconds), 1e-6)
        self.history.append((self.settings, frame_seconds))
        if self.smoothed is None:
            self.smoothed = frame_seconds
        else:
            self.smoothed += self.smoothing * (frame_seconds - self.smoothed)
        target = self.target_seconds
        ratio = target / self.smoothed
        if abs(self.smoothed - target) <= self.tolerance * target:
            return self.settings
        wanted = self.settings.cost * ratio       # resolution scales by sqrt(ratio)
        candidates = [i for i, s in enumerate(self.ladder) if s.cost <= wanted]
        new = candidates[-1] if candidates else 0
        if new > self.index:
            new = min(new, self.index + self.max_step_up)
        if new != self.index:
            # keep a prediction for the new rung instead of forgetting everything
            self.smoothed = self.smoothed * self.ladder[new].cost / self.settings.cost
            self.index = new
        return self.settings


def render_preview(session, ws, c, settings, planes=None, noise_mode='const',
                   empty_space_skipping=False, deterministic=False):
    """One preview frame (an engine Frame): the raw neural rendering at `settings`, no
    super-resolution, from `planes` (ws's tri-planes) when given; its image_raw differs from a
    full-quality frame by design."""
    return session.frame(ws, c, settings.render_settings(
        noise_mode=noise_mode, deterministic=deterministic,
        empty_space_skipping=empty_space_skipping), planes)


def drag(session, ws, cameras_iter, controller, noise_mode='const', empty_space_skipping=False,
         sync=None, on_frame=None):
    """Render preview frames for a sequence of cameras (a simulated drag), adapting settings;
    the tri-planes are computed once. Returns a list of (settings, seconds) per frame; each
    frame includes the texture-ready uint8 conversion. `on_frame(texture, frame)`."""
    planes = session.planes(ws, noise_mode)
    timings = []
    for c in cameras_iter:
        settings = controller.settings
        t0 = time.perf_counter()
        frame = render_preview(session, ws, c, settings, planes, noise_mode=noise_mode,
                               empty_space_skipping=empty_space_skipping)
        tex = views.image_to_uint8(frame.image_raw)
        if sync is not None:
            sync()
        dt = time.perf_counter() - t0
        timings.append((settings, dt))
        if on_frame is not None:
            on_frame(tex, frame)
        controller.update(dt)
    return timings
