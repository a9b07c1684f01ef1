"""The Trainer tab in a real window under Xvfb: curves of an official run, a run started from the
form whose snapshots appear, load and are followed, and a clean Stop."""
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import eg3d_runtime.runs.training_process as tp

from conftest import REPO, frames
from run_dirs import FAKE_TRAINER, LOSS_G, official_run


@pytest.fixture(autouse=True)
def no_trainer_left_behind(monkeypatch):
    """Trainers outlive the window by design; the tests end the ones they started."""
    started = []

    class Recorded(tp.TrainingProcess):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)
    monkeypatch.setattr(tp, 'TrainingProcess', Recorded)
    yield
    for process in started:
        if process.proc.poll() is None:
            os.killpg(process.proc.pid, signal.SIGKILL)      # with its data-loader workers
        process.wait(timeout=10)


def open_window(*args):
    import glfw

    from gui_utils import platform
    platform.configure(False)
    from viz.app import Visualizer
    from visualizer import build_parser
    viz = Visualizer(build_parser().parse_args([*map(str, args), '--width', '1200',
                                                '--height', '800']))
    glfw.set_window_pos(viz.window.handle, 0, 0)
    return viz


def frames_until(viz, condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames(viz, 1)
        if condition():
            return True
    return False


def test_run_argument_opens_the_tab_with_the_curves_of_an_official_run(
        xvfb_display, user_dirs, tmp_path):
    run = official_run(tmp_path)
    viz = open_window('--run', run)
    try:
        trainer = viz.trainer_widget
        assert frames_until(viz, lambda: 'Loss/G/loss' in trainer.curves.drawn)
        assert viz.tab == 'Trainer'
        kimg, loss = trainer.curves.drawn['Loss/G/loss']
        assert kimg.tolist() == [0.0, 4.0, 8.0]
        np.testing.assert_array_equal(loss, LOSS_G)            # the NaN tick is a gap
        r1 = trainer.curves.drawn['Loss/r1_penalty'][1]
        assert r1[0] == 0.5 and math.isnan(r1[2])               # Infinity cannot be placed
        assert trainer.curves.drawn['fid50k_full'][1].tolist() == [41.5]
        assert trainer.state.total_kimg == 25000 and trainer.state.kimg == 8.0
        trainer.fakes.index = 0                                  # the kimg slider moved to 0
        assert frames_until(viz, lambda: trainer.fakes.shown_path == run / 'fakes000000.png')
        viz.select_tab('Viewer')
        frames(viz, 2)
        assert viz.tab == 'Viewer' and not viz.window.should_close
    finally:
        viz.close()


def add_snapshot(run, kimg, pkl):
    """A complete snapshot, as a trainer leaves it (renamed into place), written a while ago."""
    path = run.resolve() / f'network-snapshot-{kimg:06d}.pkl'
    tmp = run / 'snapshot.tmp'
    tmp.write_bytes(pkl.read_bytes())
    past = time.time() - 60
    os.utime(tmp, (past, past))
    os.replace(tmp, path)
    return path


def shown(viz, path):
    result = viz.viewport.result
    return viz.pickle_widget.pkl == str(path) and result is not None and \
        result.args.pkl == str(path) and result.image is not None


def test_run_argument_shows_the_latest_snapshot_and_follows(xvfb_display, user_dirs, tmp_path,
                                                            fixture_pkl):
    run = official_run(tmp_path, snapshot_pkl=fixture_pkl)
    latest = add_snapshot(run, 8, fixture_pkl)
    viz = open_window('--run', run, '--nrr', 16)
    try:
        assert viz.trainer_widget.follow_latest
        assert frames_until(viz, lambda: shown(viz, latest), timeout=300)
        assert viz.viewport.result.error is None and viz.tab == 'Trainer'
        newer = add_snapshot(run, 12, fixture_pkl)
        assert frames_until(viz, lambda: shown(viz, newer), timeout=300)
    finally:
        viz.close()


def test_run_without_snapshots_says_so_and_opens_the_first(xvfb_display, user_dirs, tmp_path,
                                                           fixture_pkl):
    run = official_run(tmp_path)
    viz = open_window('--run', run, '--nrr', 16)
    try:
        waiting = f'No snapshot in {run.resolve()} yet: the first one opens when it appears'
        assert frames_until(viz, lambda: viz.viewport.centre_text == waiting)
        assert viz.pickle_widget.pkl is None
        first = add_snapshot(run, 0, fixture_pkl)
        assert frames_until(viz, lambda: shown(viz, first), timeout=300)
        assert viz.viewport.result.error is None
    finally:
        viz.close()


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch, fixture_pkl):
    script = tmp_path / 'fake_train.py'
    script.write_text(FAKE_TRAINER)
    monkeypatch.setattr(tp, 'TRAIN', [sys.executable, str(script)])
    monkeypatch.setenv('FAKE_SNAPSHOT', str(fixture_pkl))


