"""CPU parallelism for the fast paths: independent pieces of work (row strips of a convolution,
chunks of rays) on a small pool of worker threads that each run PyTorch single-threaded.

Why not just intra-op threads: the fast paths are made of many medium-sized operations
(hundreds per frame). With OpenMP every operation ends in a barrier; when another process or
the GUI thread takes a core away even briefly, each barrier waits for a scheduler time slice,
and a frame can become several times slower. Worker threads with one intra-op thread each and
a shared queue of tasks never wait for each other except at the end of a layer, so a busy core
only slows down the tasks that run on it. (Large single operations, e.g. oneDNN convolutions,
keep using intra-op threads on the calling thread.)

The pool has as many workers as `torch.get_num_threads()` of the first caller; with one
thread, or for CUDA tensors, work runs inline. `set_enabled(False)` turns the pool off.
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

_lock = threading.Lock()
_pool = None
_pool_size = 0
_enabled = True
_local = threading.local()


def set_enabled(flag):
    """Enable or disable the worker pool (disabled: everything runs on the calling thread)."""
    global _enabled
    _enabled = bool(flag)


def in_worker():
    return getattr(_local, 'worker', False)


def _init_worker():
    _local.worker = True
    torch.set_num_threads(1)         # this thread's OpenMP / MKL threads; restored for others


def _get_pool():
    global _pool, _pool_size
    n = torch.get_num_threads()
    if n <= 1:
        return None
    with _lock:
        if _pool is None or _pool_size != n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            barrier = threading.Barrier(n)
            pool = ThreadPoolExecutor(n, initializer=_init_worker,
                                      thread_name_prefix='eg3d-cpu-worker')
            started = [pool.submit(barrier.wait) for _ in range(n)]   # start every thread now
            for f in started:
                f.result()
            # the workers' set_num_threads(1) also changed the process default for threads
            # created later; restore it (the calling thread keeps its n threads)
            torch.set_num_threads(n)
            _pool, _pool_size = pool, n
        return _pool


def parallel_map(fn, items, device=None):
    """[fn(item) for item in items], spread over the worker threads on CPU."""
    items = list(items)
    if (len(items) < 2 or not _enabled or in_worker()
            or (device is not None and torch.device(device).type != 'cpu')):
        return [fn(item) for item in items]
    pool = _get_pool()
    if pool is None:
        return [fn(item) for item in items]
    grad = torch.is_grad_enabled()

    def run(item):
        with torch.set_grad_enabled(grad):
            return fn(item)
    return list(pool.map(run, items))


def thread_buffer(name, shape, dtype, device):
    """A per-thread scratch tensor (reused across calls on the same thread)."""
    bufs = getattr(_local, 'buffers', None)
    if bufs is None:
        bufs = _local.buffers = {}
    key = (name, tuple(shape), dtype, str(device))
    buf = bufs.get(key)
    if buf is None:
        buf = bufs[key] = torch.empty(tuple(shape), dtype=dtype, device=device)
    return buf
