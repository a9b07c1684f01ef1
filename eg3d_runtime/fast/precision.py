"""The arithmetic of the fast path: the names users choose from, and 'auto' decided by
measurement where the answer depends on the machine.

Why measure: a CPU that reports native bf16 kernels (AVX512-BF16, AMX) is not always faster in
bf16 on EG3D's shapes; on an AMD EPYC with AVX512-BF16 the bf16 super-resolution made frames
1.7x slower than float32, whose big layers run as Winograd convolutions. So 'auto' times both
formats on the network's own super-resolution once per machine and network shape, keeps the
reduced format only when it is clearly faster, and remembers the answer in the user's cache
directory (`precision.json`), so later starts pay nothing.

What is timed is what a frame runs: the super-resolution of one sample at the size a frame at
the network's neural rendering resolution feeds it, through the same functions
(fast/superresolution.py), so every layer takes the same method (Winograd, direct, transposed)
on the same sizes. (The first version timed a 16x16 patch, where float32 fell below the
Winograd threshold and ran direct convolutions: bf16 won the patch and lost the frame.)

It compares the CPU time of the process, not wall time: both formats run on the same threads
in the same way, so CPU time is their work, while on a shared machine wall time mostly measures
the other processes (measured at a load average of 17 on 2 cores, full-size ffhq: wall minima
2102 ms fp32, 2115 ms bf16; CPU time 1777 ms, 1133 ms, the same as on an idle machine).
"""
import functools
import json
import os
import platform
import threading
import time

import torch

from ..arguments import PRECISIONS
from ..files import atomic_write, cache_dir
from . import conv as fc
from . import superresolution as fsr

NAMES = PRECISIONS     # the command lines offer them before torch loads
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# A reduced format is chosen only when it takes at most this fraction of float32's time: a tie
# within timing noise keeps float32, which is exact to ~1e-6.
MARGIN = 0.9
# Version of the measurement, part of every record's key: records an older measurement made
# are ignored (and dropped when the file is next written). 2: full-size super-resolution;
# 3: the kernels changed what wins (transposed up-sampling, 16-bit outputs kept, row strips).
VERSION = 3
# Timing rounds (each format once per round, interleaved) after one warm-up run each; after two
# rounds a format taking under 1/CLEAR of the other's time decides without the third.
ROUNDS = 3
CLEAR = 1.5

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


def _key_prefix():
    return f'v{VERSION} | '


def _time_formats(runners, rounds, clock=time.process_time):
    """{name: [seconds of `clock`]} of interleaved runs (drift hits every format alike), after a
    warm-up run each (allocations, kernel choice); stops after two rounds where the minima
    differ by more than CLEAR either way (noise only ever adds time, so another round would not
    turn it)."""
    for run in runners.values():
        run()
    times = {name: [] for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            t0 = clock()
            run()
            times[name].append(clock() - t0)
        best = sorted(min(t) for t in times.values())
        if r >= 1 and best[-1] > CLEAR * best[0]:
            break
    return times


def measured_choice(shape_key, reduced, make_runner, rounds=ROUNDS):
    """'fp32' or `reduced` for a network part of shape `shape_key` on this machine.

    `make_runner(dtype)` returns a function that runs that part once as a frame does; it is used
    only when neither this process nor the cache file knows the answer. Returns the record
    {'choice', 'fp32_ms', '<reduced>_ms', 'rounds'} (minima of CPU time over the rounds)."""
    key = f'{_key_prefix()}{machine_key()} | {shape_key}'
    with _lock:
        record = _memory.get(key) or _read_cache().get(key)
        if not (isinstance(record, dict) and record.get('choice') in ('fp32', reduced)):
            runners = {name: make_runner(DTYPES[name]) for name in ('fp32', reduced)}
            times = _time_formats(runners, rounds)
            best = {name: min(t) for name, t in times.items()}
            choice = reduced if best[reduced] < MARGIN * best['fp32'] else 'fp32'
            record = {'choice': choice, 'rounds': len(times['fp32']),
                      **{f'{n}_ms': round(t * 1e3, 3) for n, t in best.items()}}
            data = {k: v for k, v in _read_cache().items() if k.startswith(_key_prefix())}
            data[key] = record
            try:
                atomic_write(cache_file(), json.dumps(data, indent=1, sort_keys=True))
            except OSError:
                pass                               # an unwritable cache only costs a re-measure
        _memory[key] = record
        return record


def superresolution_runner(G, device, dtype, winograd, workspace=None):
    """A function running G's super-resolution as a frame at G's neural rendering resolution
    does, in `dtype`: one sample, folded for a random w (fast/superresolution.py)."""
    sr = G.superresolution
    noise_mode = G.rendering_kwargs.get('superresolution_noise_mode', 'none')
    size = int(G.neural_rendering_resolution)
    # Its own generator: a measurement must not move the random numbers a frame draws next.
    rng = torch.Generator(device).manual_seed(0)
    w = torch.randn(G.w_dim, device=device, generator=rng)
    folded = [fsr.fold(sr, w, noise_mode, device, dtype, winograd)]
    features = torch.randn(1, size, size, sr.block0.in_channels, device=device, generator=rng)
    workspace = workspace or fc.Workspace()

    def run():
        with torch.random.fork_rng(devices=[]):    # 'random' noise draws numbers
            fsr.run(sr, folded, features, workspace)
    return run


def auto_name(G, device, part, winograd):
    """What 'auto' means for `part` ('backbone' | 'sr') of generator G on `device` (see
    engine.Session.dtype): fp32 backbone; fp16 super-resolution on CUDA; on a CPU bf16 where
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
    shape += (int(G.neural_rendering_resolution),
              G.rendering_kwargs.get('superresolution_noise_mode', 'none'))
    workspace = fc.Workspace()                # one set of buffers for both formats
    record = measured_choice(f'sr {shape}', 'bf16', lambda dtype: superresolution_runner(
        G, device, dtype, winograd, workspace))
    return record['choice']


def forget():
    """Drop this process's memory of measurements (tests; a changed machine setting)."""
    with _lock:
        _memory.clear()


__all__ = ['NAMES', 'DTYPES', 'MARGIN', 'VERSION', 'name_of', 'check_name', 'cpu_supports_bf16',
           'machine_key', 'cache_file', 'measured_choice', 'superresolution_runner',
           'auto_name', 'forget']