def test_started_run_snapshots_load_follow_and_stop(viewer, fake_trainer, tmp_path):
    """With a stand-in trainer (same process contract as eg3d_runtime.train)."""
    viz = viewer
    trainer = viz.trainer_widget
    viz.select_tab('Trainer')
    trainer.set_preset('shapenet')
    trainer.form['outdir'] = str(tmp_path / 'runs')
    trainer.form['data'] = str(tmp_path)
    assert trainer.start()
    assert frames_until(viz, lambda: trainer.state is not None and
                        len(trainer.state.settled_snapshots) >= 1)
    assert trainer.monitor.run_dir == tmp_path / 'runs' / '00000-fake'
    first = trainer.state.settled_snapshots[0][1]
    trainer.load_snapshot(first)
    assert frames_until(viz, lambda: viz.viewport.result is not None and
                        viz.viewport.result.args.pkl == str(first))
    assert viz.viewport.result.error is None
    viz.pose_widget.yaw = 0.4
    viz.latent_widget.set_seed(3)
    trainer.follow_latest = True
    assert frames_until(viz, lambda: viz.pickle_widget.pkl != str(first))
    assert viz.pickle_widget.pkl == str(trainer.state.settled_snapshots[-1][1].resolve())
    assert (viz.pose_widget.yaw, viz.latent_widget.seed) == (0.4, 3)
    trainer.stop()
    assert trainer.process.wait(timeout=30) == 0
    assert frames_until(viz, lambda: trainer.state.status == 'stopped')
    assert 'Stopped by request.' in trainer.state.log_tail
    last = str(trainer.state.snapshots[-1][1])              # written on the way out: it loads
    assert frames_until(viz, lambda: viz.viewport.result.args.pkl == last and
                        not viz.worker.busy)
    assert viz.viewport.result.error is None and trainer.message == 'trainer exited'


def test_failed_launch_says_why(viewer, tmp_path, monkeypatch):
    monkeypatch.setattr(tp, 'TRAIN', [sys.executable, '-c',
                                      'import sys; sys.exit("error: --data: no such file")'])
    trainer = viewer.trainer_widget
    trainer.set_preset('afhq')
    assert trainer.start()
    assert frames_until(viewer, lambda: trainer.message.startswith('trainer exited'))
    assert trainer.message == 'trainer exited with code 1: error: --data: no such file'


def test_tiny_real_run_from_the_form(viewer, tmp_path):
    """The real trainer with a tiny network: start, load the first snapshot, stop."""
    from eg3d_runtime import load_network_pkl
    data = tmp_path / 'data.zip'
    subprocess.run([sys.executable, '-m', 'eg3d_runtime.dataset_tool', '--source', 'procedural',
                    '--dest', data, '--resolution', '64', '--max-images', '32'], cwd=REPO,
                   check=True, capture_output=True, timeout=120)
    viz = viewer
    trainer = viz.trainer_widget
    trainer.set_preset('demo')
    trainer.form.update(outdir=str(tmp_path / 'runs'), data=str(data), batch='4', kimg='1000',
                        tick='0.004', snap='1', metrics='none')
    trainer.extra = '--cbase=256 --cmax=16 --grid=2x2 --workers=0'
    assert trainer.start()
    assert frames_until(viz, lambda: not trainer.process.running or (
        trainer.state is not None and trainer.state.settled_snapshots), timeout=1200)
    assert trainer.process.running, trainer.message
    first = trainer.state.settled_snapshots[0][1]
    trainer.load_snapshot(first)
    assert frames_until(viz, lambda: viz.viewport.result is not None and
                        viz.viewport.result.args.pkl == str(first), timeout=120)
    assert viz.viewport.result.error is None
    trainer.stop()
    assert trainer.process.wait(timeout=1200) == 0
    assert frames_until(viz, lambda: trainer.state.status == 'stopped')
    last = Path(trainer.state.snapshots[-1][1])
    assert load_network_pkl(last)['G_ema'] is not None


def test_the_tab_formats_durations_like_the_training_log():
    """The ETA and 'no update for' texts use the engine's status-line formatter."""
    import viz.trainer.trainer_widget as trainer_widget
    from eg3d_runtime import run_directory
    assert trainer_widget.format_time is run_directory.format_time
    assert run_directory.format_time(12000 * 32.11) == '4d 11h 02m'


def test_stop_during_the_dataset_build_stops_it_and_never_starts_the_trainer(tmp_path):
    """The demo preset builds its dataset, then trains. Stop while the build runs: the build
    (not only a shell around it) ends, writes nothing, and the trainer is not started."""
    dest = tmp_path / 'toys.zip'
    build = [*tp.dataset_command(dest)[:-1], '100000', '--workers', '2']
    marker = tmp_path / 'trainer-started'
    trainer = [sys.executable, '-c', f'open({str(marker)!r}, "w")']
    process = tp.TrainingProcess([build, trainer], output_path=tmp_path / 'console.out')
    time.sleep(4)                          # rendering by now
    assert process.running
    process.stop()
    assert process.wait(timeout=30) not in (None, 0)
    assert process.proc.args == build and process.proc.returncode is not None
    assert not dest.exists() and not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['console.out']   # no temporary files
