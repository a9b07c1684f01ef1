"""Memory of this process and its device, for the figures the training log and the benchmarks
print (the resident size now, the status line's `cpumem`, and the peak during a block), and what
the machine has left, which work whose size grows with an option is checked against before it
allocates (`require`). torch is imported where it is used, so the commands' checks load fast."""
import os
import resource
import sys
import threading

GIB = 2 ** 30


class InsufficientMemory(Exception):
    """Work that would need more memory than the machine has; one line naming the option."""


def available_memory(device='cpu'):
    """Bytes the system can still give (Linux MemAvailable, less where this process's address
    space is limited: `ulimit -v`, a batch system's limit; on CUDA the device's free memory),
    or None when unknown."""
    if str(device).startswith('cuda'):
        import torch
        try:
            return torch.cuda.mem_get_info(torch.device(device))[0]
        except (RuntimeError, AssertionError, ValueError):
            return None
    known = [n for n in (_proc_kib('/proc/meminfo', 'MemAvailable:'), _address_space_left())
             if n is not None]
    return min(known) if known else None


def _proc_kib(path, key):
    """The bytes of a 'Key: N kB' line of a /proc file, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left():
    """What RLIMIT_AS leaves beyond the address space in use, or None without a limit."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    used = _proc_kib('/proc/self/status', 'VmSize:')
    return None if used is None else max(limit - used, 0)


def require(needed, what, hint, device='cpu'):
    """Raise InsufficientMemory when `needed` bytes exceed what `device` has left:
    '<what>: needs about X GiB of memory, only Y GiB available (<hint>)'."""
    free = available_memory(device)
    if free is not None and needed > free:
        where = '' if str(device) == 'cpu' else f' on {device}'
        raise InsufficientMemory(f'{what}: needs about {needed / GIB:.1f} GiB of memory, only '
                                 f'{free / GIB:.1f} GiB available{where} ({hint})')


def rss_bytes():
    """Resident memory of this process in bytes (what psutil's rss gives). Without procfs, the
    peak resident size, the closest figure there is (ru_maxrss: kB on Linux, bytes on macOS)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == 'darwin' else peak * 1024


def cpu_memory_gb():
    """Resident memory of this process in GiB."""
    return rss_bytes() / 2**30


class PeakMemory:
    """Peak memory during a block: CUDA max allocated (and reserved: what the caching allocator
    holds, which is what runs out), or sampled process RSS on CPU (reserved stays 0)."""

    def __init__(self, device):
        self.device = device
        self.peak = 0
        self.reserved = 0
        self.base = 0

    def __enter__(self):
        import torch
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = rss_bytes()
            self.peak = self.base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(0.005)

    def __exit__(self, *exc):
        import torch
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            self.reserved = torch.cuda.max_memory_reserved(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_bytes())
        return False

    @property
    def peak_mb(self):
        return self.peak / 2 ** 20
