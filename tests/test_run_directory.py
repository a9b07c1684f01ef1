"""The training-run contract (eg3d_runtime.run_directory): the names and lines the trainer
writes are the ones its readers look for."""
import os
import time

import pytest

from eg3d_runtime import run_directory as rd
from eg3d_runtime.commands import train
from eg3d_runtime.runs.training_process import find_output_dir


@pytest.mark.parametrize('seconds, text', [
    (0, '0s'), (59, '59s'), (59.4, '59s'), (59.6, '1m 00s'), (61, '1m 01s'),
    (3599, '59m 59s'), (3661, '1h 01m 01s'), (86399, '23h 59m 59s'),
    (2 * 86400, '2d 00h 00m'), (5 * 86400 + 3600 + 48 * 60 + 10, '5d 01h 48m'),
])
def test_format_time(seconds, text):
    assert rd.format_time(seconds) == text


def test_status_line_matches_official_example():
    line = rd.status_line(3250, 13000.0, 5 * 86400 + 3600 + 48 * 60 + 10, 128.5, 32.11, 0.1,
                          3.94, 8.73, 10.29, 0.0)
    assert line == ('tick 3250  kimg 13000.0  time 5d 01h 48m   sec/tick 128.5   sec/kimg 32.11   '
                    'maintenance 0.1    cpumem 3.94   gpumem 8.73   reserved 10.29  augment 0.000')
    assert rd.parse_status_line(line) == (3250, 13000.0, 128.5, 32.11)
    assert rd.parse_status_line('Evaluating metrics...') is None


def test_snapshots_are_listed_by_kimg_and_the_latest_is_the_last(tmp_path):
    assert rd.list_snapshots(tmp_path / 'missing') == [] and rd.latest_snapshot(tmp_path) is None
    for kimg in (40, 4, 400):
        (tmp_path / rd.snapshot_name(kimg)).write_bytes(b'x' * kimg)
    (tmp_path / 'network-snapshot-000009.pkl.tmp').write_text('')
    (tmp_path / 'fakes000004.png').write_text('')
    (tmp_path / 'network-snapshot-000005.pkl').mkdir()         # listed: a name is a name
    listed = rd.list_snapshots(tmp_path)
    assert [(k, p.name) for k, p, _, _ in listed] == [
        (4, 'network-snapshot-000004.pkl'), (5, 'network-snapshot-000005.pkl'),
        (40, 'network-snapshot-000040.pkl'), (400, 'network-snapshot-000400.pkl')]
    assert listed[0][2] == 4 and abs(listed[0][3] - time.time()) < 600
    assert rd.latest_snapshot(tmp_path) == tmp_path / 'network-snapshot-000400.pkl'
    assert rd.snapshot_kimg(os.path.join('a', 'network-snapshot-000012.pkl')) == 12
    assert rd.snapshot_kimg('network-snapshot-12.pk') is None


def test_metric_and_fakes_names_parse_back():
    assert rd.metric_of_file(rd.metric_file('fid50k_full')) == 'fid50k_full'
    assert rd.metric_of_file('/run/metric-kid50k.jsonl') == 'kid50k'
    assert rd.metric_of_file('stats.jsonl') is None
    for kind in rd.FAKES_SUFFIXES:
        assert rd.fakes_kimg(rd.fakes_name(12, kind)) == (12, kind)
    assert rd.fakes_kimg(rd.REALS_FILE) is None


def test_the_output_dir_line_train_prints_is_the_one_the_trainer_tab_reads(tmp_path, capsys):
    assert train.main(['--outdir', str(tmp_path / 'runs'), '--cfg', 'demo', '--distill', '2',
                       '--gpus', '1', '--batch', '4', '--gamma', '1', '-n']) == 0
    out = tmp_path / 'out.txt'
    out.write_text(capsys.readouterr().out)
    assert find_output_dir(out) == tmp_path / 'runs' / '00000-demo-figures2-gpus1-batch4-gamma1'
    assert rd.parse_output_dir(rd.output_dir_line('~/r')) == \
        rd.parse_output_dir('Output directory: ~/r')
    assert rd.parse_output_dir('Output directory:') is None
    assert rd.parse_output_dir('Number of GPUs:      1') is None


def test_snapshots_of_fractional_kimg_get_their_own_names(tmp_path):
    """--kimg 1.5 --tick 0.4 --snap 1 at batch 8: snapshots at 8, 400, 800, 1200 and 1500
    images. The official name (whole kimg) is kept until a second snapshot of the run falls in
    the same kimg; that one is named with its fraction, so nothing is overwritten."""
    taken, names = set(), []
    for nimg in (8, 400, 800, 1200, 1500, 2000):
        kimg = rd.snapshot_kimg_for(nimg, taken)
        taken.add(nimg // 1000)
        names.append(rd.snapshot_name(kimg))
        (tmp_path / names[-1]).write_text('')
        (tmp_path / rd.fakes_name(kimg, 'depth')).write_text('')
    assert names == ['network-snapshot-000000.pkl', 'network-snapshot-000000.400.pkl',
                     'network-snapshot-000000.800.pkl', 'network-snapshot-000001.pkl',
                     'network-snapshot-000001.500.pkl', 'network-snapshot-000002.pkl']
    assert [k for k, *_ in rd.list_snapshots(tmp_path)] == [0, 0.4, 0.8, 1, 1.5, 2]
    assert rd.latest_snapshot(tmp_path).name == 'network-snapshot-000002.pkl'
    assert rd.fakes_kimg('fakes000001.500_depth.png') == (1.5, 'depth')
    assert rd.snapshot_kimg('network-snapshot-000001.5.pkl') is None   # always 3 decimals
