"""Reading run directories that are live, odd or broken never fails (no window needed)."""
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from eg3d_runtime.runs import run_reader
from eg3d_runtime.runs.run_monitor import RunMonitor, progress, run_status
from eg3d_runtime.runs.training_process import find_output_dir, train_command

from run_dirs import KIMG, LOSS_G, official_run, stats_line


def test_official_run_values_with_nan_and_infinity(tmp_path):
    state = RunMonitor(official_run(tmp_path)).poll()
    kimg, loss = state.stats['Loss/G/loss']
    assert list(kimg) == KIMG
    np.testing.assert_array_equal(loss, LOSS_G)               # NaN stays NaN
    assert state.stats['Loss/r1_penalty'][1][2] == math.inf
    assert state.metrics['fid50k_full'][0].tolist() == [4] and \
        state.metrics['fid50k_full'][1].tolist() == [41.5]
    assert [k for k, _ in state.fakes['rgb']] == [0, 4]
    assert (state.kimg, state.total_kimg) == (8.0, 25000)
    assert state.eta_seconds == pytest.approx((25000 - 8) * 30)
    assert state.status == 'running' and state.error is None and state.bad_lines == 0
    assert state.log_tail[-1].startswith('tick 0')


def test_progress_from_the_log_status_line_before_stats_exist(tmp_path):
    run = official_run(tmp_path)
    (run / 'stats.jsonl').unlink()
    with open(run / 'log.txt', 'a') as f:
        f.write('tick 3250  kimg 13000.0  time 5d 01h 48m   sec/tick 128.5   sec/kimg 32.11   '
                'maintenance 0.1    cpumem 3.94   gpumem 8.73   reserved 10.29  augment 0.000\n')
    state = RunMonitor(run).poll()
    assert state.stats == {} and state.kimg == 13000.0
    assert state.eta_seconds == pytest.approx(12000 * 32.11)


def test_half_written_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / 'stats.jsonl'
    line = stats_line(5, 20.0, 0.5)
    path.write_text(stats_line(4, 16.0, 0.6) + '\n' + line[:17])
    tail = run_reader.JsonlTail(path)
    assert tail.poll() and len(tail.records) == 1 and tail.bad_lines == 0
    assert not tail.poll()                                   # nothing new: no work
    with open(path, 'a') as f:
        f.write(line[17:] + '\n')
    assert tail.poll()
    assert [r['Progress/kimg']['mean'] for r in tail.records] == [16.0, 20.0]


def test_garbage_lines_are_counted_not_fatal(tmp_path):
    path = tmp_path / 'stats.jsonl'
    path.write_bytes(b'{"Progress/kimg": {"mean": 1}}\nnot json\n\xff\xfe\n[1, 2]\n'
                     b'{"Progress/kimg": {"mean": -Infinity}}\n')
    tail = run_reader.JsonlTail(path)
    tail.poll()
    assert len(tail.records) == 2 and tail.bad_lines == 3
    series = run_reader.stat_series(tail.records)
    assert series['Progress/kimg'][0].tolist() == [1.0]      # ticks without a kimg are dropped


def test_replaced_or_truncated_file_is_read_again(tmp_path):
    path = tmp_path / 'stats.jsonl'
    path.write_text(''.join(stats_line(t, t * 4.0, 1.0) + '\n' for t in range(3)))
    tail = run_reader.JsonlTail(path)
    tail.poll()
    path.write_text(stats_line(0, 0.0, 2.0) + '\n')
    assert tail.poll() and len(tail.records) == 1


def test_missing_files_and_directory(tmp_path):
    state = RunMonitor(tmp_path / 'nope').poll()
    assert state.status == 'missing' and not state.exists
    assert state.stats == {} and state.snapshots == () and state.log_tail == ()
    empty = tmp_path / 'empty'
    empty.mkdir()
    state = RunMonitor(empty).poll()
    assert state.exists and state.kimg is None and state.eta_seconds is None


def test_run_directory_that_disappears(tmp_path):
    run = official_run(tmp_path)
    monitor = RunMonitor(run)
    assert monitor.poll().stats
    shutil.rmtree(run)
    state = monitor.poll()
    assert state.status == 'missing' and state.stats == {} and state.metrics == {}


def test_crashed_run_shows_its_error(tmp_path):
    run = official_run(tmp_path)
    with open(run / 'log.txt', 'a') as f:
        f.write('Traceback (most recent call last):\n  File "train.py", line 3, in <module>\n'
                '    main()\nRuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n')
    state = RunMonitor(run).poll()
    assert state.status == 'crashed'
    assert state.error == 'RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB'


