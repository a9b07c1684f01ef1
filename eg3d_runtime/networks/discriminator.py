"""DualDiscriminator: a camera-conditioned ResNet discriminator on the super-resolved image and the
raw neural rendering stacked as 6 channels (docs/eg3d-reference.md 7.4). It is part of every
snapshot."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from .init_args import records_init_args
from .stylegan2 import Conv2dLayer, FullyConnectedLayer, MappingNetwork


@records_init_args
class DiscriminatorBlock(nn.Module):
    """ResNet block: (fromrgb) conv0, strided conv1, with a 1x1 strided skip."""

    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels,
                 first_layer_idx, architecture='resnet', activation='lrelu',
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, use_fp16=False,
                 fp16_channels_last=False, freeze_layers=0):
        assert architecture == 'resnet', 'EG3D discriminators use the resnet architecture only'
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer('resample_filter', ops.setup_filter(resample_filter))
        self.num_layers = 0

        def trainable():   # layers below `freeze_layers` (Freeze-D) become buffers
            self.num_layers += 1
            return first_layer_idx + self.num_layers - 1 >= freeze_layers

        common = dict(activation=activation, conv_clamp=conv_clamp)
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1,
                                       trainable=trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=trainable(),
                                 **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, down=2,
                                 trainable=trainable(), resample_filter=resample_filter, **common)
        self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                trainable=trainable(), resample_filter=resample_filter)

    def forward(self, x, img, force_fp32=False):
        device = (x if x is not None else img).device
        dtype = torch.float16 if self.use_fp16 and not force_fp32 and device.type == 'cuda' \
            else torch.float32
        if x is not None:
            x = x.to(dtype)
        if self.in_channels == 0:
            y = self.fromrgb(img.to(dtype))
            x = x + y if x is not None else y
            img = None
        y = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=np.sqrt(0.5))
        return y + x, img


@records_init_args
class MinibatchStdLayer(nn.Module):
    """Appends the std of features across groups of samples (taken with stride N/G)."""

    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)
        return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)


@records_init_args
class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch-std, conv, fc, out, then projection onto the camera embedding."""

    def __init__(self, in_channels, cmap_dim, resolution, img_channels, architecture='resnet',
                 mbstd_group_size=4, mbstd_num_channels=1, activation='lrelu', conv_clamp=None):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) \
            if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels,
                                      activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap, force_fp32=False):
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x


def filtered_resizing(image, size, f=None, filter_mode='antialiased'):
    """Resize the raw neural rendering to the discriminator's resolution (antialiased bilinear)."""
    if filter_mode != 'antialiased':
        raise ValueError(f'unsupported filter_mode {filter_mode!r}')
    return F.interpolate(image, size=(size, size), mode='bilinear', align_corners=False,
                         antialias=True)


@records_init_args
class DualDiscriminator(nn.Module):
    def __init__(self, c_dim, img_resolution, img_channels, architecture='resnet',
                 channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256, cmap_dim=None,
                 disc_c_noise=0, block_kwargs={}, mapping_kwargs={}, epilogue_kwargs={}, *,
                 input_channels=None):
        """`input_channels`: channels of the stacked input, by default the image's and the raw
        image's (MaskDualDiscriminatorV2 adds the mask's)."""
        super().__init__()
        img_channels = input_channels or img_channels * 2
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res],
                                       channels[res // 2], resolution=res,
                                       first_layer_idx=layer_idx, use_fp16=res >= fp16_resolution,
                                       **block_kwargs, **common)
            setattr(self, f'b{res}', block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None,
                                          w_avg_beta=None, **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4,
                                        **epilogue_kwargs, **common)
        self.register_buffer('resample_filter', ops.setup_filter([1, 3, 3, 1]))
        self.disc_c_noise = disc_c_noise

    def stacked_input(self, img):
        """The image and the raw image resized to its size, as channels."""
        raw = filtered_resizing(img['image_raw'], size=img['image'].shape[-1], f=self.resample_filter)
        return torch.cat([img['image'], raw], 1)

    def forward(self, img, c, update_emas=False, **block_kwargs):
        """img: dict with 'image' [N,3,R,R] and 'image_raw' [N,3,r,r]; c [N,25] -> logits [N,1]."""
        x, img = None, self.stacked_input(img)
        for res in self.block_resolutions:
            x, img = getattr(self, f'b{res}')(x, img, **block_kwargs)
        cmap = None
        if self.c_dim > 0:
            if self.disc_c_noise > 0:
                c = c + torch.randn_like(c) * c.std(0) * self.disc_c_noise
            cmap = self.mapping(None, c)
        return self.b4(x, img, cmap)


class MaskDualDiscriminatorV2(DualDiscriminator):
    """PanoHead's discriminator: DualDiscriminator on the image, the raw image and the mask
    (`image_mask` resized to the image and mapped from [0, 1] to [-1, 1]) stacked as
    2 img_channels + seg_channels channels. `seg_resolution` is recorded but unused, as in
    PanoHead's V2."""

    def __init__(self, c_dim, img_resolution, img_channels, seg_resolution, seg_channels,
                 **kwargs):
        super().__init__(c_dim, img_resolution, img_channels,
                         input_channels=img_channels * 2 + seg_channels, **kwargs)
        self.seg_resolution = seg_resolution
        self.seg_channels = seg_channels

    def stacked_input(self, img):
        size = img['image'].shape[-1]
        mask = filtered_resizing(img['image_mask'], size=size, f=self.resample_filter)
        return torch.cat([super().stacked_input(img), 2 * mask - 1], 1)
