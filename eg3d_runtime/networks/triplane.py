"""TriPlaneGenerator: mapping -> StyleGAN2 tri-planes -> volume rendering -> super-resolution."""
import torch
from torch import nn

from ..rendering.rays import RaySampler
from ..rendering.renderer import ImportanceRenderer
from .decoder import OSGDecoder
from .init_args import records_init_args
from .stylegan2 import Generator
from .superresolution import superresolution_class

PLANE_CHANNELS = 32


@records_init_args
class TriPlaneGenerator(nn.Module):
    """The EG3D generator, constructed from the same arguments as the official class
    (docs/eg3d-reference.md 2.1): the reference network, which training runs and the official
    numbers check. Fast inference is the engine's (eg3d_runtime.engine); networks opened with
    `load_network_pkl` serve this API through it (engine/official_api.py).

    Saved networks embed this source (module_source.py); their renderer, ray sampler and decoder
    may then be the official classes, so those are called with the official signatures only."""

    renderer_class = ImportanceRenderer

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, sr_num_fp16_res=0,
                 mapping_kwargs={}, rendering_kwargs={}, sr_kwargs={}, plane_resolution=256,
                 **synthesis_kwargs):
        """`plane_resolution` (not an official argument; official networks use 256) lets the
        CPU-sized `--cfg demo` network use smaller tri-planes."""
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.renderer = self.renderer_class()
        self.ray_sampler = RaySampler()
        self.backbone = Generator(z_dim, c_dim, w_dim, img_resolution=plane_resolution,
                                  img_channels=self.plane_channels(rendering_kwargs),
                                  mapping_kwargs=mapping_kwargs, **synthesis_kwargs)
        self.superresolution = superresolution_class(rendering_kwargs['superresolution_module'])(
            channels=PLANE_CHANNELS, img_resolution=img_resolution, sr_num_fp16_res=sr_num_fp16_res,
            sr_antialias=rendering_kwargs['sr_antialias'], **sr_kwargs)
        self.decoder = OSGDecoder(PLANE_CHANNELS, {
            'decoder_lr_mul': rendering_kwargs.get('decoder_lr_mul', 1),
            'decoder_output_dim': PLANE_CHANNELS,
            'decoder_activation': rendering_kwargs.get('decoder_activation', 'sigmoid')})
        self.neural_rendering_resolution = 64
        self.rendering_kwargs = rendering_kwargs
        self._last_planes = None

    @staticmethod
    def plane_channels(rendering_kwargs):
        """Channels of the backbone's image: three planes of 32."""
        return 3 * PLANE_CHANNELS

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        """z [N, z_dim], conditioning camera c [N, 25] -> ws [N, num_ws, w_dim]."""
        if self.rendering_kwargs.get('c_gen_conditioning_zero', False):
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * self.rendering_kwargs.get('c_scale', 0),
                                     truncation_psi=truncation_psi,
                                     truncation_cutoff=truncation_cutoff, update_emas=update_emas)

    def planes(self, ws, cache_backbone=False, use_cached_backbone=False, **synthesis_kwargs):
        """ws -> tri-planes [N, 3, C, 256, 256] (C = 32; PanoHead's tri-grid: 32 x depth),
        optionally kept for camera-only re-renders."""
        return self._planes(ws, cache_backbone, use_cached_backbone, **synthesis_kwargs)

    def _planes(self, ws, cache_backbone=False, use_cached_backbone=False, **synthesis_kwargs):
        """`planes` as the rest of this class calls it, whatever a subclass makes of `planes`."""
        if use_cached_backbone and self._last_planes is not None:
            planes = self._last_planes
        else:
            planes = self.backbone.synthesis(ws, **synthesis_kwargs)
        if cache_backbone:
            self._last_planes = planes
        return planes.view(len(planes), 3, -1, planes.shape[-2], planes.shape[-1])

    def synthesis(self, ws, c, neural_rendering_resolution=None, noise_mode='random',
                  cache_backbone=False, use_cached_backbone=False, deterministic=False,
                  update_emas=False, rendering_overrides=None, superresolution=True,
                  **synthesis_kwargs):
        """Render ws from camera c [N, 25] -> dict image [N,3,R,R], image_raw, image_depth,
        following the official code step by step (what tests/test_parity.py checks).

        `rendering_overrides` replaces rendering options for this call only (e.g. fewer
        depth samples for a preview); `superresolution=False` skips the super-resolution and
        returns no 'image'. Unlike the official code this does not store
        `neural_rendering_resolution` on the generator; pass it on every call or set the attribute.
        """
        feature_image, depth_image = self.neural_rendering(
            ws, c, neural_rendering_resolution, noise_mode, cache_backbone, use_cached_backbone,
            deterministic, update_emas, rendering_overrides, **synthesis_kwargs)
        rgb_image = feature_image[:, :3]
        if not superresolution:
            return {'image_raw': rgb_image, 'image_depth': depth_image}
        # The official super-resolution may add its block0 RGB to image_raw in place (see
        # raw_includes_block0_rgb in superresolution.py); return_raw gives that image_raw.
        sr_image, raw_image = self.superresolution(
            rgb_image, feature_image.contiguous(), ws, return_raw=True,
            noise_mode=self.rendering_kwargs['superresolution_noise_mode'], **synthesis_kwargs)
        return {'image': sr_image, 'image_raw': raw_image, 'image_depth': depth_image}

    def neural_rendering(self, ws, c, neural_rendering_resolution=None, noise_mode='random',
                         cache_backbone=False, use_cached_backbone=False, deterministic=False,
                         update_emas=False, rendering_overrides=None, **synthesis_kwargs):
        """The reference path up to the super-resolution: the feature image [N, 32, R, R]
        (its first three channels are image_raw before the super-resolution) and the depth
        image [N, 1, R, R] at neural rendering resolution R."""
        return self.volume_rendering(ws, c, neural_rendering_resolution, noise_mode,
                                     cache_backbone, use_cached_backbone, deterministic,
                                     update_emas, rendering_overrides, **synthesis_kwargs)[:2]

    def volume_rendering(self, ws, c, neural_rendering_resolution=None, noise_mode='random',
                         cache_backbone=False, use_cached_backbone=False, deterministic=False,
                         update_emas=False, rendering_overrides=None, **synthesis_kwargs):
        """neural_rendering's feature and depth images and the opacity image [N, 1, R, R] (the
        summed ray weights)."""
        options = {**self.rendering_kwargs, **(rendering_overrides or {})}
        nrr = neural_rendering_resolution or self.neural_rendering_resolution
        cam2world = c[:, :16].view(-1, 4, 4)
        intrinsics = c[:, 16:25].view(-1, 3, 3)
        origins, directions = self.ray_sampler(cam2world, intrinsics, nrr)
        n = origins.shape[0]
        planes = self._planes(ws, cache_backbone=cache_backbone,
                              use_cached_backbone=use_cached_backbone, noise_mode=noise_mode,
                              update_emas=update_emas, **synthesis_kwargs)
        # The official renderer has no `deterministic` argument: pass it only when it is asked for.
        extra = {'deterministic': True} if deterministic else {}
        features, depth, opacity = self.renderer(planes, self.decoder, origins, directions,
                                                 options, **extra)
        feature_image = features.permute(0, 2, 1).reshape(n, features.shape[-1], nrr, nrr)
        depth_image = depth.permute(0, 2, 1).reshape(n, 1, nrr, nrr)
        opacity_image = opacity.permute(0, 2, 1).reshape(n, 1, nrr, nrr)
        return feature_image, depth_image, opacity_image

    def sample_mixed(self, coordinates, directions, ws, noise_mode='random', **synthesis_kwargs):
        """Raw density ('sigma') and colour features ('rgb') at world points [N, P, 3] for ws."""
        planes = self._planes(ws, noise_mode=noise_mode, **synthesis_kwargs)
        return self.renderer.run_model(planes, self.decoder, coordinates, directions,
                                       self.rendering_kwargs)

    def sample(self, coordinates, directions, z, c, truncation_psi=1, truncation_cutoff=None,
               **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.sample_mixed(coordinates, directions, ws, **synthesis_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        """Official convenience: the same c conditions the mapping and places the camera."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, c, **synthesis_kwargs)
