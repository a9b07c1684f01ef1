"""Convolutions with fixed (already folded, fold.py) weights for the fast inference paths, run on
NHWC images ([H, W, C], channels last), each followed by its epilogue (bias, noise, leaky ReLU,
clamp). The method is chosen per layer (`choose_method`):

- on CPUs the up-sampling convolution with many input channels runs as the reference op does,
  a transposed strided 3x3 convolution (9 taps per INPUT pixel, a quarter of the phase form's)
  then the FIR filter as a depthwise 4x4 convolution: measured 2-2.5x faster than the phase
  form as Winograd for 256-512 input channels (and no 16x larger Winograd weights per w);
  elsewhere as one 3x3 convolution per output phase (kernel_forms.py);
- 3x3 convolutions run either as a direct convolution (oneDNN/cuDNN, channels last) or, on CPUs,
  as Winograd F(4x4, 3x3) (kernel_forms.py) in row strips: 36 batched GEMMs instead of 144
  multiplications per 4x4 output tile, with the epilogue applied to each strip while it is
  still in cache;
- on CPUs, oneDNN writes a direct convolution (and the FIR after a transposed one) straight into
  the output buffer, bias and noise added in the same pass (`fused_conv_supported`); in a 16-bit
  format the result stays in that format for the next layer (no conversion passes);
- big intermediate images live in reusable buffers (`Workspace`), so a frame does not page-fault
  on fresh 100+ MB allocations (measured: a fresh 64 MB buffer costs 7x its reuse here).

Everything is plain PyTorch and runs unchanged on CUDA (where the direct path is used).
"""
import functools

import torch
import torch.nn.functional as F

from .kernel_forms import (polyphase_weights, winograd_matrices, winograd_polyphase_weights,
                           winograd_weights)
from .parallel import parallel_map, thread_buffer

# Target size of one strip's transformed input (bytes); 2-4 MB measured best on 2 cores.
STRIP_BYTES = 3 << 20
# Up-sampling convolutions with at least this many input channels run transposed on CPUs; with
# fewer (the super-resolution's first layer, 32) the phase form as Winograd was faster.
TRANSPOSED_MIN_CHANNELS = 128
# Output bytes of one row strip of a oneDNN convolution on CPU workers (2 MB: 16-row strips of
# the 512x512x128 bf16 layer, measured best of 2-32 strips).
FUSED_STRIP_BYTES = 2 << 20
# Input rows of a transposed convolution's strip at least (each strip also recomputes the row
# before and after it).
TRANSPOSED_STRIP_MIN_ROWS = 32


@functools.lru_cache(maxsize=None)
def fused_conv_supported(dtype):
    """Whether oneDNN can add a convolution's result (+ bias) into an existing buffer in `dtype`
    on this CPU (a private op, `mkldnn._convolution_pointwise_`; 16-bit formats need CPU
    support): probed once per format against F.conv2d, else convolutions return a new tensor
    that is copied into the buffer."""
    try:
        g = torch.Generator().manual_seed(0)     # a probe must not move the frame's numbers
        x = torch.randn(1, 4, 5, 5, generator=g).to(dtype).contiguous(
            memory_format=torch.channels_last)
        w = torch.randn(3, 4, 3, 3, generator=g).to(dtype).contiguous(
            memory_format=torch.channels_last)
        b = torch.randn(3, generator=g).to(dtype)
        out = torch.ones(1, 3, 5, 5, dtype=dtype).contiguous(memory_format=torch.channels_last)
        _fused_conv(out, x, w, b, 1, padding=(1, 1))
        ref = F.conv2d(x.float(), w.float(), b.float(), padding=1) + 1
        return bool(torch.allclose(out.float(), ref, rtol=2e-2, atol=2e-2))
    except Exception:
        return False


def _fused_conv(out, x, weight, bias, groups, padding=(0, 1)):
    """out += conv(x, weight) + bias, in place (NCHW views, channels last); by default padded
    along the width only (row strips bring their neighbouring rows)."""
    torch.ops.mkldnn._convolution_pointwise_(out, x, weight, bias, list(padding), [1, 1],
                                             [1, 1], groups, 'add', 1.0, None, [], None)


def _nchw(x):
    """[H, W, C] -> the channels-last [1, C, H, W] view oneDNN takes."""
    return x.permute(2, 0, 1).unsqueeze(0)


