"""Pure-PyTorch versions of the StyleGAN2 ops that the official code runs as CUDA plugins.

The semantics follow the official reference paths (docs/eg3d-reference.md 2.6) so that outputs
match on every device; no compiled extension is needed.
"""
import math

import torch
import torch.nn.functional as F

# name -> (function(x, alpha), default gain, default alpha)
_ACTIVATIONS = {
    'linear': (lambda x, a: x, 1.0, 0.0),
    'relu': (lambda x, a: F.relu(x), math.sqrt(2), 0.0),
    'lrelu': (lambda x, a: F.leaky_relu(x, a), math.sqrt(2), 0.2),
    'tanh': (lambda x, a: torch.tanh(x), 1.0, 0.0),
    'sigmoid': (lambda x, a: torch.sigmoid(x), 1.0, 0.0),
    'elu': (lambda x, a: F.elu(x), 1.0, 0.0),
    'selu': (lambda x, a: F.selu(x), 1.0, 0.0),
    'softplus': (lambda x, a: F.softplus(x), 1.0, 0.0),
    'swish': (lambda x, a: torch.sigmoid(x) * x, math.sqrt(2), 0.0),
}


def activation_gain(act: str) -> float:
    return _ACTIVATIONS[act][1]


def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """Bias, activation, gain and clamp, in that order."""
    func, def_gain, def_alpha = _ACTIVATIONS[act]
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = func(x, def_alpha if alpha is None else alpha)
    gain = def_gain if gain is None else float(gain)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def setup_filter(f, normalize=True):
    """A 1-D tap list becomes its normalised 2-D outer product (all EG3D filters are 4 taps)."""
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 1:
        f = f.ger(f)
    if normalize:
        f = f / f.sum()
    return f


def upfirdn2d(x, f, up=1, down=1, padding=(0, 0, 0, 0), gain=1.0):
    """Upsample by zero insertion, pad (negative crops), FIR-filter (true convolution), decimate."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0):x.shape[2] - max(-py1, 0), max(-px0, 0):x.shape[3] - max(-px1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip([0, 1])
    # Channels folded into the batch: one single-channel convolution instead of a depthwise
    # one, whose double backward (R1 penalty) is several times slower on CPU.
    # The decimation is the convolution's stride (no wasted outputs).
    x = F.conv2d(x.reshape(n * c, 1, *x.shape[2:]), f[None, None], stride=down)
    return x.reshape(n, c, *x.shape[2:])


def upsample2d(x, f, up=2):
    fw = f.shape[-1]
    p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True):
    """Convolution fused with FIR up/down-sampling; same result as the official op
    (docs/eg3d-reference.md 2.6)."""
    out_channels, in_per_group, kh, kw = w.shape
    fw = f.shape[-1] if f is not None else 1
    p0 = p1 = padding
    if up > 1:
        p0 += (fw + up - 1) // 2
        p1 += (fw - up) // 2
    if down > 1:
        p0 += (fw - down + 1) // 2
        p1 += (fw - down) // 2
    pad = (p0, p1, p0, p1)

    if kh == 1 and kw == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=pad)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kh == 1 and kw == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up * up)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=pad)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        # Transposed strided convolution, then the FIR filter on the zero-stuffed result.
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        q0, q1 = p0 - (kw - 1), p1 - (kw - up)
        pt = max(min(-q0, -q1), 0)
        x = _conv(x, w, stride=up, padding=[pt, pt], groups=groups, transpose=True,
                  flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=(q0 + pt, q1 + pt, q0 + pt, q1 + pt), gain=up * up)
        if down > 1:
            x = upfirdn2d(x, f, down=down)
        return x
    if p0 == p1 and p0 >= 0:
        return _conv(x, w, padding=[p0, p0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, torch.ones([1, 1], device=x.device), padding=pad)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True):
    """StyleGAN2 modulated convolution: per-sample weights scaled by styles, optionally demodulated."""
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise to avoid fp16 overflow (a pure rescaling, cancelled by demodulation).
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    w = dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down,
                            padding=padding, flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    if demodulate:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                        groups=batch, flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x


def normalize_2nd_moment(x, dim=1, eps=1e-8):
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
