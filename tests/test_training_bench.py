"""`train ... --bench`: the table's rows on the CPU, and nothing left behind."""
import os

import pytest

from eg3d_runtime.commands import dataset_tool, train

ROWS = ['construct (data, networks, phases)', 'grid setup (grid 1x1, reals.png)',
        'first tick after "Training for"', '  step 1 Gmain', '  step 1 Greg', '  step 1 Dmain',
        '  step 1 Dreg', '  steps 2-2 Gmain (median s, 1 runs)',
        '  steps 2-2 Dmain (median s, 1 runs)', 'steady sec/kimg (median of steps 2-2)',
        '_save_fakes (grid 1x1)', '_save_network (snapshot)']


def test_bench_prints_every_piece_and_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    data = tmp_path / 'toys.zip'
    assert dataset_tool.main(['--source', 'procedural', '--dest', str(data), '--resolution', '64',
                              '--max-images', '4']) == 0
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    monkeypatch.setattr('tempfile.tempdir', str(scratch))
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    capsys.readouterr()
    assert train.main(['--cfg', 'demo', '--data', str(data), '--gpus', '1', '--batch', '2',
                       '--mbstd-group', '2', '--gamma', '1', '--cbase', '256', '--cmax', '16',
                       '--workers', '0', '--grid', '1x1',
                       '--neural_rendering_resolution_initial', '16', '--bench', '2']) == 0
    out = capsys.readouterr().out
    assert 'torch.backends.cudnn.benchmark=' in out and 'cudnn.allow_tf32=False' in out
    assert 'memory: process RSS peak GB' in out
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith('piece')))
    table = lines[start + 1:start + 1 + len(ROWS)]
    assert [line[:len(name)] for line, name in zip(table, ROWS)] == ROWS
    for line in table:
        seconds, peak, reserved = line.split()[-3:]
        assert float(seconds) > 0 and reserved == '-', line
        assert 'sec/kimg' in line or float(peak) > 0, line
    # torch may leave its own cache folder in the temporary directory, the bench nothing.
    assert not [name for name in os.listdir(scratch) if name.startswith('eg3d-train-bench-')]
    assert sorted(os.listdir(tmp_path)) == before


def test_outdir_is_required_without_bench_and_bench_is_one_process(capsys, tmp_path):
    data = tmp_path / 'x.zip'
    data.write_bytes(b'')
    with pytest.raises(SystemExit):
        train.main(['--cfg', 'demo', '--data', str(data), '--gpus', '1', '--batch', '4',
                    '--gamma', '1'])
    assert '--outdir' in capsys.readouterr().err
    assert train.main(['--cfg', 'demo', '--data', str(data), '--gpus', '2', '--batch', '8',
                       '--gamma', '1', '--bench']) == 1
    assert '--bench runs one process' in capsys.readouterr().err
