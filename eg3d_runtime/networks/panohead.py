"""PanoHead's generator (SizheAn/PanoHead, docs/panohead-reference.md): EG3D's tri-plane
generator with a tri-grid, a crop box, a background network, a ToRGB raw image, an opacity mask
and a learned camera offset.

PanoHead pickles keep EG3D's class name `TriPlaneGenerator`; what tells them apart is their
recorded rendering options (`is_panohead`), from which the whole architecture is built, as
PanoHead's code does.
"""
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ..rendering.tri_grid import TriGridRenderer
from .stylegan2 import MappingNetwork, SynthesisNetwork, ToRGBLayer
from .triplane import PLANE_CHANNELS, TriPlaneGenerator

# Rendering options only PanoHead's training writes (any one of them makes a PanoHead network).
PANOHEAD_OPTIONS = ('triplane_depth', 'use_torgb_raw', 'use_background', 'decoder_activation')
# Those its generator cannot be built without.
REQUIRED_PANOHEAD_OPTIONS = ('triplane_size', 'triplane_depth', 'decoder_activation')
# The opacity image becomes image_mask as weights * (1 + 2 * MASK_MARGIN) - MASK_MARGIN.
MASK_MARGIN = 0.001


def is_panohead(rendering_kwargs):
    """Whether a generator's rendering options are PanoHead's."""
    return isinstance(rendering_kwargs, Mapping) and any(k in rendering_kwargs
                                                         for k in PANOHEAD_OPTIONS)


class PanoHeadGenerator(TriPlaneGenerator):
    """Constructed from the same arguments as PanoHead's TriPlaneGenerator.

    Children beyond EG3D's: `torgb` (with `use_torgb_raw`: the raw image is a ToRGB of the
    feature image, not its first three channels), `bcg_synthesis` (with `use_background`: a
    second synthesis network at the super-resolution's input size, half the channel base,
    blended in where the rays' opacity is low) and `t_mapping` (the camera offset
    `forward` adds; rendering alone never applies it, as in PanoHead's own scripts)."""

    renderer_class = TriGridRenderer

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, sr_num_fp16_res=0,
                 mapping_kwargs={}, rendering_kwargs={}, sr_kwargs={}, **synthesis_kwargs):
        super().__init__(z_dim, c_dim, w_dim, img_resolution, img_channels,
                         sr_num_fp16_res=sr_num_fp16_res, mapping_kwargs=mapping_kwargs,
                         rendering_kwargs=rendering_kwargs, sr_kwargs=sr_kwargs,
                         plane_resolution=rendering_kwargs['triplane_size'], **synthesis_kwargs)
        self.torgb = ToRGBLayer(PLANE_CHANNELS, 3, w_dim) \
            if rendering_kwargs.get('use_torgb_raw', False) else None
        background_kwargs = {**synthesis_kwargs,
                             'channel_base': synthesis_kwargs.get('channel_base', 32768) // 2}
        self.bcg_synthesis = SynthesisNetwork(
            w_dim, img_resolution=self.superresolution.input_resolution,
            img_channels=PLANE_CHANNELS, **background_kwargs) \
            if rendering_kwargs.get('use_background', False) else None
        self.t_mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=3, num_ws=1,
                                        last_activation='linear', lr_multiplier=1.0,
                                        **mapping_kwargs)

    @staticmethod
    def plane_channels(rendering_kwargs):
        return 3 * PLANE_CHANNELS * rendering_kwargs['triplane_depth']

    def apply_delta_c(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        """(c with the learned offset added to the camera centre c[3], c[7], c[11], the offset
        [N, 3]). The offset is mapped from z and the conditioning camera like ws (zeroed where
        the network is not pose-conditioned; PanoHead then offsets a zero camera, here the
        given one)."""
        cond = c
        if self.rendering_kwargs.get('c_gen_conditioning_zero', False):
            cond = torch.zeros_like(c)
        delta = self.t_mapping(z, cond * self.rendering_kwargs.get('c_scale', 0),
                               truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                               update_emas=update_emas).squeeze(1)
        moved = c.clone()
        moved[:, [3, 7, 11]] += delta
        return moved, delta

    def background(self, ws, size, ws_bcg=None, noise_mode='random', update_emas=False,
                   **synthesis_kwargs):
        """The background features [N, 32, size, size] for ws (or `ws_bcg`): its first ws,
        the last repeated where it needs more than there are, resized like PanoHead."""
        ws_bcg = (ws if ws_bcg is None else ws_bcg)[:, :self.bcg_synthesis.num_ws]
        missing = self.bcg_synthesis.num_ws - ws_bcg.shape[1]
        if missing > 0:
            ws_bcg = torch.cat([ws_bcg, ws_bcg[:, -1:].repeat(1, missing, 1)], 1)
        image = self.bcg_synthesis(ws_bcg, noise_mode=noise_mode, update_emas=update_emas,
                                   **synthesis_kwargs)
        return F.interpolate(image, size=(size, size), mode='bilinear', align_corners=False,
                             antialias=self.rendering_kwargs['sr_antialias'])

    def raw_image(self, feature_image, ws):
        """image_raw before the super-resolution: a ToRGB of the features, or their first
        three channels."""
        if self.torgb is None:
            return feature_image[:, :3]
        return self.torgb(feature_image, ws[:, -1], fused_modconv=False).float()

    def synthesis(self, ws, c, neural_rendering_resolution=None, noise_mode='random',
                  cache_backbone=False, use_cached_backbone=False, deterministic=False,
                  update_emas=False, rendering_overrides=None, superresolution=True,
                  ws_bcg=None, background=True, **synthesis_kwargs):
        """TriPlaneGenerator.synthesis plus 'image_mask' [N, 1, R, R] (the rays' opacity,
        slightly widened as PanoHead does). `ws_bcg` gives the background other ws;
        `background=False` leaves the background network out (the head alone). Networks
        opened with `load_network_pkl` serve it through the engine (engine/official_api.py)."""
        feature_image, depth_image, opacity = self.volume_rendering(
            ws, c, neural_rendering_resolution, noise_mode, cache_backbone, use_cached_backbone,
            deterministic, update_emas, rendering_overrides, **synthesis_kwargs)
        if self.decoder.activation == 'sigmoid':
            feature_image = feature_image * 2 - 1
        if self.bcg_synthesis is not None and background:
            feature_image = feature_image + (1 - opacity) * self.background(
                ws, feature_image.shape[-1], ws_bcg, noise_mode, update_emas, **synthesis_kwargs)
        rgb_image = self.raw_image(feature_image, ws)
        out = {'image_raw': rgb_image, 'image_depth': depth_image,
               'image_mask': opacity * (1 + 2 * MASK_MARGIN) - MASK_MARGIN}
        if superresolution:
            out['image'], out['image_raw'] = self.superresolution(
                rgb_image, feature_image.contiguous(), ws, return_raw=True,
                noise_mode=self.rendering_kwargs['superresolution_noise_mode'], **synthesis_kwargs)
        return out

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        """PanoHead's `G(z, c)`: c conditions the mapping, and c moved by the learned camera
        offset places the camera."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        moved, _ = self.apply_delta_c(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, moved, **synthesis_kwargs)
