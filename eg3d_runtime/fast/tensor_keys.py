"""How a session's caches know an input tensor again (the same ws, the same planes) without
reading its values where that would make the host wait for the device.

A cache keeps `held(x)`: the tensor x views, where and how, that tensor's version (bumped by
in-place changes) and a copy of the values. `holds(held, x)` is then true for the same unchanged
view; on a CPU also for another tensor of equal values. On CUDA another tensor counts as new: a
new latent's frame must not wait for the previous work (the viewer passes the same ws tensor while
the latent stays)."""
import torch


def reading_waits(device):
    """Whether reading a tensor's values on the host waits for the device's queued work."""
    return device.type == 'cuda'


def viewed(x):
    """The tensor that `x` is a view of (x itself if it is none)."""
    return x if x._base is None else x._base


def held(x):
    return viewed(x), x._version, x.storage_offset(), x.stride(), x.detach().clone()


def holds(held_x, x):
    base, version, offset, stride, values = held_x
    if viewed(x) is base and x._version == version \
            and x.storage_offset() == offset and x.stride() == stride \
            and x.shape == values.shape:
        return True
    return not reading_waits(x.device) and torch.equal(values, x)
