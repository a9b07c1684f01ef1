"""ADA augmentation pipeline (StyleGAN2-ADA `AugmentPipe`, docs/eg3d-reference.md 7.5) in plain
PyTorch.

The constructor, attribute names and state dict (`p`, `Hz_geom`, `Hz_fbank`) match the official
module, so the `augment_pipe` of an official snapshot loads into this class by name and back.
Random draws happen in the official order, so a seeded run draws the same parameters.
Everything is differentiable w.r.t. the images: the generator step augments its fakes too.
Only torch, numpy and the standard library are imported because this source gets embedded in
pickles.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from .init_args import records_init_args

# Low-pass decomposition filters of two Daubechies symlets (the official coefficients).
SYM2 = [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025]
SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

# Share of each filter-bank band in a natural image's (1/f) power spectrum.
EXPECTED_BAND_POWER = [10 / 13, 1 / 13, 1 / 13, 1 / 13]


def filter_bank(lowpass, num_bands=4):
    """Rows are zero-phase FIR filters that split the spectrum into octave bands (sum: a delta).

    Each step stretches the bank one octave down (zero insertion), smooths it with the
    half-band low-pass H(z)H(1/z)/2 and puts the complementary high-pass in the next row.
    """
    lo = np.asarray(lowpass, dtype=np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo2 = np.convolve(lo, lo[::-1]) / 2
    hi2 = np.convolve(hi, hi[::-1]) / 2
    bank = np.zeros([num_bands, 1])
    bank[0, 0] = 1
    for band in range(1, num_bands):
        stretched = np.zeros([num_bands, bank.shape[1] * 2 - 1])
        stretched[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo2) for row in stretched])
        start = (bank.shape[1] - hi2.size) // 2
        bank[band, start:start + hi2.size] += hi2
    return bank


def _matrices(rows, batch, device):
    """Rows of numbers and [batch] tensors -> a [batch, rows, cols] float32 matrix stack."""
    entries = [torch.as_tensor(e, dtype=torch.float32, device=device).expand(batch)
               for row in rows for e in row]
    return torch.stack(entries, dim=-1).reshape(batch, len(rows), len(rows[0]))


def _translate2d(tx, ty, batch, device):
    return _matrices([[1, 0, tx], [0, 1, ty], [0, 0, 1]], batch, device)


def _scale2d(sx, sy, batch, device):
    return _matrices([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], batch, device)


def _rotate2d(theta, batch, device):
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrices([[c, -s, 0], [s, c, 0], [0, 0, 1]], batch, device)


def _upfirdn_separable(x, taps, up=1, down=1, pad=(0, 0), gain=1.0, flip=True):
    """upfirdn2d with a separable 1-D filter: zero-insert, pad (negative crops), filter, decimate.

    `flip=True` is a true convolution; `flip=False` correlates (the official `flip_filter=True`).
    """
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0)] * 2)
    x = x[:, :, max(-p0, 0):x.shape[2] - max(-p1, 0), max(-p0, 0):x.shape[3] - max(-p1, 0)]
    taps = (taps * math.sqrt(gain)).to(x.dtype)
    if flip:
        taps = taps.flip(0)
    x = F.conv2d(x, taps.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), stride=(1, down), groups=c)
    return F.conv2d(x, taps.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), stride=(down, 1), groups=c)


@records_init_args
class AugmentPipe(torch.nn.Module):
    """Per-sample random augmentations; each enabled one fires with probability `p * multiplier`.

    Multipliers (xflip ... cutout) default to 0 = disabled; the *_std / *_max / *_size arguments
    set each transform's strength. `p` is a buffer that ADA adjusts during training.
    """

    def __init__(self,
                 xflip=0, rotate90=0, xint=0, xint_max=0.125,
                 scale=0, rotate=0, aniso=0, xfrac=0, scale_std=0.2, rotate_max=1, aniso_std=0.2,
                 xfrac_std=0.125,
                 brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0, brightness_std=0.2,
                 contrast_std=0.5, hue_max=1, saturation_std=1,
                 imgfilter=0, imgfilter_bands=(1, 1, 1, 1), imgfilter_std=1,
                 noise=0, cutout=0, noise_std=0.1, cutout_size=0.5):
        super().__init__()
        self.register_buffer('p', torch.ones([]))

        # Pixel blitting (done by the same resampling as the general geometric transforms).
        self.xflip = float(xflip)
        self.rotate90 = float(rotate90)
        self.xint = float(xint)
        self.xint_max = float(xint_max)          # relative to image size

        # General geometric transforms.
        self.scale = float(scale)
        self.rotate = float(rotate)
        self.aniso = float(aniso)
        self.xfrac = float(xfrac)
        self.scale_std = float(scale_std)        # log2 std
        self.rotate_max = float(rotate_max)      # 1 = full circle
        self.aniso_std = float(aniso_std)        # log2 std
        self.xfrac_std = float(xfrac_std)        # relative to image size

        # Colour transforms.
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.lumaflip = float(lumaflip)
        self.hue = float(hue)
        self.saturation = float(saturation)
        self.brightness_std = float(brightness_std)
        self.contrast_std = float(contrast_std)  # log2 std
        self.hue_max = float(hue_max)            # 1 = full circle
        self.saturation_std = float(saturation_std)  # log2 std

        # Image-space filtering.
        self.imgfilter = float(imgfilter)
        self.imgfilter_bands = list(imgfilter_bands)
        self.imgfilter_std = float(imgfilter_std)  # log2 std of a band's amplification

        # Image-space corruptions.
        self.noise = float(noise)
        self.cutout = float(cutout)
        self.noise_std = float(noise_std)
        self.cutout_size = float(cutout_size)    # relative to image size

        bank = filter_bank(SYM2)
        if len(self.imgfilter_bands) != bank.shape[0]:
            raise ValueError(f'AugmentPipe: imgfilter_bands needs {bank.shape[0]} entries, '
                             f'got {len(self.imgfilter_bands)}')
        hz_geom = torch.tensor(SYM6, dtype=torch.float32)
        self.register_buffer('Hz_geom', hz_geom / hz_geom.sum())
        self.register_buffer('Hz_fbank', torch.as_tensor(bank, dtype=torch.float32))

    def forward(self, images, debug_percentile=None):
        """[N, C, H, W] -> same shape; `debug_percentile` in (0, 1) forces every enabled transform
        to that point of its range (for visual checks)."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError('AugmentPipe: images must be a 4-D [N, C, H, W] tensor')
        if debug_percentile is None and float(self.p) == 0:
            return images   # nothing can fire; also skips the resampling round trip
        device = images.device
        if debug_percentile is not None:
            debug_percentile = torch.as_tensor(debug_percentile, dtype=torch.float32,
                                               device=device)
        images = self._geometric(images, debug_percentile)
        images = self._colour(images, debug_percentile)
        if self.imgfilter > 0:
            images = self._filter(images, debug_percentile)
        if self.noise > 0:
            images = self._noise(images, debug_percentile)
        if self.cutout > 0:
            images = self._cutout(images, debug_percentile)
        return images

    def _fires(self, multiplier, shape, device):
        """Per-sample coin flips with probability `p * multiplier`."""
        return torch.rand(shape, device=device) < multiplier * self.p

    def _geometric(self, images, pct):
        batch, _, height, width = images.shape
        dev = images.device
        if not any(m > 0 for m in (self.xflip, self.rotate90, self.xint, self.scale, self.rotate,
                                   self.aniso, self.xfrac)):
            return images
        # g_inv maps output pixel coordinates (origin at the image centre) to input ones.
        g_inv = torch.eye(3, device=dev).expand(batch, 3, 3)

        if self.xflip > 0:
            i = torch.floor(torch.rand([batch], device=dev) * 2)
            i = torch.where(self._fires(self.xflip, [batch], dev), i, torch.zeros_like(i))
            if pct is not None:
                i = torch.full_like(i, torch.floor(pct * 2))
            g_inv = g_inv @ _scale2d(1 - 2 * i, 1, batch, dev)

        if self.rotate90 > 0:
            i = torch.floor(torch.rand([batch], device=dev) * 4)
            i = torch.where(self._fires(self.rotate90, [batch], dev), i, torch.zeros_like(i))
            if pct is not None:
                i = torch.full_like(i, torch.floor(pct * 4))
            g_inv = g_inv @ _rotate2d(np.pi / 2 * i, batch, dev)

        if self.xint > 0:
            t = (torch.rand([batch, 2], device=dev) * 2 - 1) * self.xint_max
            t = torch.where(self._fires(self.xint, [batch, 1], dev), t, torch.zeros_like(t))
            if pct is not None:
                t = torch.full_like(t, (pct * 2 - 1) * self.xint_max)
            g_inv = g_inv @ _translate2d(-torch.round(t[:, 0] * width),
                                         -torch.round(t[:, 1] * height), batch, dev)

        if self.scale > 0:
            s = torch.exp2(torch.randn([batch], device=dev) * self.scale_std)
            s = torch.where(self._fires(self.scale, [batch], dev), s, torch.ones_like(s))
            if pct is not None:
                s = torch.full_like(s, torch.exp2(torch.erfinv(pct * 2 - 1) * self.scale_std))
            g_inv = g_inv @ _scale2d(1 / s, 1 / s, batch, dev)

        # Rotation is split into a pre- and a post-rotation, each with p_rot, so that
        # P(pre or post) = rotate * p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * self.p).clamp(0, 1))
        if self.rotate > 0:
            theta = (torch.rand([batch], device=dev) * 2 - 1) * np.pi * self.rotate_max
            theta = torch.where(torch.rand([batch], device=dev) < p_rot, theta,
                                torch.zeros_like(theta))
            if pct is not None:
                theta = torch.full_like(theta, (pct * 2 - 1) * np.pi * self.rotate_max)
            g_inv = g_inv @ _rotate2d(theta, batch, dev)

        if self.aniso > 0:
            s = torch.exp2(torch.randn([batch], device=dev) * self.aniso_std)
            s = torch.where(self._fires(self.aniso, [batch], dev), s, torch.ones_like(s))
            if pct is not None:
                s = torch.full_like(s, torch.exp2(torch.erfinv(pct * 2 - 1) * self.aniso_std))
            g_inv = g_inv @ _scale2d(1 / s, s, batch, dev)

        if self.rotate > 0:
            theta = (torch.rand([batch], device=dev) * 2 - 1) * np.pi * self.rotate_max
            theta = torch.where(torch.rand([batch], device=dev) < p_rot, theta,
                                torch.zeros_like(theta))
            if pct is not None:
                theta = torch.zeros_like(theta)
            g_inv = g_inv @ _rotate2d(theta, batch, dev)

        if self.xfrac > 0:
            t = torch.randn([batch, 2], device=dev) * self.xfrac_std
            t = torch.where(self._fires(self.xfrac, [batch, 1], dev), t, torch.zeros_like(t))
            if pct is not None:
                t = torch.full_like(t, torch.erfinv(pct * 2 - 1) * self.xfrac_std)
            g_inv = g_inv @ _translate2d(-t[:, 0] * width, -t[:, 1] * height, batch, dev)

        return self._resample(images, g_inv)

    def _resample(self, images, g_inv):
        """Apply g_inv with bilinear sampling at 2x, between sym6 up- and downsampling, so the
        result is nearly alias-free; the image is reflect-padded to cover what the sampling
        reaches."""
        batch, channels, height, width = images.shape
        dev = images.device
        taps = self.Hz_geom.shape[0]
        hz_pad = taps // 4

        # Reflect-pad by how far the transformed corners reach outside, plus the filter support.
        cx, cy = (width - 1) / 2, (height - 1) / 2
        corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]],
                               dtype=torch.float32, device=dev)
        reach = (g_inv @ corners)[:, :2, :].permute(1, 0, 2).flatten(1)     # [xy, batch*4]
        margin = torch.cat([-reach, reach]).amax(dim=1)                     # [x0, y0, x1, y1]
        margin = margin + torch.tensor([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2, device=dev)
        margin = margin.clamp(min=0)
        margin = torch.minimum(margin, torch.tensor([width - 1, height - 1] * 2,
                                                    dtype=torch.float32, device=dev))
        mx0, my0, mx1, my1 = (int(m) for m in margin.ceil().tolist())
        images = F.pad(images, [mx0, mx1, my0, my1], mode='reflect')
        g_inv = _translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, batch, dev) @ g_inv

        # 2x upsample; express g_inv in the upsampled pixel grid.
        images = _upfirdn_separable(images, self.Hz_geom, up=2,
                                    pad=((taps + 1) // 2, (taps - 2) // 2), gain=4)
        g_inv = _scale2d(2, 2, batch, dev) @ g_inv @ _scale2d(0.5, 0.5, batch, dev)
        g_inv = _translate2d(-0.5, -0.5, batch, dev) @ g_inv @ _translate2d(0.5, 0.5, batch, dev)

        # Sample an output of (size + filter margin) * 2 in normalised [-1, 1] coordinates.
        out_h, out_w = (height + hz_pad * 2) * 2, (width + hz_pad * 2) * 2
        g_inv = (_scale2d(2 / images.shape[3], 2 / images.shape[2], batch, dev) @ g_inv
                 @ _scale2d(out_w / 2, out_h / 2, batch, dev))
        grid = F.affine_grid(g_inv[:, :2, :].to(images.dtype),
                             [batch, channels, out_h, out_w], align_corners=False)
        images = F.grid_sample(images, grid, mode='bilinear', padding_mode='zeros',
                               align_corners=False)

        # Downsample by 2 and crop the margin away.
        crop = (-hz_pad * 2 + (taps - 1) // 2, -hz_pad * 2 + (taps - 2) // 2)
        return _upfirdn_separable(images, self.Hz_geom, down=2, pad=crop, flip=False)

    def _colour(self, images, pct):
        batch, channels, height, width = images.shape
        dev = images.device
        # c_mat maps homogeneous RGB (r, g, b, 1) of the input to the output.
        hue = self.hue if channels > 1 else 0
        saturation = self.saturation if channels > 1 else 0
        if not any(m > 0 for m in (self.brightness, self.contrast, self.lumaflip, hue,
                                   saturation)):
            return images
        eye = torch.eye(4, device=dev)
        c_mat = eye.expand(batch, 4, 4)
        luma = torch.tensor([1, 1, 1, 0], dtype=torch.float32, device=dev) / math.sqrt(3)
        luma_proj = torch.outer(luma, luma)

        if self.brightness > 0:
            b = torch.randn([batch], device=dev) * self.brightness_std
            b = torch.where(self._fires(self.brightness, [batch], dev), b, torch.zeros_like(b))
            if pct is not None:
                b = torch.full_like(b, torch.erfinv(pct * 2 - 1) * self.brightness_std)
            c_mat = _matrices([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]],
                              batch, dev) @ c_mat

        if self.contrast > 0:
            c = torch.exp2(torch.randn([batch], device=dev) * self.contrast_std)
            c = torch.where(self._fires(self.contrast, [batch], dev), c, torch.ones_like(c))
            if pct is not None:
                c = torch.full_like(c, torch.exp2(torch.erfinv(pct * 2 - 1) * self.contrast_std))
            c_mat = _matrices([[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]],
                              batch, dev) @ c_mat

        if self.lumaflip > 0:
            i = torch.floor(torch.rand([batch, 1, 1], device=dev) * 2)
            i = torch.where(self._fires(self.lumaflip, [batch, 1, 1], dev), i,
                            torch.zeros_like(i))
            if pct is not None:
                i = torch.full_like(i, torch.floor(pct * 2))
            c_mat = (eye - 2 * luma_proj * i) @ c_mat      # reflect across the grey plane

        if hue > 0:
            theta = (torch.rand([batch], device=dev) * 2 - 1) * np.pi * self.hue_max
            theta = torch.where(self._fires(self.hue, [batch], dev), theta,
                                torch.zeros_like(theta))
            if pct is not None:
                theta = torch.full_like(theta, (pct * 2 - 1) * np.pi * self.hue_max)
            # Rodrigues rotation about the grey axis: I + sin(t) K + (1 - cos(t)) K^2.
            a = 1 / math.sqrt(3)
            cross = torch.tensor([[0, -a, a, 0], [a, 0, -a, 0], [-a, a, 0, 0], [0, 0, 0, 0]],
                                 dtype=torch.float32, device=dev)
            s, c = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
            c_mat = (eye + s * cross + (1 - c) * (cross @ cross)) @ c_mat

        if saturation > 0:
            s = torch.exp2(torch.randn([batch, 1, 1], device=dev) * self.saturation_std)
            s = torch.where(self._fires(self.saturation, [batch, 1, 1], dev), s,
                            torch.ones_like(s))
            if pct is not None:
                s = torch.full_like(s, torch.exp2(torch.erfinv(pct * 2 - 1) * self.saturation_std))
            c_mat = (luma_proj + (eye - luma_proj) * s) @ c_mat   # scale chroma, keep luma

        c_mat = c_mat.to(images.dtype)
        flat = images.reshape(batch, channels, height * width)
        if channels == 1:
            grey = c_mat[:, :3, :].mean(dim=1, keepdim=True)
            flat = flat * grey[:, :, :3].sum(dim=2, keepdim=True) + grey[:, :, 3:]
        elif channels in (3, 6):
            # EG3D's 6 channels are two RGB images (image, upsampled image_raw): same matrix.
            flat = torch.cat([c_mat[:, :3, :3] @ rgb + c_mat[:, :3, 3:]
                              for rgb in flat.split(3, dim=1)], dim=1)
        else:
            raise ValueError(f'AugmentPipe: colour transforms need 1, 3 or 6 channels, '
                             f'got {channels}')
        return flat.reshape(batch, channels, height, width)

    def _filter(self, images, pct):
        """Randomly amplify/attenuate octave bands of the spectrum, keeping the expected power."""
        batch, channels, height, width = images.shape
        dev = images.device
        num_bands = self.Hz_fbank.shape[0]
        expected_power = torch.tensor(EXPECTED_BAND_POWER, device=dev)
        gains = torch.ones([batch, num_bands], device=dev)
        for band, band_strength in enumerate(self.imgfilter_bands):
            t_i = torch.exp2(torch.randn([batch], device=dev) * self.imgfilter_std)
            t_i = torch.where(self._fires(self.imgfilter * band_strength, [batch], dev), t_i,
                              torch.ones_like(t_i))
            if pct is not None:
                t_i = (torch.full_like(t_i, torch.exp2(torch.erfinv(pct * 2 - 1)
                                                       * self.imgfilter_std))
                       if band_strength > 0 else torch.ones_like(t_i))
            t = torch.ones([batch, num_bands], device=dev)
            t[:, band] = t_i
            t = t / (expected_power * t.square()).sum(dim=-1, keepdim=True).sqrt()
            gains = gains * t

        kernel = (gains @ self.Hz_fbank).to(images.dtype)                 # [batch, taps]
        kernel = kernel.repeat_interleave(channels, dim=0)[:, None, :]   # [batch*channels, 1, taps]
        pad = self.Hz_fbank.shape[1] // 2
        x = images.reshape(1, batch * channels, height, width)
        x = F.pad(x, [pad] * 4, mode='reflect')
        x = F.conv2d(x, kernel[:, :, None, :], groups=batch * channels)
        x = F.conv2d(x, kernel[:, :, :, None], groups=batch * channels)
        return x.reshape(batch, channels, height, width)

    def _noise(self, images, pct):
        batch = images.shape[0]
        dev = images.device
        sigma = torch.randn([batch, 1, 1, 1], device=dev).abs() * self.noise_std
        sigma = torch.where(self._fires(self.noise, [batch, 1, 1, 1], dev), sigma,
                            torch.zeros_like(sigma))
        if pct is not None:
            sigma = torch.full_like(sigma, torch.erfinv(pct) * self.noise_std)
        noise = torch.randn(images.shape, device=dev) * sigma
        return images + noise.to(images.dtype)

    def _cutout(self, images, pct):
        batch, _, height, width = images.shape
        dev = images.device
        size = torch.full([batch, 2, 1, 1, 1], self.cutout_size, device=dev)
        size = torch.where(self._fires(self.cutout, [batch, 1, 1, 1, 1], dev), size,
                           torch.zeros_like(size))
        center = torch.rand([batch, 2, 1, 1, 1], device=dev)
        if pct is not None:
            size = torch.full_like(size, self.cutout_size)
            center = torch.full_like(center, pct)
        xs = (torch.arange(width, device=dev).reshape(1, 1, 1, -1) + 0.5) / width
        ys = (torch.arange(height, device=dev).reshape(1, 1, -1, 1) + 0.5) / height
        outside_x = (xs - center[:, 0]).abs() >= size[:, 0] / 2
        outside_y = (ys - center[:, 1]).abs() >= size[:, 1] / 2
        return images * torch.logical_or(outside_x, outside_y).to(images.dtype)
