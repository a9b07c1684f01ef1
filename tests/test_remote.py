"""The render server end to end: `python -m eg3d_runtime.serve` as a subprocess over stdio (the
path ssh takes, with a local command in place of ssh) and over TCP with its token; frames
against the local renderer; a cut connection; the viewer in remote mode."""
import math
import shutil
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, frames
from eg3d_runtime.frames.frame_renderer import FrameRenderer
from eg3d_runtime.frames.render_args import RenderArgs
from eg3d_runtime.remote import codec, values
from eg3d_runtime.remote.client import Connection, RemoteError, server_command, ssh_argv
from viz.compare import BatchResult, PanelBatch
from viz.remote_worker import RemoteLink, RemoteWorker

SERVER = [sys.executable, '-m', 'eg3d_runtime.serve', '--device', 'cpu']
FAKE_SSH = REPO / 'tests' / 'data' / 'fake_ssh.sh'


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def frame(connection, args, encoding, id_=1, timeout=300):
    got = threading.Event()
    frames = []
    connection.on_frame = lambda message: (frames.append(message), got.set())
    connection.send('render', id=id_, args=values.to_json(args), encoding=encoding)
    assert got.wait(timeout), 'no frame'
    return frames[-1]


@pytest.fixture(scope='module')
def local_image(fixture_pkl):
    args = RenderArgs(pkl=str(fixture_pkl), nrr=32)
    return FrameRenderer('cpu').render(args).host_image


