"""Each network pickle opened once per process: the viewer, its compare panels, mesh export and
inversion that open the same file on the same device share one generator, and so one engine
session (G.session) with its caches and buffers. Entries are weak: a network stays loaded while
something uses it. A file rewritten since (another modification time or size) loads anew."""
import os
import threading
import weakref

import torch

from .loader import load_generator

_opened = weakref.WeakValueDictionary()    # (real path, mtime, size, device) -> G_ema
_loading = {}                              # key -> lock held while that file loads
_lock = threading.Lock()


class ProgressFile:
    """A read-only file that reports the fraction read so far, for a loading message."""

    def __init__(self, path, on_progress):
        self._f = open(path, 'rb')
        self._total = max(os.path.getsize(path), 1)
        self._on_progress = on_progress
        self._reported = 0.0
        self.name = str(path)

    def read(self, n=-1):
        data = self._f.read(n)
        fraction = self._f.tell() / self._total
        if fraction - self._reported >= 0.01:
            self._reported = fraction
            self._on_progress(fraction)
        return data

    def readline(self):
        return self._f.readline()

    def close(self):
        self._f.close()


def _key(path, device):
    real = os.path.realpath(path)
    stat = os.stat(real)
    return real, stat.st_mtime_ns, stat.st_size, str(torch.device(device))


def open_generator(path, device='cpu', on_progress=None):
    """The G_ema of the pickle at `path` on `device`, as `load_generator` returns it, loaded
    once per process while in use; `on_progress(fraction)` reports the loading. Failures raise
    what load_generator raises (PickleLoadError)."""
    try:
        key = _key(path, device)
    except OSError:
        return load_generator(path, device)   # the loader names what is wrong with the path
    with _lock:
        G = _opened.get(key)
        if G is not None:
            return G
        loading = _loading.setdefault(key, threading.Lock())
    try:
        with loading:                          # a second opener of the file waits for the first
            with _lock:
                G = _opened.get(key)
            if G is None:
                f = ProgressFile(path, on_progress) if on_progress else path
                try:
                    G = load_generator(f, device)
                finally:
                    if f is not path:
                        f.close()
                with _lock:
                    _opened[key] = G
    finally:
        with _lock:
            if _loading.get(key) is loading:
                del _loading[key]
    return G
