"""Frames stay on the render device: the viewer copies a frame to the host only when something
asks for its pixels (a capture, the difference view, a test), never once per frame."""
import numpy as np
import torch

from gui_utils.gl_texture import Texture
from viz.compare import CompareView
from eg3d_runtime.frames.frame_renderer import RenderResult

from conftest import frames


class DeviceFrame:
    """A uint8 frame on a simulated GPU: `Texture.update` takes the interop path for it, and
    every copy to the host is counted."""
    is_cuda = True

    def __init__(self, value, size=8):
        self.array = np.full((size, size, 3), value, np.uint8)
        self.shape = self.array.shape
        self.host_copies = 0

    def cpu(self):
        self.host_copies += 1
        return torch.from_numpy(self.array)


def test_viewport_copies_only_the_frame_asked_for(viewer, monkeypatch):
    viz = viewer
    interop_writes = []
    monkeypatch.setattr(Texture, '_try_interop', lambda self, image: interop_writes.append(image)
                        or True)
    shown = [DeviceFrame(v) for v in (10, 20, 30)]
    for frame in shown:
        viz.viewport.show_result(RenderResult(viz.render_args(), image=frame))
    assert interop_writes == shown                       # every frame reached the texture
    assert [f.host_copies for f in shown] == [0, 0, 0]   # ... without a host copy
    assert int(viz.viewport.last_image[0, 0, 0]) == 30
    assert viz.viewport.last_image is viz.viewport.last_image
    assert [f.host_copies for f in shown] == [0, 0, 1]   # one copy, of the frame asked for


def test_an_error_keeps_the_frame_on_screen(viewer, monkeypatch):
    viz = viewer
    monkeypatch.setattr(Texture, '_try_interop', lambda self, image: True)
    frame = DeviceFrame(40)
    viz.viewport.show_result(RenderResult(viz.render_args(), image=frame))
    viz.viewport.show_result(RenderResult(viz.render_args(), error='boom'))
    assert int(viz.viewport.last_image[0, 0, 0]) == 40
    frames(viz, 1)   # the next real frame replaces the simulated one


def test_difference_view_copies_each_frame_once():
    compare = CompareView.__new__(CompareView)         # no window needed for the heatmap logic
    compare.difference, compare._heat = None, None
    a, b = DeviceFrame(0), DeviceFrame(100)
    compare.shown = {0: RenderResult(None, image=a), 1: RenderResult(None, image=b)}
    assert compare.difference_image() is None
    assert (a.host_copies, b.host_copies) == (0, 0)      # no difference view, no copies
    compare.difference = (0, 1)
    heat = compare.difference_image()
    assert heat.shape == (8, 8, 3) and heat.max() > 0
    assert compare.difference_image() is heat            # unchanged frames: same heatmap
    assert (a.host_copies, b.host_copies) == (1, 1)
    c = DeviceFrame(100)
    compare.shown[0] = RenderResult(None, image=c)
    assert compare.difference_image().max() == 0         # a new frame: recomputed
    assert (a.host_copies, b.host_copies, c.host_copies) == (1, 1, 1)
