"""EG3D super-resolution modules: two StyleGAN2 blocks driven by the last w only (spec 2.8)."""
import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from .init_args import records_init_args
from .stylegan2 import SynthesisBlock


class SynthesisBlockNoUp(SynthesisBlock):
    """A synthesis block whose input (features and skip image) is already at its resolution."""

    upsamples = False


@records_init_args
class _Superresolution(nn.Module):
    """Shared forward: resize the neural rendering if needed, then block0 and block1."""

    img_resolution = None          # the only output resolution the module supports
    input_resolution = None
    resize_only_if_smaller = False
    has_filter_buffer = True
    blocks = ()                    # ((class, in, out, resolution), (class, in, out, resolution))

    def __init__(self, channels, img_resolution, sr_num_fp16_res, sr_antialias=True, num_fp16_res=4,
                 conv_clamp=None, channel_base=None, channel_max=None, **block_kwargs):
        super().__init__()
        if img_resolution != self.img_resolution:
            raise ValueError(f'{type(self).__name__} renders {self.img_resolution}x'
                             f'{self.img_resolution} images, not {img_resolution}')
        use_fp16 = sr_num_fp16_res > 0
        self.sr_antialias = sr_antialias
        (cls0, in0, out0, res0), (cls1, in1, out1, res1) = self.blocks
        common = dict(w_dim=512, img_channels=3, use_fp16=use_fp16,
                      conv_clamp=256 if use_fp16 else None, **block_kwargs)
        self.block0 = cls0(channels if in0 is None else in0, out0, resolution=res0, is_last=False,
                           **common)
        self.block1 = cls1(in1, out1, resolution=res1, is_last=True, **common)
        if self.has_filter_buffer:
            self.register_buffer('resample_filter', ops.setup_filter([1, 3, 3, 1]))

    def forward(self, rgb, x, ws, **block_kwargs):
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        size = x.shape[-1]
        if size < self.input_resolution or (size != self.input_resolution
                                            and not self.resize_only_if_smaller):
            resize = dict(size=(self.input_resolution, self.input_resolution), mode='bilinear',
                          align_corners=False, antialias=self.sr_antialias)
            x = F.interpolate(x, **resize)
            rgb = F.interpolate(rgb, **resize)
        x, rgb = self.block0(x, rgb, ws, **block_kwargs)
        x, rgb = self.block1(x, rgb, ws, **block_kwargs)
        return rgb



class SuperresolutionHybrid8XDC(_Superresolution):
    """512 outputs (train.py's choice, the released FFHQ/AFHQ models)."""
    img_resolution, input_resolution, has_filter_buffer = 512, 128, False
    blocks = ((SynthesisBlock, None, 256, 256), (SynthesisBlock, 256, 128, 512))


class SuperresolutionHybrid8X(_Superresolution):
    img_resolution, input_resolution = 512, 128
    blocks = ((SynthesisBlock, None, 128, 256), (SynthesisBlock, 128, 64, 512))


class SuperresolutionHybrid4X(_Superresolution):
    img_resolution, input_resolution, resize_only_if_smaller = 256, 128, True
    blocks = ((SynthesisBlockNoUp, None, 128, 128), (SynthesisBlock, 128, 64, 256))


class SuperresolutionHybrid2X(_Superresolution):
    """128 outputs (ShapeNet cars)."""
    img_resolution, input_resolution = 128, 64
    blocks = ((SynthesisBlockNoUp, None, 128, 64), (SynthesisBlock, 128, 64, 128))


class SuperresolutionHybridDeepfp32(_Superresolution):
    """Legacy 256 module; the official one resizes without antialiasing."""
    img_resolution, input_resolution, resize_only_if_smaller = 256, 128, True
    blocks = ((SynthesisBlockNoUp, None, 128, 128), (SynthesisBlock, 128, 64, 256))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sr_antialias = False


class SuperresolutionDemo2X(_Superresolution):
    """64 outputs from a 32 neural rendering with narrow blocks: the CPU-sized `--cfg demo`
    network (not an official class; official code opens it through the embedded source)."""
    img_resolution, input_resolution = 64, 32
    blocks = ((SynthesisBlockNoUp, None, 32, 32), (SynthesisBlock, 32, 16, 64))


SUPERRESOLUTION_CLASSES = {cls.__name__: cls for cls in (
    SuperresolutionHybrid8XDC, SuperresolutionHybrid8X, SuperresolutionHybrid4X,
    SuperresolutionHybrid2X, SuperresolutionHybridDeepfp32, SuperresolutionDemo2X)}


def superresolution_class(module_path: str):
    """Map an official class path ('training.superresolution.X') to our class, by name only."""
    name = module_path.rsplit('.', 1)[-1]
    if name not in SUPERRESOLUTION_CLASSES:
        raise ValueError(f"unknown super-resolution module '{module_path}'")
    return SUPERRESOLUTION_CLASSES[name]
