"""The process and device memory figures of the training log and the benchmarks."""
import builtins
import mmap
import resource

import numpy as np
import torch

from eg3d_runtime import memory


def test_cpu_memory_gb_is_the_resident_size():
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert 0.01 < memory.cpu_memory_gb() <= peak_gb * 1.01


def test_without_procfs_the_peak_resident_size_stands_in(monkeypatch):
    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith('/proc/'):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', no_proc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert memory.rss_bytes() == peak


def test_peak_memory_on_cpu_sees_a_block_allocation():
    # A fresh anonymous mapping, written through: pages malloc kept resident from earlier
    # tests cannot stand in for it (in CI numpy's 64 MiB came back from such a pool).
    with memory.PeakMemory(torch.device('cpu')) as mem:
        block = mmap.mmap(-1, 64 * 2**20)
        block.write(b'\x01' * len(block))
    assert np.frombuffer(block, np.uint8).all()
    assert mem.peak - mem.base >= 60 * 2**20 and mem.reserved == 0
    assert mem.peak_mb == mem.peak / 2**20


def test_work_past_the_available_memory_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(memory, 'available_memory', lambda device='cpu': 3 * memory.GIB)
    memory.require(2 * memory.GIB, '--nrr 512', 'use a smaller --nrr')
    try:
        memory.require(30 * memory.GIB, '--nrr 4096', 'use a smaller --nrr')
    except memory.InsufficientMemory as e:
        assert str(e) == ('--nrr 4096: needs about 30.0 GiB of memory, only 3.0 GiB available '
                          '(use a smaller --nrr)')
    else:
        raise AssertionError('not refused')
    monkeypatch.setattr(memory, 'available_memory', lambda device='cpu': None)   # unknown
    memory.require(10 ** 15, 'x', 'y')


def test_available_memory_is_read_from_the_system():
    free = memory.available_memory()
    assert free is None or 0 < free < 2 ** 50


def test_an_address_space_limit_is_what_is_available(monkeypatch):
    limit = memory._proc_kib('/proc/self/status', 'VmSize:') + memory.GIB
    real = resource.getrlimit
    monkeypatch.setattr(resource, 'getrlimit', lambda which: (limit, limit)
                        if which == resource.RLIMIT_AS else real(which))
    assert memory.GIB - 64 * 2 ** 20 < memory.available_memory() <= memory.GIB
