"""CUDA graphs for the two parts of a frame that are bound by launching hundreds of small kernels
from Python: the backbone of a new latent (w -> tri-planes, ~900 kernels: on an H200 17.5 ms of
host time for a few ms of GPU work) and the per-camera part of a frame (rays -> ray marching ->
super-resolution). Each is captured once per shape and replayed with new inputs; the per-camera
graph reads the plane table and the folded super-resolution weights, which a new latent refills
in place, so one graph serves every latent. Kept apart
because it is CUDA-only and holds its own cache policy (a few graphs per part, most recently
used kept); an engine session owns one GraphCache."""
import warnings

import torch

# Graphs kept per part, most recently used. A backbone graph is keyed by the weights' version,
# so a generator being trained (the fakes grid of every tick) makes the older ones useless.
MAX_GRAPHS = {'backbone': 2, 'camera': 8}


class GraphFrame:
    """fn(x) -> {name: tensor} captured as a CUDA graph; replays with a new x of the same shape."""

    def __init__(self, fn, c):
        self.fn = fn                      # the graph reads tensors the closure holds
        self.device = c.device
        self.replays = 0                  # replays so far (tests check the graph is reused)
        with torch.cuda.device(c.device):
            self.static_c = c.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):                  # warm up (allocations, kernel selection)
                    fn(self.static_c)
            torch.cuda.current_stream().wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: CUDA calls of other threads (the viewer's GUI thread, a DataLoader's
            # pin-memory thread) during the capture must not invalidate it.
            with torch.cuda.graph(self.graph, capture_error_mode='thread_local'):
                self.static_out = fn(self.static_c)

    def __call__(self, c):
        with torch.cuda.device(self.device):
            self.static_c.copy_(c)
            self.graph.replay()
            self.replays += 1
            return {k: v.clone() for k, v in self.static_out.items()}


def release_random_state(device):
    """After a failed capture: end the capture state of the device's random generator, which
    torch leaves on when the capture does not end cleanly (every later eager torch.rand then
    raises 'Offset increment outside graph capture'). A capture that draws one random number and
    ends cleanly turns it off."""
    try:
        with torch.cuda.device(device):
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode='thread_local'):
                torch.rand(1, device=device)
    except Exception as e:
        warnings.warn(f'the random generator of {device} may stay unusable after a failed CUDA '
                      f'graph capture ({e})')


def graph_key(table, folded_sr, decoder, c, nrr, options, deterministic):
    """What a captured frame depends on besides c: the objects it reads (the plane table and the
    folded weights, refilled in place for new planes and a new w), shapes and options."""
    opts = tuple(sorted((k, repr(v)) for k, v in options.items()))
    return (id(table), id(folded_sr) if folded_sr is not None else None, id(decoder),
            tuple(c.shape), c.dtype, nrr, opts, deterministic, folded_sr is not None)


class GraphCache:
    """The captured graphs of one owner, per part ('backbone' | 'camera'), and the parts whose
    capture failed (they run eagerly from then on)."""

    def __init__(self):
        self.graphs = {}                  # (part, key) -> GraphFrame, most recently used last
        self.failed = set()

    def clear(self):
        self.graphs.clear()

    def run(self, kind, key, frame, c):
        """frame(c) through the graph cached under (kind, key), captured on first use; if
        capture fails, `kind` joins `failed` and runs eagerly from then on."""
        key = (kind, key)
        runner = self.graphs.pop(key, None)
        if runner is None:
            try:
                runner = GraphFrame(frame, c)
            except Exception as e:  # capture unsupported here: eager from now on
                self.failed.add(kind)
                release_random_state(c.device)
                warnings.warn(f'CUDA graph capture of the {kind} failed, running it eagerly '
                              f'({e})')
                return frame(c)
        self.graphs[key] = runner
        same_kind = [k for k in self.graphs if k[0] == kind]
        for old in same_kind[:max(0, len(same_kind) - MAX_GRAPHS[kind])]:
            del self.graphs[old]
        return runner(c)
