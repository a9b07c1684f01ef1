"""Convolutions with fixed (already modulated) weights for the fast inference paths.

When w is known, a StyleGAN2 modulated convolution is an ordinary convolution whose weights are
`weight * styles`, demodulated, times the activation gain; bias, noise, leaky ReLU and clamp form
an epilogue. This module turns a `SynthesisLayer` / `ToRGBLayer` and one w into such a fixed
convolution (`fold_layer`, `fold_torgb`) and runs it on NHWC images ([H, W, C], channels last):

- the up-sampling convolution (transposed 3x3 convolution followed by the 4x4 FIR filter) is
  rewritten as ONE 3x3 convolution at the input resolution with 4x the output channels, one group
  per output phase, followed by a pixel shuffle (the phase kernels are derived numerically from
  the reference op, so the two agree by construction);
- on CPUs the up-sampling convolution with many input channels runs as the reference op does,
  a transposed strided 3x3 convolution (9 taps per INPUT pixel, a quarter of the phase form's)
  then the FIR filter as a depthwise 4x4 convolution: measured 2-2.5x faster than the phase
  form as Winograd for 256-512 input channels (and no 16x larger Winograd weights per w);
- 3x3 convolutions run either as a direct convolution (oneDNN/cuDNN, channels last) or, on CPUs,
  as Winograd F(4x4, 3x3) in row strips: 36 batched GEMMs instead of 144 multiplications per
  4x4 output tile (4x fewer, error ~3e-6 relative in float32), with the epilogue applied to
  each strip while it is still in cache;
- on CPUs, oneDNN writes a direct convolution (and the FIR after a transposed one) straight into
  the output buffer, bias and noise added in the same pass (`fused_conv_supported`); in a 16-bit
  format the result stays in that format for the next layer (no conversion passes);
- big intermediate images live in reusable buffers (`Workspace`), so a frame does not page-fault
  on fresh 100+ MB allocations (measured: a fresh 64 MB buffer costs 7x its reuse here).

Everything is plain PyTorch and runs unchanged on CUDA (where the direct path is used).
"""
import functools
import weakref

import torch
import torch.nn.functional as F

from .. import ops
from .parallel import parallel_map, thread_buffer

# Winograd F(4x4, 3x3) with interpolation points 0, 1, -1, 2, -2, inf (Lavin & Gray 2016).
_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))

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


@functools.lru_cache(maxsize=None)
def _matrices(device_str):
    device = torch.device(device_str)
    bt = torch.tensor(_BT, dtype=torch.float32, device=device)
    at = torch.tensor(_AT, dtype=torch.float32, device=device)
    return bt, at


@functools.lru_cache(maxsize=None)
def _winograd_kernel_matrix(device_str):
    """[36, 9]: row (xi, nu) of G g G^T as a combination of the 9 taps of g."""
    g = torch.tensor(_G, dtype=torch.float64)
    return torch.kron(g, g).float().to(torch.device(device_str))


def winograd_weights(weight):
    """Correlation kernel [Co, Ci, 3, 3] -> transformed weights [36, Ci, Co], the right-hand
    side of the batched GEMM (contiguous: measured 10% faster than a transposed view)."""
    co, ci = weight.shape[:2]
    k = _winograd_kernel_matrix(str(weight.device))
    taps = weight.float().transpose(0, 1).reshape(ci * co, 9)
    return torch.mm(k, taps.t()).view(36, ci, co)


@functools.lru_cache(maxsize=8)
def _phase_taps(filter_key):
    """[3, 3, 2, 2, 3, 3] map from a 3x3 kernel tap (a, b) of the up-sampling convolution to the
    3x3 correlation kernel of each output phase (py, px): output pixel (2r+py, 2c+px) =
    sum_{dy,dx} P[py,px,dy,dx] * x[r+dy-1, c+dx-1]. Obtained from impulse responses of the
    reference op (ops.conv2d_resample, up=2, padding=1, flip_weight=False)."""
    f = torch.tensor(filter_key, dtype=torch.float64).reshape(4, 4)
    size, centre = 9, 4
    taps = torch.zeros(3, 3, 2, 2, 3, 3, dtype=torch.float64)
    x = torch.zeros(1, 1, size, size, dtype=torch.float64)
    x[0, 0, centre, centre] = 1
    for a in range(3):
        for b in range(3):
            w = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
            w[0, 0, a, b] = 1
            y = ops.conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False)[0, 0]
            for py in range(2):
                for px in range(2):
                    for dy in range(3):
                        for dx in range(3):
                            r, c = centre - (dy - 1), centre - (dx - 1)
                            taps[a, b, py, px, dy, dx] = y[2 * r + py, 2 * c + px]
    return taps


_FILTER_FACTS = {}     # id(filter) -> (weak reference, version, facts)


def _filter_facts(f):
    """(whether f is the standard [1, 3, 3, 1] filter, f's values as a tuple), read from the
    device once per filter tensor and version: later calls make no host synchronisation, so
    folding a block can be captured in a CUDA graph after one eager run."""
    hit = _FILTER_FACTS.get(id(f))
    if hit is not None and hit[0]() is f and hit[1] == f._version:
        return hit[2]
    host = f.detach().double().cpu()
    ref = ops.setup_filter([1, 3, 3, 1]).double()
    facts = (host.shape == ref.shape and bool(torch.allclose(host, ref, atol=1e-7)),
             tuple(host.flatten().tolist()))
    key = id(f)
    _FILTER_FACTS[key] = (weakref.ref(f, lambda _ref: _FILTER_FACTS.pop(key, None)), f._version,
                          facts)
    return facts


