"""A network pickle is opened once per process (pickles.open_generator): the viewer, its compare
panels, mesh export and inversion share one generator and its engine session."""
import gc
import os
import shutil
import threading
import time

import pytest

from eg3d_runtime import PickleLoadError
from eg3d_runtime.pickles import shared

from conftest import REPO

DEMO = REPO / 'checkpoints' / 'demo.pkl'


@pytest.fixture
def demo_copy(tmp_path):
    path = tmp_path / 'net.pkl'
    shutil.copyfile(DEMO, path)
    return path


def test_one_generator_per_file_and_device_while_in_use(demo_copy, tmp_path):
    G = shared.open_generator(demo_copy)
    assert shared.open_generator(str(demo_copy), 'cpu') is G
    link = tmp_path / 'link.pkl'
    link.symlink_to(demo_copy)
    assert shared.open_generator(link) is G                  # the file, not the name
    seen = []
    assert shared.open_generator(demo_copy, on_progress=seen.append) is G and seen == []
    os.utime(demo_copy, ns=(time.time_ns(), time.time_ns() + 10**9))   # rewritten since
    fresh = shared.open_generator(demo_copy)
    assert fresh is not G
    del G, fresh
    gc.collect()                                              # nothing uses it: it is gone
    assert all(key[0] != os.path.realpath(demo_copy) for key in shared._opened.keys())
    assert shared.open_generator(demo_copy, on_progress=seen.append) is not None
    assert seen and seen[-1] > 0.98                           # loaded anew, with progress
    with pytest.raises(PickleLoadError, match='missing.pkl'):
        shared.open_generator(tmp_path / 'missing.pkl')


def test_simultaneous_opens_load_once(demo_copy, monkeypatch):
    loads = []
    load = shared.load_generator

    def slow_load(f, device):
        loads.append(1)
        time.sleep(0.3)
        return load(f, device)
    monkeypatch.setattr(shared, 'load_generator', slow_load)
    got = []
    threads = [threading.Thread(target=lambda: got.append(shared.open_generator(demo_copy)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len(got) == 3 and got[0] is got[1] is got[2]
    assert not shared._loading


def test_viewer_parts_share_the_network_and_its_session(demo_copy):
    from eg3d_runtime.frames.frame_renderer import FrameRenderer
    from eg3d_runtime.frames.render_args import RenderArgs
    from eg3d_runtime.inversion.invert import load_inputs
    from viz.compare import BatchRenderer, PanelBatch

    args = RenderArgs(pkl=str(demo_copy), nrr=32, depth_mult=0.25, importance_mult=0.25)
    view = FrameRenderer('cpu').render(args)
    panels = BatchRenderer('cpu').render(
        PanelBatch(((0, args.with_(nrr=32)), (1, args.with_(nrr=16)))), lambda: False,
        lambda fraction: None)
    sessions = {view.network.session} | {r.network.session for r in panels.results.values()}
    assert len(sessions) == 1                       # one session: mesh export takes this one
    session, = sessions
    networks, _ = load_inputs(str(demo_copy), str(REPO / 'docs' / 'demo-grid.png'), 'cpu')
    assert networks['G_ema'] is session.G and session is session.G.session
    assert networks['D'] is not None
