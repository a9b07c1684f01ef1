"""Everything one frame depends on, as a frozen value: equal args mean an identical frame."""
from dataclasses import dataclass, replace

from ..configs import FFHQ_FOV_DEGREES

RENDER_TYPES = {'image': 'RGB image', 'image_raw': 'Neural rendering (raw)',
                'image_depth': 'Depth', 'normals': 'Normals (from depth)',
                'image_mask': 'Mask (opacity)'}
# Render types only some networks have: PanoHead's opacity mask.
PANOHEAD_RENDER_TYPES = ('image_mask',)


@dataclass(frozen=True)
class RenderArgs:
    pkl: str | None = None
    # Latent: a point on the seed grid (seed = x + 100 y); fractional points blend 4 seeds.
    seed_x: float = 0.0
    seed_y: float = 0.0
    ws_file: str | None = None         # a saved latent (an inverted photo's w.npy) instead
    stylemix_seed: int = 0
    stylemix_idx: tuple = ()
    psi: float = 1.0
    cutoff: int = 14
    noise_mode: str = 'const'          # 'const' | 'random' | 'none'
    noise_seed: int = 0
    # Camera: orbit offsets in radians around the look-at point (None = the network's pivot).
    yaw: float = 0.0
    pitch: float = 0.0
    lookat: tuple | None = None
    fov_degrees: float = FFHQ_FOV_DEGREES
    cond_yaw: float = 0.0
    cond_pitch: float = 0.0
    # Rendering.
    nrr: int | None = None             # neural rendering resolution; None = the pickle's
    depth_mult: float = 1.0
    importance_mult: float = 1.0
    render_type: str = 'image'
    cache_backbone: bool = True
    force_fp32: bool = False
    background: bool = True            # PanoHead's background network (no effect on EG3D)
    preview: bool = False              # fast raw preview while the user interacts
    # Layer viewer: while open, every image-like layer is listed and `layer` is shown.
    layer_view: bool = False
    layer: str | None = None
    layer_channel: int = 0
    layer_rgb: bool = True
    layer_normalize: bool = False
    layer_gain_db: float = 0.0

    def with_(self, **changes):
        return replace(self, **changes)

    def latent_key(self):
        """The fields the latent ws depend on (mapping is skipped when they do not change)."""
        return (self.pkl, self.ws_file, self.seed_x, self.seed_y, self.stylemix_seed, self.stylemix_idx,
                self.psi, self.cutoff, self.lookat, self.fov_degrees, self.cond_yaw,
                self.cond_pitch)
