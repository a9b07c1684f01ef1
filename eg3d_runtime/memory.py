"""Memory of this process and its device, for the figures the training log and the benchmarks
print: the resident size now (the status line's `cpumem`), and the peak during a block."""
import os
import resource
import sys
import threading

import torch


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
