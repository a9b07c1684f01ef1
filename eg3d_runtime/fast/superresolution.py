"""The super-resolution of the fast path: its two blocks folded for one sample's last w, and run
on a neural rendering. Frames (frame.py) and the 'auto' precision measurement (precision.py) both
call these two functions, so what is measured is what a frame runs: the same layers, methods
(Winograd, direct, transposed) and sizes. Also the official image_raw quirk
(docs/eg3d-reference.md 2.8): where block0 adds its RGB onto the neural rendering itself, that
sum is the image_raw the official code returns."""
import torch
import torch.nn.functional as F

from .blocks import FoldedBlock

# Winograd in the super-resolution from this many 4x4 tiles (its images are 64-512 px).
MIN_TILES = 64


def raw_needs_superresolution(G, nrr):
    """Whether G's official image_raw at neural rendering resolution `nrr` includes the first
    super-resolution block's RGB (ShapeNet's 2X at 64, the 4X at 128), so that the
    super-resolution must run to return it."""
    return G.superresolution.raw_is_block0_output(nrr)


def fold(sr, w, noise_mode, device, dtype, winograd):
    """(block0, block1) of super-resolution module `sr` folded for one w [w_dim]."""
    ws3 = w.float().unsqueeze(0).expand(3, -1)
    b0 = FoldedBlock(sr.block0, ws3, noise_mode, device, dtype, winograd, MIN_TILES,
                     sr.input_resolution)
    b1 = FoldedBlock(sr.block1, ws3, noise_mode, device, dtype, winograd, MIN_TILES, None)
    return b0, b1


def _resize(sr, features):
    target = sr.input_resolution
    if features is not None and sr.resizes(features.shape[1]):
        x = features.permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(target, target), mode='bilinear', align_corners=False,
                          antialias=sr.sr_antialias)
        features = x.permute(0, 2, 3, 1)
    return features


def run(sr, folded, features, workspace, rgb=None):
    """features NHWC [N, h, h, C] (rgb = first 3 channels, unless `rgb` NHWC [N, h, h, 3] gives
    the raw image: PanoHead's ToRGB), `folded` one (block0, block1) per sample -> image NCHW
    [N, 3, R, R] and, where the official image_raw includes block0's RGB
    (sr.raw_is_block0_output), that image_raw NCHW [N, 3, h, h]; else None."""
    size = features.shape[1]
    raw = torch.empty(len(folded), 3, size, size, device=features.device) \
        if sr.raw_is_block0_output(size) else None
    features = _resize(sr, features)
    rgb = _resize(sr, rgb)
    out = None
    for n, (b0, b1) in enumerate(folded):
        x = features[n].contiguous()
        img = x[..., :3] if rgb is None else rgb[n]
        x, img = b0(x, img, workspace, 'sr.block0')
        if raw is not None:
            raw[n].copy_(img.permute(2, 0, 1))
        x, img = b1(x, img, workspace, 'sr.block1')
        if out is None:
            out = torch.empty(len(folded), 3, img.shape[0], img.shape[1], device=img.device)
        out[n].copy_(img.permute(2, 0, 1))
    return out, raw
