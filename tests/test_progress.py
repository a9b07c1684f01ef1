"""One progress display for every command (eg3d_runtime.progress, tqdm): a bar on a terminal,
nothing in a log, and no module writing its own self-overwriting line."""
import ast
import io
from pathlib import Path

import numpy as np

from eg3d_runtime import progress
from eg3d_runtime.commands.invert import StepProgress
from eg3d_runtime.commands.shapes_export import ShapeProgress
from eg3d_runtime.inversion.optimise import Step
from eg3d_runtime.video.files import write_video

REPO = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_bar_shows_on_a_terminal_and_not_in_a_log():
    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        with progress.bar('work', 4, stream=stream, unit='thing') as bar:
            for done in (1, 3, 4):
                progress.advance(bar, done)
        assert ('work: 100%|' in stream.getvalue()) == shown
        assert (' 4/4 ' in stream.getvalue()) == shown
        assert stream.getvalue().endswith('\n') == shown


def test_a_total_learnt_late_is_taken():
    stream = Terminal()
    with progress.bar('download', stream=stream) as bar:
        progress.advance(bar, 10)
        progress.advance(bar, 20, total=20)
    assert ' 20/20 ' in stream.getvalue().split('\r')[-1]


def test_the_commands_adapters(monkeypatch):
    stream = Terminal()
    monkeypatch.setattr('sys.stderr', stream)
    shape = ShapeProgress('seed0003')
    for fraction, stage in ((0.25, 'sampling'), (1.0, 'mesh')):
        shape(fraction, stage)
    shape.close()
    assert 'seed0003: 100%|' in stream.getvalue() and stream.getvalue().endswith('mesh\n')
    steps = StepProgress()
    for stage, total in (('w', 2), ('tuning', 1)):
        for k in range(1, total + 1):
            steps(Step(stage, k, total, 0.5 / k, None))
    steps.close()
    assert '\rw: 100%|' in stream.getvalue() and '\rtuning: 100%|' in stream.getvalue()
    assert 'loss 0.2500]' in stream.getvalue()


def test_a_video_counts_its_frames(tmp_path, monkeypatch):
    stream = Terminal()
    monkeypatch.setattr('sys.stderr', stream)
    frames = (np.full((8, 8, 3), k * 40, np.uint8) for k in range(3))
    assert write_video(str(tmp_path / 'v.gif'), frames, 3, 'gif', 10) > 0
    assert 'v.gif: 100%|' in stream.getvalue() and ' 3/3 ' in stream.getvalue()


def test_no_module_writes_its_own_progress_line():
    """A string that starts by returning the carriage (a line rewritten in place) is a
    hand-written progress display: the commands use eg3d_runtime.progress instead."""
    paths = [*(REPO / 'eg3d_runtime').rglob('*.py'), *(REPO / 'checkpoints').rglob('*.py'),
             REPO / 'shapes_export.py']
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.startswith('\r'):
                found.append((path.relative_to(REPO).as_posix(), node.lineno))
    assert not found, found
