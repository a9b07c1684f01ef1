"""How much memory rendering a frame takes, estimated before it starts, so that a command refuses
work that would not fit (memory.require) instead of growing until the system kills it.

Measured on the demo network (CPU, peak RSS above the loaded network): the fast path, which
marches rays in chunks, 674 bytes a ray at nrr 1024 with 32 depth samples, 1002 with 96, 606
at nrr 2048: about 500 bytes a ray and 5 a sample; the faithful reference path, which holds
every sample at once, 692 bytes a sample at nrr 256 and 671 at 512. The estimate doubles that
and adds the super-resolution's feature maps at the output resolution and a fixed margin:
generous, as a refusal only has to catch what cannot fit."""
from ..memory import require

RAY_BYTES = 1024            # a ray's colour, features and bookkeeping at neural resolution
SAMPLE_BYTES = 16           # one depth sample in the fast path's working chunks
FAITHFUL_SAMPLE_BYTES = 1536    # one depth sample of the reference path, all held at once
OUTPUT_PIXEL_BYTES = 1024   # super-resolution feature maps per output pixel
MARGIN = 256 << 20


def frame_bytes(G, nrr=None, batch=1, sample_mult=1.0, samples=None, faithful=False):
    """Bytes a batch of `batch` frames of generator G needs at neural rendering resolution `nrr`
    (None: G's) with `samples` depth samples a ray (None: G's times `sample_mult`), on the fast
    path or the `faithful` reference path."""
    rk = G.rendering_kwargs
    nrr = nrr or G.neural_rendering_resolution
    if samples is None:
        samples = (rk['depth_resolution'] + rk['depth_resolution_importance']) * sample_mult
    per_sample = FAITHFUL_SAMPLE_BYTES if faithful else SAMPLE_BYTES
    per_frame = nrr * nrr * (RAY_BYTES + per_sample * samples) + \
        G.img_resolution ** 2 * OUTPUT_PIXEL_BYTES
    return int(batch * per_frame) + MARGIN


def require_frame_memory(G, device, what, hint, nrr=None, batch=1, sample_mult=1.0):
    """memory.InsufficientMemory, one line '<what>: needs about X GiB ... (<hint>)', when the
    frames would not fit in what `device` has left."""
    require(frame_bytes(G, nrr, batch, sample_mult), what, hint, device)
