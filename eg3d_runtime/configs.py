"""The official train.py configurations (docs/eg3d-reference.md 4.1, 4.2): rendering options
and constructor arguments per `--cfg`, so networks of every family can be built without a
pickle; and each family's camera, which every tool reads from here. It imports no network code
(build_* import it when called): the commands name their options from these facts before torch
is loaded."""
import copy
from dataclasses import dataclass

# The official scripts' field of view (degrees; cameras.fov_to_intrinsics' convention).
FFHQ_FOV_DEGREES = 18.837


@dataclass(frozen=True)
class FamilyCamera:
    """A family's camera as its official scripts set it up (docs/eg3d-reference.md 5)."""
    radius: float              # orbit radius around the world origin (avg_camera_radius)
    pivot: tuple               # the look-at point (avg_camera_pivot; PanoHead's is the origin)
    fov_degrees: float         # the field of view a viewer starts with
    video_focal: float | None  # the focal length of gen_videos.py's --cfg for the family


FAMILY_CAMERAS = {
    'ffhq': FamilyCamera(2.7, (0, 0, 0.2), FFHQ_FOV_DEGREES, 4.2647),
    'afhq': FamilyCamera(2.7, (0, 0, -0.06), FFHQ_FOV_DEGREES, 4.2647),
    'shapenet': FamilyCamera(1.7, (0, 0, 0), 45.0, 1.7074),
    # PanoHead's scripts look at the origin whatever its avg_camera_pivot says.
    'panohead': FamilyCamera(2.7, (0, 0, 0), FFHQ_FOV_DEGREES, 4.2647),
    'demo': FamilyCamera(2.7, (0, 0, 0), FFHQ_FOV_DEGREES, None),
}
# The camera of a network whose rendering options name none: the official scripts' (FFHQ's).
DEFAULT_CAMERA = FAMILY_CAMERAS['ffhq']
# gen_videos.py's --cfg values, the family each names, and its focal length.
VIDEO_CFGS = {'FFHQ': 'ffhq', 'AFHQ': 'afhq', 'Shapenet': 'shapenet', 'Head': 'panohead'}
VIDEO_FOCALS = {cfg: FAMILY_CAMERAS[family].video_focal for cfg, family in VIDEO_CFGS.items()}


def _camera_kwargs(family):
    """avg_camera_radius and avg_camera_pivot as train.py stores them (the pivot a list)."""
    camera = FAMILY_CAMERAS[family]
    return dict(avg_camera_radius=camera.radius, avg_camera_pivot=list(camera.pivot))


SR_MODULES = {512: 'training.superresolution.SuperresolutionHybrid8XDC',
              256: 'training.superresolution.SuperresolutionHybrid4X',
              128: 'training.superresolution.SuperresolutionHybrid2X',
              64: 'eg3d_runtime.networks.superresolution.SuperresolutionDemo2X'}

CFG_RENDERING = {
    'ffhq': dict(depth_resolution=48, depth_resolution_importance=48, ray_start=2.25, ray_end=3.3,
                 box_warp=1, **_camera_kwargs('ffhq')),
    'afhq': dict(depth_resolution=48, depth_resolution_importance=48, ray_start=2.25, ray_end=3.3,
                 box_warp=1, **_camera_kwargs('afhq')),
    'shapenet': dict(depth_resolution=64, depth_resolution_importance=64, ray_start=0.1,
                     ray_end=2.6, box_warp=1.6, white_back=True, **_camera_kwargs('shapenet')),
    # Small CPU-trainable network for the procedural data (eg3d_runtime.procedural): the FFHQ
    # camera set-up looking at the origin, fewer depth samples, white background.
    'demo': dict(depth_resolution=16, depth_resolution_importance=16, ray_start=2.25, ray_end=3.3,
                 box_warp=1, white_back=True, **_camera_kwargs('demo')),
}
CFG_RESOLUTION = {'ffhq': 512, 'afhq': 512, 'shapenet': 128, 'demo': 64}
# Options whose official default is sized for 8 GPUs; `--cfg demo` uses these unless given.
DEMO_DEFAULTS = dict(cbase=1024, cmax=32, neural_rendering_resolution_initial=32, metrics='none',
                     blur_fade_kimg=20, grid='8x8')
