"""`python -m eg3d_runtime.train ... --bench [STEPS]`: where the first training steps spend their
time and memory, as one table (H200 figures: docs/gpu-measurements.md).

It drives TrainingLoop's own pieces (construction, grid setup, steps with EMA, the fakes grid, the
network snapshot) in a temporary run directory that is deleted afterwards; no metrics. Memory is
the peak of each piece: CUDA allocated and reserved (the peak statistics are reset around each
piece), or the process RSS peak on the CPU.
"""
import contextlib
import statistics
import tempfile
import time

import torch

from ..memory import PeakMemory
from .loop import TrainingLoop, set_torch_backends

FIRST_TICK = 'first tick after "Training for"'


def _measured(device, fn):
    """(seconds, PeakMemory, result) of fn()."""
    start = time.perf_counter()
    with PeakMemory(device) as mem:
        result = fn()
    return time.perf_counter() - start, mem, result


def _out_of_memory(fn):
    """Runs fn(); its CUDA out-of-memory message, or None. The cache is emptied after the
    handler, when the failed piece's tensors are free."""
    try:
        fn()
        return None
    except torch.OutOfMemoryError as e:
        message = str(e).splitlines()[0]
    torch.cuda.empty_cache()
    return message


def _gb(nbytes):
    return f'{nbytes / 2**30:.2f}'


class Table:
    """Rows (what, seconds text, peak, reserved, note) under a header of settings; the format
    tools/gpu_check.py reads."""

    def __init__(self, header, cuda):
        self.header, self.cuda, self.rows = header, cuda, []
        self.failed = False

    def add(self, what, seconds, mems=(), note=''):
        """`mems`: PeakMemory results whose maximum is the row's peak."""
        mems = list(mems)
        peak = _gb(max(m.peak for m in mems)) if mems else '-'
        reserved = _gb(max(m.reserved for m in mems)) if mems and self.cuda else '-'
        text = seconds if isinstance(seconds, str) else f'{seconds:.2f}'
        self.rows.append((what, text, peak, reserved, note))

    def fail(self, what, seconds, message):
        self.failed = True
        self.add(what, seconds, note=f'failed: {message[:100]}')

    def text(self):
        memory = 'CUDA peak allocated / reserved GB' if self.cuda else 'process RSS peak GB'
        names = ('piece', 'seconds', 'peak GB', 'reserved GB', '')
        width = max(len(r[0]) for r in self.rows + [names])
        lines = list(self.header) + [f'memory: {memory}', '']
        for row in [names] + self.rows:
            lines.append(f'{row[0]:<{width}}  {row[1]:>8}  {row[2]:>8}  {row[3]:>11}  '
                         f'{row[4]}'.rstrip())
        return '\n'.join(lines)


def _header(c, cfg, device, steps):
    res = c['training_set_kwargs']['resolution']
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    return [f'training bench: {cfg} {res}x{res}, batch {c["batch_size"]} (batch_gpu '
            f'{c["batch_gpu"]}), {steps} steps, {device} ({name}), torch {torch.__version__}',
            f'torch.backends.cudnn.benchmark={torch.backends.cudnn.benchmark}  '
            f'cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}  '
            f'cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}']


def _train(loop, steps, table):
    """Runs the steps; rows for the first tick, each phase of the first step, the later steps."""
    phase_mem = {}

    @contextlib.contextmanager
    def watch(name):
        with PeakMemory(loop.device) as mem:
            yield
        phase_mem[name] = mem

    loop.watch_phase = watch
    print(f'Training for {steps} steps (bench)...', flush=True)
    start = time.perf_counter()
    step_seconds, later = [], {}
    for batch_idx in range(steps):
        step_start = time.perf_counter()
        phase_mem.clear()
        for phase in loop.phases:
            phase.seconds = None
        loop._train_batch(batch_idx)
        if loop.device.type == 'cuda':
            torch.cuda.synchronize(loop.device)
        step_seconds.append(time.perf_counter() - step_start)
        ran = [p for p in loop.phases if p.seconds is not None]
        if batch_idx == 0:
            table.add(FIRST_TICK, time.perf_counter() - start, phase_mem.values())
            for p in ran:
                table.add(f'  step 1 {p.name}', p.seconds, [phase_mem[p.name]])
        for p in ran if batch_idx else []:
            later.setdefault(p.name, []).append((p.seconds, phase_mem[p.name]))
    for name, runs in later.items():
        table.add(f'  steps 2-{steps} {name} (median s, {len(runs)} runs)',
                  statistics.median(s for s, _ in runs), [m for _, m in runs])
    per_kimg = statistics.median(step_seconds[1:]) / loop.batch_size * 1000
    table.add(f'steady sec/kimg (median of steps 2-{steps})', per_kimg)


def run_bench(c, cfg, device, steps):
    """Prints the table; 0, or 1 when a piece ran out of memory."""
    set_torch_backends(c)
    table = Table(_header(c, cfg, device, steps), device.type == 'cuda')
    with tempfile.TemporaryDirectory(prefix='eg3d-train-bench-') as run_dir:
        c = dict(c, run_dir=run_dir)
        seconds, mem, loop = _measured(device, lambda: TrainingLoop(run_dir, c, device=device))
        table.add('construct (data, networks, phases)', seconds, [mem])
        seconds, mem, _ = _measured(device, loop._grid_setup)
        table.add('grid setup (grid {}x{}, reals.png)'.format(*loop.grid_size), seconds, [mem])
        error = _out_of_memory(lambda: _train(loop, steps, table))
        if error:
            table.fail('training steps', '-', error)
        for what, fn in ((f'_save_fakes (grid {loop.grid_size[0]}x{loop.grid_size[1]})',
                          loop._save_fakes), ('_save_network (snapshot)', loop._save_network)):
            start, measured = time.perf_counter(), []
            # _out_of_memory calls the lambda at once.
            error = _out_of_memory(lambda: measured.extend(_measured(device, fn)))  # noqa: B023
            if error:
                table.fail(what, time.perf_counter() - start, error)
            else:
                table.add(what, measured[0], [measured[1]])
    print(table.text() + f'\n(temporary run directory {run_dir} deleted)', flush=True)
    return 1 if table.failed else 0
