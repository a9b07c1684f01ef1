"""The backbone of a frame: ws -> the tri-planes, every StyleGAN2 layer folded for its w
(blocks.py) and run channels-last, with reused buffers.

What the backbone of a network produces and how that output splits into planes is written here
and nowhere else, so a generator with another backbone (PanoHead's tri-grids) swaps this
module's functions, not the session's caches."""
import torch

from .blocks import FoldedBlock, block_ws
from .fold import params_signature

PLANES = 3                 # the output image holds three planes of equal channel count


def blocks_of(synthesis):
    """The blocks of a StyleGAN2 synthesis network, lowest resolution first."""
    return [getattr(synthesis, f'b{res}') for res in synthesis.block_resolutions]


def signature(backbone):
    """Identity of the backbone's weights: changes when any of them is replaced or modified."""
    return params_signature(backbone.synthesis)


def run_backbone(backbone, ws, noise_mode, dtype, workspace, winograd=True, min_tiles=256):
    """ws [N, num_ws, w_dim] -> image [N, 3 * C, H, W] (NCHW, float32) of G.backbone, eagerly
    (run_synthesis)."""
    return run_synthesis(backbone.synthesis, ws, noise_mode, dtype, workspace, winograd,
                         min_tiles, 'backbone')


def run_synthesis(synthesis, ws, noise_mode, dtype, workspace, winograd=True, min_tiles=256,
                  name='backbone'):
    """A StyleGAN2 synthesis network (the backbone's; PanoHead's background network) for ws
    [N, num_ws, w_dim] -> image [N, C, H, W] (NCHW, float32): every layer folded for this w,
    then the blocks run; `name` keeps its buffers apart in the workspace. No host
    synchronisation after the first call (so that it can be captured in a CUDA graph)."""
    device = ws.device
    blocks = blocks_of(synthesis)
    result = None
    for n in range(ws.shape[0]):
        x = img = None
        for block, bws in zip(blocks, block_ws(blocks, ws[n])):
            fb = FoldedBlock(block, bws, noise_mode, device, dtype, winograd, min_tiles, None)
            x, img = fb(x, img, workspace, f'{name}.b{block.resolution}')
        if result is None:
            result = torch.empty(ws.shape[0], img.shape[2], img.shape[0], img.shape[1],
                                 device=device)
        result[n].copy_(img.permute(2, 0, 1))
    return result


def as_planes(image):
    """Backbone image [N, 3 * C, H, W] -> its planes [N, 3, C, H, W] (a view)."""
    n, channels, h, w = image.shape
    return image.view(n, PLANES, channels // PLANES, h, w)
