"""An engine session's frames along the official video path, as pictures: the orbit of one
latent (a seed, or an inverted photo's pivot) and the interpolation between keyframes."""
from dataclasses import dataclass

import numpy as np
import torch

from .. import cameras, views
from ..engine import RenderSettings
from .keyframes import interpolator
from .orbit import FOCALS, HEAD_PIVOT, fov_for_focal, orbit_angles


@dataclass(frozen=True)
class VideoSettings:
    """What a video is rendered with; the defaults are gen_videos' (and the official's)."""
    cfg: str = 'FFHQ'               # the focal of the dataset; 'Head': PanoHead's full turn
    pose_cond: float = 90.0         # PanoHead's conditioning yaw in degrees (90 frontal)
    image_mode: str = 'image'       # 'image', 'image_depth' or 'image_raw'
    sample_mult: float = 2          # multiplies both depth sample counts
    nrr: int | None = None          # neural rendering resolution (None: the network's)
    trunc: float = 1.0
    trunc_cutoff: int = 14
    w_frames: int = 120             # frames per keyframe of an interpolation


def to_frame(frame, image_mode, count):
    """The first `count` pictures of an engine Frame -> [count, H, W, 3] uint8 (views.picture:
    depth as grey with near bright, the official -depth normalised per picture)."""
    out = frame.as_dict()
    return torch.stack([views.picture(out, image_mode, i) for i in range(count)])


def layout(pictures, grid):
    """[grid_h*grid_w, H, W, 3] in row-major cell order -> one numpy frame of the grid."""
    grid_w, grid_h = grid
    _, h, w, _ = pictures.shape
    return pictures.reshape(grid_h, grid_w, h, w, 3).permute(0, 2, 1, 3, 4).reshape(
        grid_h * h, grid_w * w, 3).cpu().numpy()


class Renderer:
    """VideoSettings applied to one engine session."""

    def __init__(self, session, settings=VideoSettings()):
        self.session = session
        self.G = session.G
        self.video = settings
        self.fov = fov_for_focal(FOCALS[settings.cfg])
        self.pivot = HEAD_PIVOT if settings.cfg == 'Head' else None      # else the network's
        self.cond_yaw = cameras.pose_cond_yaw(settings.pose_cond)
        rk = self.G.rendering_kwargs
        self.settings = RenderSettings(
            nrr=settings.nrr, noise_mode='const',
            depth_resolution=int(rk['depth_resolution'] * settings.sample_mult),
            depth_resolution_importance=int(rk['depth_resolution_importance'] *
                                            settings.sample_mult))

    def camera(self, frame, num_frames, count):
        yaw, pitch = orbit_angles(frame, num_frames, self.video.cfg)
        return views.camera(self.G, yaw, pitch, self.fov, self.pivot).repeat(count, 1)

    def frame(self, ws, c, planes=None):
        return self.session.frame(ws, c, self.settings, planes)

    def ws(self, seed):
        return views.seed_ws(self.G, int(seed), self.video.trunc, self.video.trunc_cutoff,
                             self.fov, self.cond_yaw)

    def interpolation(self, layout_seeds, shapes=None):
        """Frames of the keyframe interpolation: every frame new ws, so new tri-planes.
        `shapes(frame, ws, c)` is called with the last cell's ws and camera."""
        grid_h, grid_w, num_keyframes = layout_seeds.shape
        cells = grid_h * grid_w
        cache = {}
        keyframes = np.stack([np.stack([cache.setdefault(s, self.ws(s))[0].cpu().numpy()
                                        for s in row]) for row in layout_seeds.reshape(cells, -1)],
                             axis=1)                          # [K, cells, num_ws, w_dim]
        ws_at = interpolator(keyframes)
        device = self.G.backbone.mapping.w_avg.device
        n = num_keyframes * self.video.w_frames
        for i in range(n):
            ws = torch.from_numpy(ws_at(i / self.video.w_frames)).to(device)
            c = self.camera(i, n, cells)
            frame = self.frame(ws, c)
            if shapes:
                shapes(i, ws[-1:], c[-1:])
            yield layout(to_frame(frame, self.video.image_mode, cells), (grid_w, grid_h))

    def orbit(self, seed, num_frames, grid):
        """Frames of one seed's orbit. Every cell of a grid shows the same picture (as
        official), so it is rendered once and tiled."""
        return self.orbit_ws(self.ws(seed), num_frames, grid)

    def orbit_ws(self, ws, num_frames, grid=(1, 1)):
        """Frames of the orbit of one latent (also an inverted photo's pivot): one w, so the
        tri-planes are computed once."""
        planes = self.session.planes(ws, self.settings.noise_mode)
        for i in range(num_frames):
            frame = self.frame(ws, self.camera(i, num_frames, 1), planes)
            picture = to_frame(frame, self.video.image_mode, 1)[0]
            yield picture.repeat(grid[1], grid[0], 1).cpu().numpy()
