"""CUDA graphs for camera-only frames: the per-camera part of a frame (rays -> ray marching ->
super-resolution) is captured once and replayed for each new camera, which removes the launch
overhead of its hundreds of small kernels. Kept apart from path.py because it is CUDA-only and
holds its own cache policy (a few graphs, most recently used kept)."""
import warnings

import torch

MAX_GRAPHS = 8


class GraphFrame:
    """A frame function captured as a CUDA graph; replays with a new camera."""

    def __init__(self, fn, c, keep_alive=()):
        self.fn = fn                      # the graph reads tensors the closure holds
        self.keep_alive = keep_alive
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
            with torch.cuda.graph(self.graph):
                self.static_out = fn(self.static_c)

    def __call__(self, c):
        with torch.cuda.device(self.device):
            self.static_c.copy_(c)
            self.graph.replay()
            self.replays += 1
            return {k: v.clone() for k, v in self.static_out.items()}


def graph_key(st, planes5d, c, nrr, options, deterministic, superresolution_enabled):
    """What a captured frame depends on besides c: the planes (by identity and version), the
    folded weights it reads, shapes and options."""
    base = planes5d._base if planes5d._base is not None else planes5d
    opts = tuple(sorted((k, repr(v)) for k, v in options.items()))
    return (id(base), base._version, id(st.sr[2]) if (superresolution_enabled and st.sr) else None,
            id(st.decoder[1]) if st.decoder else None, tuple(c.shape), c.dtype, nrr, opts,
            deterministic, superresolution_enabled)


def run(st, key, frame, c, keep_alive):
    """frame(c) through the graph cached under `key` in `st.graphs`, captured on first use;
    if capture fails, `st.graph_failed` is set and frames run eagerly from then on."""
    runner = st.graphs.pop(key, None)
    if runner is None:
        try:
            runner = GraphFrame(frame, c, keep_alive)
        except Exception as e:  # capture unsupported here: eager from now on
            st.graph_failed = True
            warnings.warn(f'CUDA graph capture failed, using eager frames ({e})')
            return frame(c)
    st.graphs[key] = runner                       # most recently used last
    while len(st.graphs) > MAX_GRAPHS:
        st.graphs.pop(next(iter(st.graphs)))
    return runner(c)
