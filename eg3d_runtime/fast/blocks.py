"""StyleGAN2 synthesis blocks with weights folded for a known w: the unit both the backbone and
the super-resolution of the fast path are made of (fold.py folds the single layers, conv.py
runs them), and the up-sampling of a block's skip image."""
import torch
import torch.nn.functional as F

from .. import ops
from . import conv as fc
from .fold import fold_layer, fold_torgb
from .kernel_forms import is_default_filter


def upsample2x(img):
    """The FIR up-sampling of the skip image (ops.upsample2d with [1,3,3,1]) on NHWC [H, W, C]:
    separable, output 2i = 3/4 x[i] + 1/4 x[i-1], 2i+1 = 3/4 x[i] + 1/4 x[i+1], zero outside."""
    def along(x, dim):
        n = x.shape[dim]
        pad = [0, 0] * (x.ndim - 1 - dim) + [1, 1]
        xp = F.pad(x, pad)
        mid = xp.narrow(dim, 1, n)
        even = torch.lerp(mid, xp.narrow(dim, 0, n), 0.25)
        odd = torch.lerp(mid, xp.narrow(dim, 2, n), 0.25)
        y = torch.stack([even, odd], dim=dim + 1)
        shape = list(x.shape)
        shape[dim] = 2 * n
        return y.reshape(shape)
    return along(along(img, 0), 1)


def upsample_image(img, resample_filter):
    """Skip-image up-sampling on NHWC; exact separable form for the standard filter."""
    if is_default_filter(resample_filter):
        return upsample2x(img)
    x = img.permute(2, 0, 1).unsqueeze(0)
    return ops.upsample2d(x, resample_filter)[0].permute(1, 2, 0)


class FoldedBlock:
    """One StyleGAN2 synthesis block with its convolutions folded for fixed ws (NHWC)."""

    def __init__(self, block, ws, noise_mode, device, dtype, winograd, min_tiles, in_res):
        """ws: the block's ws [num_conv + num_torgb, w_dim]; in_res: resolution of x entering."""
        i = 0
        wino_ok = dtype == torch.float32        # Winograd loses too much in 16-bit formats
        self.const = None
        self.conv0 = None
        res = block.resolution
        if block.in_channels == 0:
            self.const = block.const.float().permute(1, 2, 0).contiguous()
        else:
            up = block.conv0.up > 1
            kind = 'up3' if up else 'conv3'
            h_in = in_res if in_res else (res // 2 if up else res)
            method = fc.choose_method(device, h_in, kind, winograd and wino_ok, min_tiles,
                                      block.conv0.in_channels)
            self.conv0 = fold_layer(block.conv0, ws[i], noise_mode, method, dtype)
            i += 1
        method = fc.choose_method(device, res, 'conv3', winograd and wino_ok, min_tiles)
        self.conv1 = fold_layer(block.conv1, ws[i], noise_mode, method, dtype)
        self.torgb = fold_torgb(block.torgb, ws[i + 1], dtype)
        self.upsamples = block.upsamples
        self.filter = block.resample_filter
        self.default_filter = is_default_filter(block.resample_filter)
        self.resolution = res

    def __call__(self, x, img, workspace, name):
        if self.const is not None:
            x = self.const
        else:
            h = x.shape[0] * (2 if self.conv0.kind == 'up3' else 1)
            out = workspace.get(name + '.conv0', (h, h, self.conv0.out_channels),
                                self.conv0.out_dtype, x.device)
            x = self.conv0(x, out)
        out = workspace.get(name + '.conv1', (*x.shape[:2], self.conv1.out_channels),
                            self.conv1.out_dtype, x.device)
        x = self.conv1(x, out)
        if img is not None and self.upsamples:
            img = upsample2x(img) if self.default_filter else \
                upsample_image(img, self.filter)
        y = self.torgb(x)
        img = y if img is None else img + y
        return x, img


def block_ws(blocks, ws):
    """Split one sample's ws [num_ws, w_dim] over the blocks (torgb shares the next conv's w)."""
    out, idx = [], 0
    for block in blocks:
        out.append(ws[idx:idx + block.num_conv + block.num_torgb])
        idx += block.num_conv
    return out


def _leaves(old, new, pairs):
    """Pairs of tensors at the same place in two folded structures (lists, tuples, FoldedBlock
    and FixedConv attributes); False where the structures or their settings differ."""
    if isinstance(old, torch.Tensor):
        if not isinstance(new, torch.Tensor) or old.shape != new.shape \
                or old.dtype != new.dtype or old.device != new.device:
            return False
        if old is not new:
            pairs.append((old, new))
        return True
    if isinstance(old, (list, tuple)):
        return type(old) is type(new) and len(old) == len(new) and \
            all(_leaves(a, b, pairs) for a, b in zip(old, new))
    if isinstance(old, (FoldedBlock, fc.FixedConv)):
        return type(old) is type(new) and vars(old).keys() == vars(new).keys() and \
            all(_leaves(a, vars(new)[k], pairs) for k, a in vars(old).items())
    return old == new


def refold_into(old, new):
    """Copy the folded weights of `new` into the tensors of `old` (same layers, another w) and
    return True; False, copying nothing, where they differ in shape or settings. A CUDA graph
    captured reading `old` then renders with the new w."""
    pairs = []
    if not _leaves(old, new, pairs):
        return False
    for dst, src in pairs:
        dst.copy_(src)
    return True
