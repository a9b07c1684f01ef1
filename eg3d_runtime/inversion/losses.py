"""How far a render is from the target. Perceptual (LPIPS) weights cannot be downloaded here,
so the default is a pixel loss plus multi-scale SSIM, which together keep both colours and local
structure; LPIPS is used only when the user gives its weights."""
import math

import torch
import torch.nn.functional as F

from .targets import InversionError

# Per-scale exponents of MS-SSIM (Wang, Simoncelli and Bovik 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA = 11, 1.5
C1, C2 = 0.01 ** 2, 0.03 ** 2


def _window(channels, device):
    x = torch.arange(WINDOW, dtype=torch.float32, device=device) - (WINDOW - 1) / 2
    g = torch.exp(-x ** 2 / (2 * SIGMA ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, WINDOW, WINDOW).contiguous()


def _ssim_terms(x, y, window):
    """Mean SSIM and mean contrast-structure term of x, y in [0, 1] (valid window positions)."""
    blur = lambda t: F.conv2d(t, window, groups=t.shape[1])   # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    cs = (2 * cov + C2) / (vx + vy + C2)
    luminance = (2 * mx * my + C1) / (mx ** 2 + my ** 2 + C1)
    return (luminance * cs).mean(), cs.mean()


def ms_ssim(x, y):
    """Multi-scale SSIM of images in [-1, 1] (1 = identical), with as many of the five scales
    as the image size allows for the 11x11 window (3 at 64x64, 5 from 176x176)."""
    x, y = (x + 1) / 2, (y + 1) / 2
    side = min(x.shape[-2:])
    scales = max(1, min(len(MS_SSIM_WEIGHTS), int(math.log2(side / WINDOW)) + 1))
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=x.device)
    weights = weights / weights.sum()
    window = _window(x.shape[1], x.device)
    factors = []
    for i in range(scales):
        ssim, cs = _ssim_terms(x, y, window)
        factors.append(ssim if i == scales - 1 else cs)
        if i < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    # A negative contrast-structure term has no real power: clamp it, as usual in MS-SSIM.
    return torch.prod(torch.stack(factors).clamp_min(1e-4) ** weights)


class LpipsDistance:
    """LPIPS from a TorchScript feature network in the StyleGAN2-ADA metrics format (vgg16.pt:
    called on [N, 3, H, W] images in 0..255 with return_lpips=True, it returns normalised
    features whose squared distance summed is LPIPS). TorchScript is not a pickle, so loading it
    runs no Python from the file."""

    def __init__(self, path, device):
        try:
            self.net = torch.jit.load(str(path), map_location=device).eval()
        except FileNotFoundError:
            raise InversionError(f'{path}: no such file') from None
        except (RuntimeError, ValueError) as e:
            raise InversionError(f'{path}: not TorchScript LPIPS weights '
                                 f'({str(e).splitlines()[0]})') from None

    def features(self, image):
        image = (image + 1) * 127.5
        if image.shape[-1] > 256:   # the metric network was trained on 256x256 crops
            image = F.interpolate(image, size=(256, 256), mode='area')
        return self.net(image, resize_images=False, return_lpips=True)

    def __call__(self, image, target_features):
        return (self.features(image) - target_features).square().sum()


def describe(lpips_weights=None):
    """The line the command prints about the loss it uses."""
    if lpips_weights:
        return f'loss: LPIPS ({lpips_weights}) + pixel L2'
    return 'loss: pixel L2 + multi-scale SSIM (no --lpips-weights given)'


class ReconstructionLoss:
    """loss(image, image_raw) against one target: pixel L2 plus (1 - MS-SSIM), or LPIPS plus
    pixel L2 with `lpips`; the neural rendering (image_raw) is held to the downscaled target
    too, which keeps the 3D shape, not only the super-resolution, close to the picture."""
    RAW_WEIGHT = 0.5

    def __init__(self, target, lpips=None):
        self.target = target
        self.lpips = lpips
        self.target_features = lpips.features(target).detach() if lpips else None
        self._raw_targets = {}

    def raw_target(self, size):
        if size not in self._raw_targets:
            self._raw_targets[size] = F.interpolate(self.target, size=(size, size), mode='area')
        return self._raw_targets[size]

    def __call__(self, out):
        image, raw = out['image'], out['image_raw']
        loss = F.mse_loss(image, self.target) + \
            self.RAW_WEIGHT * F.mse_loss(raw, self.raw_target(raw.shape[-1]))
        if self.lpips:
            return loss + self.lpips(image, self.target_features)
        return loss + (1 - ms_ssim(image, self.target))
