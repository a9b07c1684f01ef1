import contextlib
import http.server
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get('EG3D_FIXTURES', REPO / 'tests' / 'data'))  # tests/data/README.md
FIXTURE_PKL = FIXTURES / 'ffhq-micro.pkl'
# A PanoHead snapshot written by PanoHead's own code: STEM.pkl, STEM-ref.npz, STEM-ref.json
# (tests/data/README.md); EG3D_PANOHEAD_FIXTURE runs the same tests on another, e.g. the
# micro-scale one at the released model's sizes.
PANOHEAD_STEM = os.environ.get('EG3D_PANOHEAD_FIXTURE', str(FIXTURES / 'panohead-small'))
# Every machine runs the same tests: the CPU bf16 probe answers "no" unless a test simulates
# "yes" (tests/test_precision.py); the environment carries this into subprocesses too.
os.environ['EG3D_CPU_BF16'] = '0'


def relative_rms(actual, expected):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.sqrt(np.mean((actual - expected) ** 2)) / np.sqrt(np.mean(expected ** 2)))


def reference_case(reference, i):
    """(ws, camera, neural rendering resolution) of case i of a fixture's reference outputs."""
    ref, meta = reference
    return (torch.from_numpy(ref[f'ws{i}']), torch.from_numpy(ref[f'c{i}']),
            meta['cases'][i]['neural_rendering_resolution'])


def forbid_host_reads(monkeypatch):
    """Make every read of a tensor's value back to the host raise (what a CUDA graph capture
    must not do), until monkeypatch.undo(): checks a frame function on the CPU."""
    def forbidden(*args, **kwargs):
        raise AssertionError('host sync inside the frame function')
    for name in ('item', 'tolist', '__bool__', 'nonzero', '__int__', '__float__'):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    monkeypatch.setattr(torch, 'equal', forbidden)
    monkeypatch.setattr(torch, 'nonzero', forbidden)


def fast_and_reference(G, ws, c, **kw):
    """G.synthesis through its engine session and on the reference path, same arguments."""
    with torch.no_grad():
        return G.synthesis(ws, c, **kw), G.synthesis(ws, c, faithful=True, **kw)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler for the tests' local servers: `reply` sends a whole answer, no logging."""
    def reply(self, code, body, content_type=None):
        self.send_response(code)
        if content_type:
            self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def local_server(handler):
    """Serves `handler` on 127.0.0.1 from a thread; yields http://127.0.0.1:PORT."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_port}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope='session')
def fixture_pkl():
    if not FIXTURE_PKL.exists():
        pytest.fail(f'reference fixture not found at {FIXTURE_PKL} (see tests/data/README.md)')
    return FIXTURE_PKL


@pytest.fixture(scope='session')
def reference(fixture_pkl):
    """The official outputs for the fixture: arrays and the case list."""
    meta = json.loads((FIXTURES / 'ffhq-micro-ref.json').read_text())
    return np.load(FIXTURES / 'ffhq-micro-ref.npz'), meta


@pytest.fixture(scope='session')
def fixture_networks(fixture_pkl):
    from eg3d_runtime import load_network_pkl
    return load_network_pkl(fixture_pkl)


@pytest.fixture(scope='session')
def fixture_G(fixture_networks):
    return fixture_networks['G_ema']


@pytest.fixture(scope='session')
def panohead_pkl():
    path = Path(PANOHEAD_STEM + '.pkl')
    if not path.exists():
        pytest.fail(f'PanoHead fixture not found at {path} (see tests/data/README.md)')
    return path


@pytest.fixture(scope='session')
def panohead_reference(panohead_pkl):
    """PanoHead's outputs for its fixture: arrays and the case list."""
    meta = json.loads(Path(PANOHEAD_STEM + '-ref.json').read_text())
    return np.load(PANOHEAD_STEM + '-ref.npz'), meta


@pytest.fixture(scope='session')
def panohead_networks(panohead_pkl):
    from eg3d_runtime import load_network_pkl
    return load_network_pkl(panohead_pkl)


@pytest.fixture(scope='session')
def panohead_G(panohead_networks):
    return panohead_networks['G_ema']


@pytest.fixture(scope='session')
def xvfb_display():
    """A virtual X server for tests that open real windows; DISPLAY points at it."""
    import select
    import shutil
    import subprocess
    if not shutil.which('Xvfb'):
        pytest.fail('Xvfb is not installed (make test installs it as root; otherwise: '
                    'sudo apt-get install xvfb xauth xdotool libosmesa6)')
    # -displayfd: Xvfb picks a free display and writes its number once it accepts clients.
    # -noreset: by default the server resets when its last client leaves, i.e. after every
    # window test, and a window opened during the reset failed with "Failed to open display".
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen(['Xvfb', '-displayfd', str(ready_w), '-noreset', '-screen', '0',
                             '1600x1000x24', '-nolisten', 'tcp'], pass_fds=(ready_w,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(ready_w)
    number = b''
    while not number.endswith(b'\n') and select.select([ready_r], [], [], 60)[0]:
        chunk = os.read(ready_r, 16)
        if not chunk:
            break
        number += chunk
    os.close(ready_r)
    if not number.strip():
        proc.kill()
        pytest.fail('Xvfb did not start within 60 s')
    display = f':{int(number)}'
    old = os.environ.get('DISPLAY')
    os.environ['DISPLAY'] = display
    yield display
    proc.terminate()
    proc.wait(timeout=10)
    if old is None:
        os.environ.pop('DISPLAY', None)
    else:
        os.environ['DISPLAY'] = old


@pytest.fixture
def user_dirs(tmp_path, monkeypatch):
    """Settings, caches and captures of the app under test go to a temporary home."""
    monkeypatch.setenv('XDG_CONFIG_HOME', str(tmp_path / 'config'))
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    return tmp_path


@pytest.fixture
def viewer(xvfb_display, fixture_pkl, user_dirs):
    import glfw

    from gui_utils import platform
    platform.configure(False)
    from viz.app import Visualizer
    from visualizer import build_parser
    options = build_parser().parse_args([str(fixture_pkl), '--nrr', '16', '--width', '1200',
                                         '--height', '700'])
    viz = Visualizer(options)
    glfw.set_window_pos(viz.window.handle, 0, 0)
    yield viz
    viz.close()


def frames(viz, n=3):
    """Draw n GUI frames, giving the X server time to deliver events in between."""
    for _ in range(n):
        viz.draw_frame()
        time.sleep(0.02)


def record_orbit(viz, directory, monkeypatch, count, fmt='webp', path=False):
    """Record an orbit of `count` frames into `directory` as `fmt` (with `path`: the camera path
    through the widget's keyframes, `count` frames per keyframe); returns the file's path."""
    import viz.capture_widget as capture
    monkeypatch.setattr(capture, 'PATH_FRAMES' if path else 'ORBIT_FRAMES', count)
    viz.capture_widget.directory = str(directory)
    viz.capture_widget.video_format = fmt
    (viz.capture_widget.start_path if path else viz.capture_widget.start_orbit)()
    for _ in range(3000):
        frames(viz, 1)
        if viz.capture_widget.orbit is None:
            break
    return directory / f'00001.{fmt}'
