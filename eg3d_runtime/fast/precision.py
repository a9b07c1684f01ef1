"""The arithmetic of the fast path: the names users choose from, and 'auto' decided by
measurement where the answer depends on the machine.

Why measure: a CPU that reports native bf16 kernels (AVX512-BF16, AMX) is not always faster in
bf16 on EG3D's shapes; on an AMD EPYC with AVX512-BF16 the bf16 super-resolution made frames
1.7x slower than float32 (whose big layers run as Winograd convolutions). So 'auto' times both
formats on the network's own layers once per machine and network shape, keeps the reduced format
only when it is clearly faster, and remembers the answer in the user's cache directory
(`precision.json`), so later starts pay nothing.
"""
import functools
import json
import os
import platform
import threading
import time

import torch

from ..files import atomic_write, cache_dir
from . import conv as fc
from .blocks import FoldedBlock

NAMES = ('auto', 'fp32', 'bf16', 'fp16')
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# A reduced format is chosen only when it takes at most this fraction of float32's time: a tie
# within timing noise keeps float32, which is exact to ~1e-6.
MARGIN = 0.9

_lock = threading.Lock()
_memory = {}                 # key -> record, for this process


def name_of(dtype):
    """torch dtype -> 'fp32' | 'bf16' | 'fp16'."""
    return {v: k for k, v in DTYPES.items()}[dtype]


def check_name(name):
    if name not in NAMES:
        raise ValueError(f"unknown precision '{name}' (choose from {', '.join(NAMES)})")
    return name


def cpu_supports_bf16():
    """True where oneDNN has native bf16 kernels (AVX512-BF16 / AMX); elsewhere bf16 is emulated
    and always slower than float32, so 'auto' does not even measure it. $EG3D_CPU_BF16 (0 or 1)
    overrides the probe (the tests simulate both answers with it)."""
    override = os.environ.get('EG3D_CPU_BF16')
    if override in ('0', '1'):
        return override == '1'
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


@functools.lru_cache(maxsize=None)
def _cpu_model():
    """Read once: `machine_key` is asked on every frame that resolves 'auto'."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key():
    """What a measurement depends on besides the network: processor, torch build, threads."""
    return f'{_cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads'


def cache_file():
    return cache_dir() / 'precision.json'


def _read_cache():
    try:
        data = json.loads(cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def measured_choice(shape_key, reduced, make_runner, repeats=2):
    """'fp32' or `reduced` for a network part of shape `shape_key` on this machine.

    `make_runner(dtype)` returns a function that runs a representative piece of that part once;
    it is used only when neither this process nor the cache file knows the answer. Returns the
    record {'choice', 'fp32_ms', '<reduced>_ms'} (best times of the representative piece)."""
    key = f'{machine_key()} | {shape_key}'
    with _lock:
        record = _memory.get(key) or _read_cache().get(key)
        if not (isinstance(record, dict) and record.get('choice') in ('fp32', reduced)):
            runners = {name: make_runner(DTYPES[name]) for name in ('fp32', reduced)}
            for run in runners.values():
                run()                              # warm-up: allocations, kernel choice
            times = {name: float('inf') for name in runners}
            for _ in range(repeats):               # interleaved, so drift hits both alike
                for name, run in runners.items():
                    t0 = time.perf_counter()
                    run()
                    times[name] = min(times[name], time.perf_counter() - t0)
            choice = reduced if times[reduced] < MARGIN * times['fp32'] else 'fp32'
            record = {'choice': choice, **{f'{n}_ms': round(t * 1e3, 3) for n, t in times.items()}}
            data = _read_cache()
            data[key] = record
            try:
                atomic_write(cache_file(), json.dumps(data, indent=1, sort_keys=True))
            except OSError:
                pass                               # an unwritable cache only costs a re-measure
        _memory[key] = record
        return record


def superresolution_runner(G, device, dtype, winograd, patch=16):
    """A function running the super-resolution blocks of G, folded for a random w, on a small
    patch: both formats run the same layers (same methods) on the same pixels, so their time
    ratio is the full frame's, at a fraction of its cost."""
    sr = G.superresolution
    # Its own generator: a measurement must not move the random numbers a frame draws next.
    rng = torch.Generator(device).manual_seed(0)
    ws3 = torch.randn(1, G.w_dim, device=device, generator=rng).expand(3, -1)
    b0 = FoldedBlock(sr.block0, ws3, 'none', device, dtype, winograd, 64, sr.input_resolution)
    b1 = FoldedBlock(sr.block1, ws3, 'none', device, dtype, winograd, 64, None)
    size = min(patch, sr.input_resolution)
    x = torch.randn(size, size, sr.block0.conv0.in_channels, device=device, generator=rng)
    workspace = fc.Workspace()

    def run():
        h, img = b0(x, x[..., :3], workspace, 'b0')
        b1(h, img, workspace, 'b1')
    return run


def auto_name(G, device, part, winograd):
    """What 'auto' means for `part` ('backbone' | 'sr') of generator G on `device` (see
    fast.path.FastOptions): fp32 backbone; fp16 super-resolution on CUDA; on a CPU bf16 where
    native and measured faster, else fp32."""
    if part == 'backbone':
        return 'fp32'
    if device.type == 'cuda':
        return 'fp16'
    if not cpu_supports_bf16():
        return 'fp32'
    sr = G.superresolution
    shape = (type(sr).__name__, sr.input_resolution, sr.img_resolution,
             tuple(tuple(p.shape) for p in sr.parameters()))
    record = measured_choice(f'sr {shape}', 'bf16',
                             lambda dtype: superresolution_runner(G, device, dtype, winograd))
    return record['choice']


def add_option(parser):
    """The command-line tools' `--precision`."""
    parser.add_argument('--precision', choices=NAMES, default='auto',
                        help="arithmetic of backbone and super-resolution (default auto: fp16 "
                             "super-resolution on CUDA, bf16 on CPUs where measured faster, "
                             "else fp32)")


def describe(in_use):
    """{'backbone': 'fp32', 'superresolution': 'bf16'} -> 'backbone fp32, super-resolution bf16'."""
    return f"backbone {in_use['backbone']}, super-resolution {in_use['superresolution']}"


def forget():
    """Drop this process's memory of measurements (tests; a changed machine setting)."""
    with _lock:
        _memory.clear()


__all__ = ['NAMES', 'DTYPES', 'MARGIN', 'name_of', 'check_name', 'cpu_supports_bf16',
           'machine_key', 'cache_file', 'measured_choice', 'superresolution_runner',
           'auto_name', 'add_option', 'describe', 'forget']
