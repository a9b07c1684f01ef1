"""EG3D super-resolution modules: two StyleGAN2 blocks driven by the last w only
(docs/eg3d-reference.md 2.8)."""
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
    # The official SynthesisBlockNoUp adds its torgb output to the skip image in place
    # (`img.add_(y)`); without a resize before block0 that skip image is a view of the tensor the
    # official synthesis returns as image_raw, so image_raw comes back with block0's RGB added.
    # The released ShapeNet model was trained on that raw image: official classes keep it.
    raw_includes_block0_rgb = True

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

    def resizes(self, size):
        """Whether a neural rendering of `size` x `size` is resized before block0."""
        return size < self.input_resolution or (size != self.input_resolution
                                                and not self.resize_only_if_smaller)

    def raw_is_block0_output(self, size):
        """Whether image_raw at neural rendering resolution `size` is block0's skip-image output
        (raw + block0's RGB, see `raw_includes_block0_rgb`): only where block0 adds onto the
        raw image itself, neither resized nor up-sampled."""
        return (self.raw_includes_block0_rgb and not self.block0.upsamples
                and not self.resizes(size))

    def forward(self, rgb, x, ws, return_raw=False, **block_kwargs):
        """-> image, or (image, raw) with `return_raw`: `raw` is the image_raw the official
        synthesis returns for this `rgb`, computed out of place (an in-place add, as the official
        code does, would break autograd through block0's float32 convolutions)."""
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        raw_is_block0_output = self.raw_is_block0_output(x.shape[-1])
        img = rgb
        if self.resizes(x.shape[-1]):
            resize = dict(size=(self.input_resolution, self.input_resolution), mode='bilinear',
                          align_corners=False, antialias=self.sr_antialias)
            x = F.interpolate(x, **resize)
            img = F.interpolate(img, **resize)
        x, img = self.block0(x, img, ws, **block_kwargs)
        raw = img if raw_is_block0_output else rgb
        x, img = self.block1(x, img, ws, **block_kwargs)
        return (img, raw) if return_raw else img



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
    network at 64 px (not an official class; official code opens it through the embedded
    source). Networks made with it (the GAN demo) were trained with the plain raw image, so it
    keeps that."""
    img_resolution, input_resolution = 64, 32
    raw_includes_block0_rgb = False
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