def test_stopped_and_finished_runs():
    assert run_status(True, ['tick 3', 'Stopped by request.']) == ('stopping', None)
    assert run_status(True, ['tick 3', 'Stopped by request.', 'tick 4', '', 'Exiting...']) == \
        ('stopped', None)
    assert run_status(True, ['tick 3', 'Exiting...']) == ('finished', None)
    assert run_status(True, ['tick 3'])[0] == 'running'


def test_bad_training_options_only_hide_the_total(tmp_path):
    run = official_run(tmp_path)
    (run / 'training_options.json').write_text('{"total_kimg": ')
    state = RunMonitor(run).poll()
    assert state.kimg == 8.0 and state.total_kimg is None and state.eta_seconds is None
    assert progress({}, {'total_kimg': True}) == (None, None, None)


def test_snapshots_settle_before_they_can_be_loaded(tmp_path, monkeypatch):
    run = official_run(tmp_path)
    for kimg in (0, 8):
        (run / f'network-snapshot-{kimg:06d}.pkl').write_bytes(b'x' * 10)
    state = RunMonitor(run).poll()
    assert [s[0] for s in state.snapshots] == [0, 8] and state.settled_snapshots == []
    monkeypatch.setattr(time, 'time', lambda: state.snapshots[-1][3] + 5)
    assert [s[0] for s in state.settled_snapshots] == [0, 8]


def test_fakes_grid_is_loaded_on_request_and_truncated_png_is_skipped(tmp_path):
    run = official_run(tmp_path)
    monitor = RunMonitor(run)
    assert monitor.poll().fakes_image is None
    monitor.fakes_wanted = run / 'fakes000004.png'
    path, image = monitor.poll().fakes_image
    assert path == run / 'fakes000004.png' and image.shape == (32, 48, 3) and image[0, 0, 0] == 200
    data = (run / 'fakes000000.png').read_bytes()
    (run / 'fakes000000.png').write_bytes(data[:len(data) // 2])
    monitor.fakes_wanted = run / 'fakes000000.png'
    assert monitor.poll().fakes_image is None


def test_train_command_and_output_dir(tmp_path):
    argv = train_command({'cfg': 'demo', 'gpus': '1', 'resume': ''}, '--aug=ada --mirror=True')
    assert argv[-4:] == ['--cfg=demo', '--gpus=1', '--aug=ada', '--mirror=True']
    out = tmp_path / 'out.txt'
    assert find_output_dir(out) is None
    out.write_text(json.dumps({'a': 1}) + '\nOutput directory: /runs/00003-x\nTraining...\n')
    assert str(find_output_dir(out)) == '/runs/00003-x'


def _quiet(run, seconds=600):
    """Date the run's files back `seconds`, as if nothing had written them since."""
    then = time.time() - seconds
    for name in ('stats.jsonl', 'log.txt'):
        os.utime(run / name, (then, then))


def test_a_killed_run_is_reported_interrupted_not_running(tmp_path):
    """A run SIGKILLed mid-way never writes its last word: once it is quiet and no process has
    its log open, it is 'interrupted' (Resume, not Stop), not 'running' for ever."""
    run = official_run(tmp_path)
    assert RunMonitor(run).poll().status == 'running'      # recent files: alive
    _quiet(run)
    assert RunMonitor(run).poll().status == 'interrupted'


def test_a_quiet_run_whose_log_is_held_open_is_still_running(tmp_path):
    """A slow tick (minutes on a CPU) is not a dead run: the trainer keeps log.txt open."""
    run = official_run(tmp_path)
    _quiet(run)
    holder = subprocess.Popen([sys.executable, '-c', 'import sys, time\n'
                               'f = open(sys.argv[1], "a"); print("open", flush=True)\n'
                               'time.sleep(60)', str(run / 'log.txt')], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'open'
        assert run_reader.held_open(run / 'log.txt') is True
        _quiet(run)
        assert RunMonitor(run).poll().status == 'running'
    finally:
        holder.kill()
        holder.wait()
    assert run_reader.held_open(run / 'log.txt') is False


def test_without_proc_a_quiet_run_stays_running(tmp_path, monkeypatch):
    """Where /proc cannot tell (not Linux: held_open gives None), nothing is guessed."""
    assert run_reader.held_open(tmp_path / 'log.txt', proc=tmp_path / 'no-proc') is None
    run = official_run(tmp_path)
    _quiet(run)
    monkeypatch.setattr(run_reader, 'held_open', lambda path: None)
    assert RunMonitor(run).poll().status == 'running'