DEMO_PLANE_RESOLUTION = 64


def rendering_kwargs(cfg, resolution=None, gen_pose_cond=False, gpc_reg_prob=0.5, c_scale=1.0,
                     sr_noise_mode='none', density_reg=0.25, density_reg_p_dist=0.004,
                     reg_type='l1', decoder_lr_mul=1.0, sr_module=None):
    """G.rendering_kwargs exactly as train.py stores it, key order included."""
    if cfg not in CFG_RENDERING:
        raise ValueError(f"unknown --cfg '{cfg}' (expected one of {', '.join(CFG_RENDERING)})")
    resolution = resolution or CFG_RESOLUTION[cfg]
    if sr_module is None and resolution not in SR_MODULES:
        raise ValueError(f'no super-resolution module for resolution {resolution}')
    kwargs = {
        'image_resolution': resolution,
        'disparity_space_sampling': False,
        'clamp_mode': 'softplus',
        'superresolution_module': sr_module or SR_MODULES[resolution],
        'c_gen_conditioning_zero': not gen_pose_cond,
        'gpc_reg_prob': gpc_reg_prob if gen_pose_cond else None,
        'c_scale': float(c_scale),
        'superresolution_noise_mode': sr_noise_mode,
        'density_reg': density_reg,
        'density_reg_p_dist': density_reg_p_dist,
        'reg_type': reg_type,
        'decoder_lr_mul': float(decoder_lr_mul),
        'sr_antialias': True,
    }
    kwargs.update(copy.deepcopy(CFG_RENDERING[cfg]))
    return kwargs


def generator_kwargs(rendering, resolution, channel_base=32768, channel_max=512, map_depth=2,
                     g_num_fp16_res=0, sr_num_fp16_res=4, c_dim=25):
    """TriPlaneGenerator constructor arguments as train.py + the training loop pass them."""
    return dict(z_dim=512, w_dim=512, mapping_kwargs={'num_layers': map_depth},
                channel_base=channel_base, channel_max=channel_max,
                fused_modconv_default='inference_only', rendering_kwargs=rendering,
                num_fp16_res=g_num_fp16_res, conv_clamp=256 if g_num_fp16_res > 0 else None,
                sr_num_fp16_res=sr_num_fp16_res,
                sr_kwargs={'channel_base': channel_base, 'channel_max': channel_max,
                           'fused_modconv_default': 'inference_only'},
                c_dim=c_dim, img_resolution=resolution, img_channels=3)


def discriminator_kwargs(resolution, channel_base=32768, channel_max=512, freezed=0,
                         mbstd_group=4, disc_c_noise=0.0, d_num_fp16_res=4, c_dim=25):
    """DualDiscriminator constructor arguments as train.py passes them."""
    return dict(c_dim=c_dim, img_resolution=resolution, img_channels=3,
                channel_base=channel_base, channel_max=channel_max,
                block_kwargs={'freeze_layers': freezed}, mapping_kwargs={},
                epilogue_kwargs={'mbstd_group_size': mbstd_group},
                num_fp16_res=d_num_fp16_res, conv_clamp=256 if d_num_fp16_res > 0 else None,
                disc_c_noise=disc_c_noise)


def build_generator(cfg, **overrides):
    """A randomly initialised full-size TriPlaneGenerator of a family ('ffhq', 'afhq', 'shapenet')."""
    from .networks.triplane import TriPlaneGenerator
    rendering = rendering_kwargs(cfg, gen_pose_cond=cfg != 'shapenet')
    G = TriPlaneGenerator(**generator_kwargs(rendering, rendering['image_resolution'], **overrides))
    return G.eval().requires_grad_(False)


def build_discriminator(cfg, **overrides):
    from .networks.discriminator import DualDiscriminator
    resolution = rendering_kwargs(cfg)['image_resolution']
    return DualDiscriminator(**discriminator_kwargs(resolution, **overrides))