@pytest.fixture
def listening(user_dirs):
    """A --listen server on a free port: yields (host, port, token); stopped afterwards."""
    process = subprocess.Popen(SERVER + ['--listen', '127.0.0.1:0'], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first, second = process.stdout.readline(), process.stdout.readline()
    assert 'listening on 127.0.0.1:' in first, first
    address, token = second.split('--connect ')[1].split(' --token ')
    host, port = address.rsplit(':', 1)
    yield host, int(port), token.strip(), process
    process.terminate()
    process.wait(timeout=10)


def test_stdio_frames_equal_local_frames(fixture_pkl, local_image, user_dirs):
    connection = Connection.stdio(SERVER)
    try:
        assert connection.info['device'] == 'cpu'
        args = RenderArgs(pkl=str(fixture_pkl), nrr=32)
        lossless = frame(connection, args, 'png')
        assert lossless.fields['error'] is None and lossless.fields['pkl'] == str(fixture_pkl)
        assert np.array_equal(codec.decode_image(lossless.blob), local_image)
        jpeg = frame(connection, args, 'jpeg', id_=2)
        assert len(jpeg.blob) < len(lossless.blob)
        assert psnr(codec.decode_image(jpeg.blob), local_image) >= 40
    finally:
        connection.close()
    assert connection._process.returncode == 0      # the server ends with its session


def test_the_ssh_command_line_runs_the_server(fixture_pkl, local_image, user_dirs):
    """The --remote path with a local stand-in for ssh that runs the command it is given."""
    command = server_command(sys.executable, str(REPO))
    assert command == f'cd {REPO} && exec {sys.executable} -m eg3d_runtime.serve'
    assert server_command('python3', '~/my eg3d') == "cd ~/'my eg3d' && exec python3 -m " \
        'eg3d_runtime.serve'
    connection = Connection.stdio(ssh_argv('me@gpu', command, f'sh {FAKE_SSH}'))
    try:
        lossless = frame(connection, RenderArgs(pkl=str(fixture_pkl), nrr=32), 'png')
        assert np.array_equal(codec.decode_image(lossless.blob), local_image)
    finally:
        connection.close()


def test_a_server_that_cannot_start_is_one_line(user_dirs):
    with pytest.raises(RemoteError, match='No module named nothere'):
        Connection.stdio([sys.executable, '-m', 'nothere'])
    with pytest.raises(RemoteError, match='cannot start'):
        Connection.stdio(['/nonexistent/ssh'])


def test_tcp_needs_the_token_and_serves_each_client(fixture_pkl, local_image, listening):
    host, port, token, process = listening
    with pytest.raises(RemoteError, match='^wrong token'):
        Connection.tcp(host, port, 'not-the-token')
    first = Connection.tcp(host, port, token)
    second = Connection.tcp(host, port, token)
    try:
        args = RenderArgs(pkl=str(fixture_pkl), nrr=32)
        assert np.array_equal(codec.decode_image(frame(first, args, 'png').blob), local_image)
        first.close()               # one client going leaves the server to the others
        assert np.array_equal(codec.decode_image(frame(second, args, 'png').blob), local_image)
        assert process.poll() is None
    finally:
        second.close()


def test_options_are_checked_in_one_line(user_dirs, tmp_path):
    for argv, error in ((['--listen', 'x:y'], "--listen x:y: expected [HOST:]PORT with PORT "
                                              "0-65535"),
                        (['--root', str(tmp_path / 'no')], f'--root {tmp_path / "no"}: no such '
                                                           'folder')):
        r = subprocess.run(SERVER + argv, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stderr.strip() == f'error: {error}'


def test_a_cut_connection_keeps_the_settings_and_reconnects(fixture_pkl, listening):
    host, port, token, process = listening
    link = RemoteLink(lambda: Connection.tcp(host, port, token))
    worker = RemoteWorker(link)
    try:
        args = RenderArgs(pkl=str(fixture_pkl), nrr=32, seed_x=3.0)
        worker.submit(args)
        assert worker.wait_idle(300)
        assert worker.poll().args == args
        worker.submit(args.with_(yaw=0.5))
        link.connection._sock.shutdown(2)          # the network goes away mid-frame
        deadline = time.monotonic() + 30
        while not link.disconnected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.disconnected and not worker.busy
        assert process.poll() is None               # the server goes on for other sessions
        assert link.reconnect()                     # and the newest args are sent again
        assert worker.wait_idle(300)
        result = worker.poll()
        assert result.args == args.with_(yaw=0.5) and result.image is not None
    finally:
        link.close()


def test_compare_panels_and_captures_are_exact(fixture_pkl, local_image, user_dirs):
    """The panels of one frame are rendered together on the server; 'Save image' fetches the
    exact pixels of a JPEG view frame again as PNG."""
    link = RemoteLink(lambda: Connection.stdio(SERVER))
    view = RemoteWorker(link)
    panels = RemoteWorker(link, 'panels', batch_type=BatchResult)
    try:
        args = RenderArgs(pkl=str(fixture_pkl), nrr=32)
        view.submit(args)
        panels.lossless = True
        panels.submit(PanelBatch(((0, args), (1, args.with_(nrr=16)))))
        assert view.wait_idle(300) and panels.wait_idle(300)
        shown, batch = view.poll(), panels.poll()
        assert 30 <= psnr(shown.host_image, local_image) < math.inf        # JPEG
        assert np.array_equal(view.lossless_image(shown), local_image)
        assert np.array_equal(batch.results[0].host_image, local_image)
        small = FrameRenderer('cpu').render(args.with_(nrr=16)).host_image
        assert np.array_equal(batch.results[1].host_image, small)
        assert batch.results[1].nrr == 16 and batch.results[1].args.nrr == 16
    finally:
        link.close()


def test_the_viewer_renders_remotely_headless(fixture_pkl, user_dirs, tmp_path):
    shot = tmp_path / 'shot.png'
    r = subprocess.run([sys.executable, 'visualizer.py', str(fixture_pkl), '--remote', 'me@gpu',
                        '--ssh', f'sh {FAKE_SSH}', '--remote-python', sys.executable,
                        '--remote-dir', str(REPO), '--nrr', '32', '--headless', '--screenshot',
                        str(shot), '--frames', '3', '--width', '1000', '--height', '600'],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    image = np.asarray(Image.open(shot).convert('RGB'))
    assert image[:, 450:].std() > 10               # a face in the viewport


def test_the_viewer_refuses_a_wrong_token_in_one_line(listening, user_dirs):
    host, port, _, _ = listening
    r = subprocess.run([sys.executable, 'visualizer.py', '--connect', f'{host}:{port}',
                        '--token', 'wrong', '--headless', '--frames', '1'], cwd=REPO,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, 'EG3D_SERVE_TOKEN': ''})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith('error: wrong token')


@pytest.fixture
def remote_viewer(xvfb_display, fixture_pkl, user_dirs):
    """The viewer in a real window, rendering through a server it started with a stand-in ssh."""
    from gui_utils import platform
    platform.configure(False)
    from viz.app import Visualizer
    from visualizer import build_parser
    options = build_parser().parse_args([
        str(fixture_pkl), '--nrr', '32', '--width', '1200', '--height', '700',
        '--remote', 'me@gpu', '--ssh', f'sh {FAKE_SSH}', '--remote-python', sys.executable,
        '--remote-dir', str(REPO), '--capture-dir', str(user_dirs / 'captures')])
    viz = Visualizer(options)
    yield viz
    viz.close()


def test_the_viewer_saves_exact_captures_and_compares_remotely(remote_viewer, fixture_pkl,
                                                               user_dirs):
    viz = remote_viewer
    assert viz.settle(300)
    local = FrameRenderer('cpu')
    on_screen = local.render(viz.viewport.result.args).host_image
    assert viz.link.describe().startswith(viz.link.info['host'] + ': cpu, round trip ')
    viz.capture_widget.save_frame(viz.current_image())
    captures = user_dirs / 'captures'
    for _ in range(500):
        if viz.capture_widget.message.startswith('saved'):
            break
        viz.draw_frame()
        time.sleep(0.02)
    saved = np.asarray(Image.open(next(captures.glob('*.png'))).convert('RGB'))
    assert np.array_equal(saved, on_screen), viz.capture_widget.message
    viz.compare_widget.same_network_two_resolutions()
    viz.compare_widget.show_difference = True       # exact panels: the difference view
    assert viz.settle(300)
    results = viz.compare.results
    assert [results[i].nrr for i in (0, 1)] == [64, 128]
    assert np.array_equal(results[1].host_image, local.render(results[1].args).host_image)
    assert viz.compare.difference_image() is not None


def test_mesh_export_runs_on_the_server_and_survives_its_death(remote_viewer, user_dirs):
    viz = remote_viewer
    assert viz.settle(300)
    mesh = viz.mesh_widget
    mesh.resolution, mesh.format, mesh.directory = 64, 'ply', str(user_dirs / 'meshes')
    mesh.level = -1.5                   # the micro network's density lies in -2..-0.8

    def finish():
        for _ in range(3000):
            viz.draw_frame()
            if not mesh.running:
                return mesh.message
            time.sleep(0.02)
        raise AssertionError('the export did not end')
    assert mesh.start()
    message = finish()
    assert message.startswith(f'saved {user_dirs / "meshes"}/00001.ply (') and \
        'on the server' in message
    assert (user_dirs / 'meshes' / '00001.ply').read_bytes().startswith(b'ply')
    mesh.save_on, mesh.server_directory = 'server', str(user_dirs)
    assert mesh.start()
    assert 'outside the folders this server serves' in finish()   # not a served folder
    mesh.resolution, mesh.save_on = 512, 'laptop'
    assert mesh.start()
    while mesh.progress is None or mesh.progress[1] == 'starting on the server':
        viz.draw_frame()
    viz.link.connection._process.kill()            # the server dies during the export
    message = finish()
    assert message.startswith('disconnected: ') and '\n' not in message
    assert viz.link.disconnected
    viz.draw_frame()                               # the window goes on, offering Reconnect


def test_the_trainer_tab_on_a_run_served_remotely(xvfb_display, user_dirs, tmp_path,
                                                  fixture_pkl, monkeypatch):
    """--run names a run directory on the server (under its ~/training-runs): curves, fakes,
    log and snapshots come from there, Follow latest opens its snapshot there, Stop writes the
    stop request there, and Start is refused for an output folder the server does not serve."""
    from test_trainer_tab import frames_until, open_window

    from run_dirs import LOSS_G, official_run
    home = tmp_path / 'home'
    monkeypatch.setenv('HOME', str(home))
    run = official_run(home / 'training-runs', snapshot_pkl=fixture_pkl)
    viz = open_window('--run', run, '--nrr', 16, '--remote', 'me@gpu', '--ssh',
                      f'sh {FAKE_SSH}', '--remote-python', sys.executable, '--remote-dir', REPO)
    try:
        trainer = viz.trainer_widget
        assert frames_until(viz, lambda: 'Loss/G/loss' in trainer.curves.drawn, timeout=120)
        kimg, loss = trainer.curves.drawn['Loss/G/loss']
        assert kimg.tolist() == [0.0, 4.0, 8.0]
        np.testing.assert_array_equal(loss, LOSS_G)
        assert trainer.state.total_kimg == 25000 and 'Training for 25000 kimg...' in \
            trainer.state.log_tail
        trainer.fakes.index = 0
        assert frames_until(viz, lambda: str(trainer.fakes.shown_path) ==
                            str(run / 'fakes000000.png'))
        snapshot = run / 'network-snapshot-000004.pkl'
        assert frames_until(viz, lambda: viz.viewport.result is not None and
                            viz.viewport.result.image is not None and
                            viz.pickle_widget.pkl == str(snapshot), timeout=300)
        trainer.stop()
        assert frames_until(viz, lambda: (run / 'stop-request').exists())
        trainer.form['outdir'] = str(tmp_path / 'elsewhere')
        assert trainer.start()
        assert frames_until(viz, lambda: 'outside the folders this server serves' in
                            trainer.message)
    finally:
        viz.close()


def test_a_photo_is_uploaded_and_inverted_on_the_server(remote_viewer, tmp_path, user_dirs):
    """The picture (and its dataset.json camera) is on the laptop; the inversion runs in the
    server's network and writes there; the tuned network and latent open from there."""
    from test_invert_widget import DEMO, picture_in_dataset
    viz = remote_viewer
    picture = picture_in_dataset(tmp_path / 'faces')
    viz.window._drop_paths.append(str(picture))           # dropped on the window
    viz.pickle_widget.load(DEMO)
    assert viz.settle(timeout=300)
    widget = viz.invert_widget
    assert widget.path == str(picture)
    served = REPO / 'eg3d-inversions'                      # under the server's working folder
    widget.server_directory = str(user_dirs / 'not-served')
    assert widget.start()
    while widget.running:
        frames(viz, 1)
    assert 'outside the folders this server serves' in widget.message
    widget.server_directory = ''
    widget.num_steps, widget.pti_steps = 6, 2
    before = set(served.glob('*')) if served.exists() else set()
    assert widget.start()
    stages, previews = set(), 0
    while widget.running:
        frames(viz, 1)
        if widget.progress:
            stages.add(widget.progress[0])
        previews += widget._preview is not None
    frames(viz, 2)
    new = set(served.glob('*')) - before
    try:
        assert len(new) == 1, widget.message
        out = new.pop()
        assert widget.message == f'saved {out} on the server'
        assert {'w', 'tuning'} <= stages and previews > 0
        assert viz.pickle_widget.pkl == str(out / 'inverted.pkl')
        assert viz.render_args().ws_file == str(out / 'w.npy')
        assert viz.settle(timeout=300) and viz.viewport.result.error is None
    finally:
        for folder in new:
            shutil.rmtree(folder)