def _rows(x, lo, hi):
    """Rows lo .. hi of an NHWC image, zero rows where they fall outside it."""
    h = x.shape[0]
    if lo >= 0 and hi <= h:
        return x[lo:hi]
    padded = x.new_zeros(hi - lo, *x.shape[1:])
    padded[max(lo, 0) - lo:min(hi, h) - lo].copy_(x[max(lo, 0):min(hi, h)])
    return padded


class Workspace:
    """Reusable buffers for big intermediate images, so frames avoid fresh allocations.
    A buffer is never freed while the workspace lives (CUDA graphs may point at it); a new
    shape gets a new buffer."""

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape, dtype, device):
        key = (name, tuple(shape), dtype, str(device))
        buf = self._buffers.get(key)
        if buf is None:
            buf = torch.empty(tuple(shape), dtype=dtype, device=device)
            self._buffers[key] = buf
        return buf

    def clear(self):
        self._buffers.clear()

    def nbytes(self):
        return sum(b.numel() * b.element_size() for b in self._buffers.values())


class FixedConv:
    """One sample's convolution with folded weights + epilogue, on NHWC images.

    kind: 'conv3' (3x3, same size), 'up3' (3x3 up-sampling by 2) or 'conv1' (1x1).
    Epilogue: + bias, + noise (a [H, W] map or 'random' with a strength), leaky ReLU (slope 0.2)
    if `lrelu`, clamp to +-clamp. Gains are already folded into weights, bias and noise.
    """

    def __init__(self, kind, weight, bias, lrelu, clamp=None, noise=None, noise_strength=0.0,
                 method='direct', dtype=torch.float32, resample_filter=None):
        self.kind = kind
        self.lrelu = lrelu
        self.clamp = clamp
        self.noise = noise                      # None, a [H, W] tensor, or 'random'
        self.noise_strength = float(noise_strength)
        if kind == 'conv1':
            method = 'direct'
        if kind == 'up3' and method == 'direct':
            method = 'polyphase'
        if kind != 'up3' and method in ('polyphase', 'transposed'):
            method = 'direct'
        self.method = method
        self.dtype = dtype
        self.out_channels, self.in_channels = weight.shape[:2]
        self.bias = bias.float().contiguous()
        self.u_rhs = self.weight = None
        cpu = weight.device.type == 'cpu'
        # oneDNN writes into the output buffer; in a 16-bit format the output keeps it
        self.fused = cpu and method in ('direct', 'transposed') and kind != 'conv1' \
            and fused_conv_supported(dtype)
        self.out_dtype = dtype if self.fused else torch.float32
        if method == 'transposed':
            # the reference op's transposed convolution ([Ci, Co, 3, 3], not flipped), then its
            # FIR filter (flipped: upfirdn2d convolves) with the up-sampling gain 4, depthwise
            self.weight = weight.transpose(0, 1).to(dtype).contiguous(
                memory_format=torch.channels_last)
            fir = resample_filter.float().flip([0, 1]) * 4
            self.fir = fir.expand(self.out_channels, 1, *fir.shape).to(dtype).contiguous()
            self.conv_bias = self.bias.to(dtype)
            return
        if method == 'winograd':
            if kind == 'up3':
                self.u_rhs = winograd_polyphase_weights(weight, resample_filter).to(dtype)
            else:
                self.u_rhs = winograd_weights(weight).to(dtype)             # [36, Ci, Co']
            self._bias_w = self.bias.repeat(4) if kind == 'up3' else self.bias
            return
        if kind == 'up3':
            weight = polyphase_weights(weight, resample_filter)
        self.weight = weight.to(dtype).contiguous(memory_format=torch.channels_last)
        self.conv_bias = (self.bias.repeat(4) if kind == 'up3' else self.bias).to(dtype)

    # -- epilogue ---------------------------------------------------------------------------
    def _noise_map(self, h, w, device):
        """[h, w] noise this call adds: the const map, or random noise drawn here, on the
        calling thread, before any strip runs: strips drawing their own in worker threads would
        take the numbers in whatever order the threads run, and a seed would not fix the frame."""
        if isinstance(self.noise, str):
            return torch.randn(h, w, device=device) * self.noise_strength
        return self.noise

    def _epilogue(self, y, noise, r0=0):
        """In place on output rows [r0, r0 + y.shape[0]) of an NHWC image (bias not included);
        `noise` is _noise_map's map or None."""
        if noise is not None:
            y.add_(noise[r0:r0 + y.shape[0], :, None].to(y.dtype))
        if self.lrelu:
            F.leaky_relu_(y, 0.2)
        if self.clamp is not None:
            y.clamp_(-self.clamp, self.clamp)
        return y

    # -- running ----------------------------------------------------------------------------
    def __call__(self, x, out=None):
        """x [H, W, Ci] (NHWC, one sample) -> [H', W', Co]; `out` is an optional buffer."""
        h, w = x.shape[:2]
        ho, wo = (2 * h, 2 * w) if self.kind == 'up3' else (h, w)
        if out is None:
            out = torch.empty(ho, wo, self.out_channels, dtype=self.out_dtype, device=x.device)
        if self.method == 'winograd':
            if h % 4 == 0 and w % 4 == 0:
                return self._winograd(x, out)
            # Zero rows/columns beyond the image are what the 3x3 convolution sees anyway.
            hp, wpad = -h % 4, -w % 4
            s = 2 if self.kind == 'up3' else 1
            full = self._winograd(F.pad(x, (0, 0, 0, wpad, 0, hp)))
            out.copy_(full[:s * h, :s * w])
            return out
        if self.kind == 'conv1':
            # 1x1: a matrix product on the NHWC pixels (oneDNN's 1x1 path copies to NCHW).
            wmat = self.weight.reshape(self.out_channels, self.in_channels).t()
            pixels = x.reshape(-1, self.in_channels).to(self.dtype)
            if out.dtype == self.dtype:
                torch.addmm(self.conv_bias, pixels, wmat, out=out.view(-1, self.out_channels))
            else:
                out.view(-1, self.out_channels).copy_(torch.addmm(self.conv_bias, pixels, wmat))
            return self._epilogue(out, None)
        noise = self._noise_map(ho, wo, x.device)
        if self.fused:
            return self._fused(x, out, noise)
        xin = _nchw(x.to(self.dtype))
        weight, groups = self.weight, 1
        if self.method == 'transposed':
            xin = F.conv_transpose2d(xin, self.weight, stride=2)          # [1, Co, 2h+1, 2w+1]
            weight, groups = self.fir, self.out_channels
        y = F.conv2d(xin, weight, self.conv_bias, padding=1, groups=groups)[0].permute(1, 2, 0)
        if self.method == 'polyphase':                                     # [h, w, 4 Co]
            y = y.reshape(h, w, 2, 2, self.out_channels).permute(0, 2, 1, 3, 4)
            out.view(h, 2, w, 2, self.out_channels).copy_(y)
        else:
            out.copy_(y)
        return self._epilogue(out, noise)

    def _fused(self, x, out, noise):
        """CPU, oneDNN writing into `out`: row strips on the worker threads (each with one
        intra-op thread, so a core taken by another process only slows its own strips; measured
        18% faster than one two-thread call under load), small enough to stay in cache."""
        rows = max(2, FUSED_STRIP_BYTES // (out.shape[1] * out.shape[2] * out.element_size()))
        if self.method == 'transposed':    # whole input rows, two more per strip recomputed
            rows = max(rows + rows % 2, 2 * TRANSPOSED_STRIP_MIN_ROWS)
        strips = [(r0, min(r0 + rows, out.shape[0])) for r0 in range(0, out.shape[0], rows)]
        parallel_map(lambda strip: self._fused_strip(x, out, noise, *strip), strips, x.device)
        return out

    def _fused_strip(self, x, out, noise, r0, r1):
        """Output rows r0 .. r1 from the input rows they depend on (zeros beyond the image);
        padding only along the rows' width."""
        o = out[r0:r1]
        if noise is None:
            o.zero_()
        else:
            o.copy_(noise[r0:r1, :, None].expand_as(o))
        if self.method == 'transposed':
            # output rows [2a, 2b) filter rows 2a-1 .. 2b+1 of the transposed convolution,
            # which input rows a-1 .. b give; its first and last rows are not needed
            src = _nchw(_rows(x, r0 // 2 - 1, r1 // 2 + 1).to(self.dtype))
            src = F.conv_transpose2d(src, self.weight, stride=2)[:, :, 1:-1]
            weight, groups = self.fir, self.out_channels
        else:
            src = _nchw(_rows(x, r0 - 1, r1 + 1).to(self.dtype))
            weight, groups = self.weight, 1
        _fused_conv(_nchw(o), src, weight, self.conv_bias, groups)
        self._epilogue(o, None)

    def _winograd(self, x, out=None):
        h, w, ci = x.shape
        if out is None:
            s = 2 if self.kind == 'up3' else 1
            out = torch.empty(s * h, s * w, self.out_channels, dtype=torch.float32, device=x.device)
        co4 = self.u_rhs.shape[2]
        tw = w // 4
        th_total = h // 4
        th = max(1, min(th_total, STRIP_BYTES // (36 * tw * max(ci, co4) * 4)))
        strips = [(t0, min(th, th_total - t0)) for t0 in range(0, th_total, th)]
        noise = self._noise_map(out.shape[0], out.shape[1], x.device)
        parallel_map(lambda strip: self._winograd_strip(x, out, strip[0], strip[1], th, noise),
                     strips, x.device)
        return out

    def _winograd_strip(self, x, out, t0, n, th, noise):
        """Output tile rows t0 .. t0+n (4 image rows each)."""
        h, w, ci = x.shape
        co4 = self.u_rhs.shape[2]
        up = self.kind == 'up3'
        bt, at = winograd_matrices(str(x.device))
        tw = w // 4
        r0 = 4 * t0
        # Padded strip source: rows r0-1 .. r0+4n, columns -1 .. w (zeros outside the image).
        src = thread_buffer('winograd.src', (4 * th + 2, w + 2, ci), torch.float32, x.device)
        s = src[:4 * n + 2]
        s[:, 0].zero_()
        s[:, w + 1].zero_()
        lo, hi = max(r0 - 1, 0), min(r0 + 4 * n + 1, h)
        if r0 == 0:
            s[0].zero_()
        if r0 + 4 * n + 1 > h:
            s[4 * n + 1].zero_()
        s[lo - (r0 - 1):hi - (r0 - 1), 1:w + 1].copy_(x[lo:hi])
        wp = w + 2
        tiles = s.as_strided((6, 6, n, tw, ci), (wp * ci, ci, 4 * wp * ci, 4 * ci, 1),
                             s.storage_offset())
        d = tiles.contiguous().view(6, 6 * n * tw * ci)
        t = n * tw
        v = torch.matmul(bt, torch.mm(bt, d).view(6, 6, t * ci))          # [6, 6, T*Ci]
        m = torch.bmm(v.view(36, t, ci).to(self.dtype), self.u_rhs)        # [36, T, Co']
        m = m.float().view(6, 6 * t * co4)
        y = torch.matmul(at, torch.mm(at, m).view(4, 6, t * co4))          # [4, 4, T*Co']
        y = y.view(4, 4, n, tw, co4).add_(self._bias_w)
        if up:
            c = self.out_channels
            rows = out[2 * r0:2 * (r0 + 4 * n)]
            rows.view(n, 4, 2, tw, 4, 2, c).copy_(
                y.view(4, 4, n, tw, 2, 2, c).permute(2, 0, 4, 3, 1, 5, 6))
            self._epilogue(rows, noise, 2 * r0)
        else:
            rows = out[r0:r0 + 4 * n]
            rows.view(n, 4, tw, 4, co4).copy_(y.permute(2, 0, 3, 1, 4))
            self._epilogue(rows, noise, r0)


def choose_method(device, h_in, kind, winograd=True, min_tiles=64, in_channels=None):
    """Per layer: on CPU, up-sampling from TRANSPOSED_MIN_CHANNELS input channels transposed;
    Winograd where the image has enough 4x4 tiles to amortise the weight transform; else a
    direct convolution (transposed + FIR for up-sampling on CPU, the polyphase 3x3 form on
    CUDA, where cuDNN is fastest on plain 3x3 convolutions)."""
    if kind == 'conv1':
        return 'direct'
    if device.type == 'cpu':
        if kind == 'up3' and (in_channels or 0) >= TRANSPOSED_MIN_CHANNELS:
            return 'transposed'
        if winograd and h_in % 4 == 0 and (h_in // 4) ** 2 >= min_tiles:
            return 'winograd'
        return 'transposed' if kind == 'up3' else 'direct'
    return 'polyphase' if kind == 'up3' else 'direct'


__all__ = ['FixedConv', 'Workspace', 'fused_conv_supported', 'choose_method']