def _filter_key(resample_filter):
    return _filter_facts(resample_filter)[1]


@functools.lru_cache(maxsize=16)
def _phase_matrix(filter_key, device_str):
    """[9 (a, b), 4 (py, px) * 9 (dy, dx)] as float32 on a device."""
    return _phase_taps(filter_key).reshape(9, 36).float().to(torch.device(device_str))


@functools.lru_cache(maxsize=16)
def _winograd_phase_matrix(filter_key, device_str):
    """[36 * 4, 9]: Winograd-transformed phase kernels ((xi, nu), (py, px)) from the 9 taps."""
    taps = _phase_taps(filter_key).reshape(9, 4, 9)                       # ab, pq, yx
    g = torch.tensor(_G, dtype=torch.float64)
    k = torch.kron(g, g)                                                   # [36, 9 (yx)]
    m = torch.einsum('zy,apy->zpa', k, taps)                               # [36, 4, 9]
    return m.reshape(144, 9).float().to(torch.device(device_str))


def polyphase_weights(weight, resample_filter):
    """Up-sampling conv weight [Co, Ci, 3, 3] -> phase kernels [4*Co, Ci, 3, 3] ordered (py, px, o)."""
    co, ci = weight.shape[:2]
    m = _phase_matrix(_filter_key(resample_filter), str(weight.device))
    p = torch.mm(weight.float().reshape(co * ci, 9), m).view(co, ci, 2, 2, 3, 3)
    return p.permute(2, 3, 0, 1, 4, 5).reshape(4 * co, ci, 3, 3)


def winograd_polyphase_weights(weight, resample_filter):
    """Up-sampling conv weight [Co, Ci, 3, 3] -> Winograd weights of its phase kernels,
    [36, Ci, 4*Co (py, px, o)], the right-hand side of the batched GEMM."""
    co, ci = weight.shape[:2]
    m = _winograd_phase_matrix(_filter_key(resample_filter), str(weight.device))
    taps = weight.float().transpose(0, 1).reshape(ci * co, 9)
    u = torch.mm(m, taps.t()).view(36, 4, ci, co)
    return u.permute(0, 2, 1, 3).reshape(36, ci, 4 * co)


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
        bt, at = _matrices(str(x.device))
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


def is_default_filter(f):
    return _filter_facts(f)[0]


def upsample_image(img, resample_filter):
    """Skip-image up-sampling on NHWC; exact separable form for the standard filter."""
    if is_default_filter(resample_filter):
        return upsample2x(img)
    x = img.permute(2, 0, 1).unsqueeze(0)
    return ops.upsample2d(x, resample_filter)[0].permute(1, 2, 0)


_WEIGHT_SQUARES = weakref.WeakKeyDictionary()     # layer -> ((data_ptr, version), [Co, Ci])


def _weight_squares(layer):
    """[Co, Ci]: the sum of the squared 3x3 taps of each kernel, computed once per weight tensor
    and version, so that a w's demodulation is a matrix-vector product: sum over i and taps of
    (W_oik s_i)^2 = sum_i s_i^2 sum_k W_oik^2."""
    weight = layer.weight
    key = (weight.data_ptr(), weight._version)
    hit = _WEIGHT_SQUARES.get(layer)
    if hit is None or hit[0] != key:
        hit = (key, weight.detach().float().square().sum(dim=[2, 3]))
        _WEIGHT_SQUARES[layer] = hit
    return hit[1]


def fold_layer(layer, w, noise_mode, method='direct', dtype=torch.float32):
    """A `SynthesisLayer` and one w [w_dim] -> FixedConv with modulation, demodulation and the
    activation gain folded into plain weights (one pass over the weights: all three are one
    factor per input and output channel)."""
    styles = layer.affine(w.unsqueeze(0))[0].float()
    gain = layer.act_gain
    demod = (_weight_squares(layer) @ styles.square() + 1e-8).rsqrt()
    weight = layer.weight.float() * (demod[:, None] * gain * styles)[:, :, None, None]
    bias = layer.bias.float() * gain
    noise, strength = None, 0.0
    if layer.use_noise and noise_mode == 'const':
        noise = (layer.noise_const.float() * (layer.noise_strength.float() * gain))
    elif layer.use_noise and noise_mode == 'random':
        noise, strength = 'random', float(layer.noise_strength.detach()) * gain
    kind = 'up3' if layer.up > 1 else 'conv3'
    if weight.shape[-1] != 3:
        raise ValueError('fast path supports 3x3 synthesis layers only')
    return FixedConv(kind, weight, bias, lrelu=layer.activation == 'lrelu', clamp=layer.conv_clamp,
                     noise=noise, noise_strength=strength, method=method, dtype=dtype,
                     resample_filter=layer.resample_filter)


def fold_torgb(layer, w, dtype=torch.float32):
    styles = layer.affine(w.unsqueeze(0))[0].float() * layer.weight_gain
    weight = layer.weight.float() * styles.reshape(1, -1, 1, 1)
    return FixedConv('conv1', weight, layer.bias.float(), lrelu=False, clamp=layer.conv_clamp,
                     dtype=dtype)


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


def params_signature(module):
    """Cheap identity of a module's weights: changes when any tensor is replaced or modified."""
    return tuple((t.data_ptr(), t._version, t.device.type) for t in
                 list(module.parameters()) + list(module.buffers()))


__all__ = ['FixedConv', 'Workspace', 'fold_layer', 'fold_torgb', 'winograd_weights',
           'fused_conv_supported',
           'polyphase_weights', 'upsample2x', 'upsample_image', 'choose_method',
           'params_signature']
