"""Training statistics: cheap `report()` calls anywhere, pooled over ranks once per tick.

`report` only adds to per-device running sums (count, sum, sum of squares in float64), so it never
forces a GPU sync. `Collector.update` moves those sums to one device, all-reduces them when
torch.distributed is running, and turns them into num/mean/std, which is what each line of the
official `stats.jsonl` holds (docs/eg3d-reference.md 7.2). Every rank must call `update` (and
construct its collectors) in the same order, and must have reported the same names in the same
order: a rank with nothing to say reports an empty list (`report0` does that for ranks other than
0).
"""
import re
import threading
import weakref
import zlib

import numpy as np
import torch

_lock = threading.Lock()
_rank = 0
_sync_device = None
_names = {}          # every name reported so far, in order of first report (dict as ordered set)
_pending = {}        # name -> {device: float64 tensor [count, sum, sum_sq]} since the last sync
_collectors = weakref.WeakSet()  # live collectors; each sync hands its pooled sums to all of them


def init_multiprocessing(rank, sync_device):
    """Set this process's rank and the device the all-reduce runs on (CPU for gloo, cuda:rank for nccl)."""
    global _rank, _sync_device
    _rank = int(rank)
    _sync_device = None if sync_device is None else torch.device(sync_device)


def report(name, value):
    """Add a scalar or any array/tensor of values to statistic `name`; returns `value` unchanged.

    NaN and inf are kept in the sums, as in the official code, so a diverging loss is visible.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        moments = torch.tensor([1.0, v, v * v], dtype=torch.float64)
    else:
        if isinstance(value, torch.Tensor):
            elems = value.detach().flatten().to(torch.float64)
        else:
            elems = torch.as_tensor(np.asarray(value, dtype=np.float64)).flatten()
        if elems.numel() == 0:
            moments = None
        else:
            moments = torch.stack([elems.new_full((), elems.numel()), elems.sum(), elems.square().sum()])
    with _lock:
        _names.setdefault(name, None)
        if moments is not None:
            per_device = _pending.setdefault(name, {})
            if moments.device in per_device:
                per_device[moments.device].add_(moments)
            else:
                per_device[moments.device] = moments
    return value


def report0(name, value):
    """Report `value` on rank 0 only; other ranks register the name with no values."""
    report(name, value if _rank == 0 else [])
    return value


def _distributed_world():
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def _sync(names):
    """Pool what was reported for `names` since the last sync and hand it to every collector."""
    if not names:
        return
    device = _sync_device if _sync_device is not None else torch.device('cpu')
    rows = []
    with _lock:
        for name in names:
            row = torch.zeros(3, dtype=torch.float64, device=device)
            for moments in _pending.pop(name, {}).values():
                row.add_(moments.to(device))
            rows.append(row)
    if _distributed_world():
        # An extra row [1, h, h^2] of a 20-bit hash of the name list: after the sum over ranks
        # all hashes were equal iff count * sum(h^2) == sum(h)^2, so mismatched name lists
        # (which would silently add unrelated statistics) are caught in the same collective.
        h = float(zlib.crc32('\n'.join(names).encode()) & 0xFFFFF)
        rows.append(torch.tensor([1.0, h, h * h], dtype=torch.float64, device=device))
        deltas = torch.stack(rows)
        torch.distributed.all_reduce(deltas)
        deltas = deltas.cpu().numpy()
        count, hsum, hsq = (int(x) for x in deltas[-1])
        if count * hsq != hsum * hsum:
            raise RuntimeError('training statistics: ranks reported different statistic names '
                               f'(this rank: {names})')
        deltas = deltas[:-1]
    else:
        deltas = torch.stack(rows).cpu().numpy()
    with _lock:
        collectors = list(_collectors)
    for collector in collectors:
        collector._receive(names, deltas)


class Collector:
    """num/mean/std of the values reported between the last two `update()` calls.

    Several collectors may coexist (e.g. one per tick for stats.jsonl and one every few
    iterations for ADA); whichever updates first pools the values, and every collector gets
    them. Unlike the official cumulative sums, a NaN only spoils the period it was reported
    in. The constructor calls `update()` once, so it is collective too: values reported before
    a collector exists are not counted by it.
    """

    def __init__(self, regex='.*', keep_previous=True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._received = {}  # name -> float64 [3] pooled since this collector's last update
        self._moments = {}   # name -> float64 [3] of the last period with values
        with _lock:
            _collectors.add(self)
        self.update()
        self._moments.clear()

    def _receive(self, names, deltas):
        for name, delta in zip(names, deltas):
            if self._regex.fullmatch(name):
                self._received[name] = self._received.get(name, 0.0) + delta

    def names(self):
        """Matching statistic names, in order of first report."""
        with _lock:
            return [name for name in _names if self._regex.fullmatch(name)]

    def update(self):
        """Collective: pool what was reported since the last update over all ranks."""
        if not self._keep_previous:
            self._moments.clear()
        _sync(self.names())
        received, self._received = self._received, {}
        for name, delta in received.items():
            if delta[0] != 0:
                self._moments[name] = delta

    def num(self, name):
        moments = self._moments.get(name)
        return 0 if moments is None else int(moments[0])

    def mean(self, name):
        moments = self._moments.get(name)
        if moments is None or moments[0] == 0:
            return float('nan')
        return float(moments[1] / moments[0])

    def std(self, name):
        """sqrt(max(E[x^2] - mean^2, 0)); 0 for a single value; NaN if none or the sum is not finite."""
        moments = self._moments.get(name)
        if moments is None or moments[0] == 0 or not np.isfinite(moments[1]):
            return float('nan')
        if moments[0] == 1:
            return 0.0
        mean = moments[1] / moments[0]
        return float(np.sqrt(max(moments[2] / moments[0] - mean * mean, 0.0)))

    def as_dict(self):
        """{name: {'num', 'mean', 'std'}} in order of first report, as written to stats.jsonl."""
        return {name: {'num': self.num(name), 'mean': self.mean(name), 'std': self.std(name)}
                for name in self.names()}
