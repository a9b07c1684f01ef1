"""Run-directory files and training statistics against the official formats
(docs/eg3d-reference.md 4.2, 7.2)."""
import json
import math
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import PIL.Image
import pytest
import torch

from eg3d_runtime import run_directory
from eg3d_runtime.training import run_files, stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_run_dir_numbering(tmp_path, monkeypatch):
    (tmp_path / '00000-x').mkdir()
    (tmp_path / '00007-y').mkdir()
    (tmp_path / '00042-not-a-dir').write_text('')
    (tmp_path / 'notes').mkdir()
    expected = str(tmp_path / '00008-ffhq-faces-gpus2-batch32-gamma1')
    assert run_files.next_run_dir(str(tmp_path), 'ffhq', '/data/faces.zip', 2, 32, 1.0) == expected
    assert run_files.create_run_dir(str(tmp_path), 'ffhq', '/data/faces.zip', 2, 32, 1.0) == expected
    assert os.path.isdir(expected)
    second = run_files.create_run_dir(str(tmp_path), 'afhq', '/data/cats/', 1, 8, 0.3, desc='try')
    assert second == str(tmp_path / '00009-afhq-cats-gpus1-batch8-gamma0.3-try')

    # A concurrent launch took the number this one computed: it moves on instead of sharing it.
    monkeypatch.setattr(run_files, '_next_run_id', lambda outdir: 9)
    third = run_files.create_run_dir(str(tmp_path), 'afhq', '/data/cats/', 1, 8, 0.3, desc='try')
    assert third == str(tmp_path / '00010-afhq-cats-gpus1-batch8-gamma0.3-try')


def test_training_options_key_order(tmp_path):
    options = {'G_kwargs': {'z_dim': 512, 'conv_clamp': None, 'rendering_kwargs': {'ray_start': 2.25}},
               'D_kwargs': {'channel_base': 32768}, 'num_gpus': 1, 'batch_size': 32,
               'metrics': ['fid50k_full'], 'ema_kimg': 10.0, 'augment_p': float('nan'),
               'run_dir': 'runs/00000-ffhq'}
    run_files.write_training_options(str(tmp_path), options)
    text = (tmp_path / 'training_options.json').read_text()
    assert text.startswith('{\n  "G_kwargs": {\n    "z_dim": 512,\n    "conv_clamp": null,')
    loaded = json.loads(text, object_pairs_hook=list)
    assert [key for key, _ in loaded] == list(options)
    assert os.listdir(tmp_path) == ['training_options.json']


def test_append_jsonl(tmp_path):
    path = str(tmp_path / 'stats.jsonl')
    run_files.append_jsonl(path, {'Loss/G/loss': {'num': 4, 'mean': float('nan'), 'std': float('inf')},
                                  'timestamp': 1.5})
    run_files.append_jsonl(path, {'timestamp': 2.5})
    lines = open(path).read().split('\n')
    assert lines[-1] == '' and len(lines) == 3
    first = json.loads(lines[0])
    assert 'NaN' in lines[0] and math.isnan(first['Loss/G/loss']['mean'])
    assert json.loads(lines[1]) == {'timestamp': 2.5}


def test_tee_output_copies_stdout_stderr_threads_and_crash(tmp_path):
    log = tmp_path / 'log.txt'
    log.write_text('earlier run\n')
    before = sys.stdout, sys.stderr
    with pytest.raises(ValueError, match='boom'):
        with run_files.tee_output(str(log)):
            print('Loading training set...')
            assert 'Loading training set...' in log.read_text()  # flushed at once
            print('a warning', file=sys.stderr)
            worker = threading.Thread(target=lambda: print('from a thread'))
            worker.start()
            worker.join()
            sys.stdout.write('last line without newline')
            raise ValueError('boom')
    assert (sys.stdout, sys.stderr) == before
    text = log.read_text()
    assert text.startswith('earlier run\nLoading training set...\na warning\nfrom a thread\n'
                           'last line without newline')
    assert 'Traceback' in text and text.rstrip().endswith('ValueError: boom')
    print('after the block')
    assert 'after the block' not in log.read_text()


def test_tee_output_still_prints(tmp_path, capfd):
    with run_files.tee_output(str(tmp_path / 'log.txt')):
        print('to console')
        print('to stderr', file=sys.stderr)
    out, err = capfd.readouterr()
    assert 'to console' in out and 'to stderr' in err


class FakeDataset:
    """The dataset API the grid needs; image i is filled with the value i."""

    def __init__(self, labels, shape=(3, 8, 8)):
        self.labels = None if labels is None else np.asarray(labels, dtype=np.float32)
        self.count = 10 if labels is None else len(self.labels)
        self.image_shape = list(shape)
        self.has_labels = labels is not None

    def __len__(self):
        return self.count

    def get_label(self, idx):
        return self.labels[idx] if self.has_labels else np.zeros([0], np.float32)

    def __getitem__(self, idx):
        return np.full(self.image_shape, idx, dtype=np.uint8), self.get_label(idx)


def grid_ids(images, grid_size):
    gw, gh = grid_size
    return images[:, 0, 0, 0].astype(int).reshape(gh, gw)


def test_grid_unique_labels_one_image_per_row():
    labels = np.random.RandomState(1).randn(10, 25)
    dataset = FakeDataset(labels)
    grid_size, images, grid_labels = run_files.setup_snapshot_image_grid(dataset)
    assert grid_size == (32, 32)
    assert images.dtype == np.uint8 and images.shape == (1024, 3, 8, 8)
    assert grid_labels.dtype == np.float32 and grid_labels.shape == (1024, 25)
    ids = grid_ids(images, grid_size)
    assert (ids == ids[:, :1]).all()
    rows = ids[:, 0]
    assert sorted(rows[:10]) == list(range(10))
    assert (rows[10:] == rows[:-10]).all()
    np.testing.assert_array_equal(grid_labels, labels.astype(np.float32)[ids.ravel()])
    again = run_files.setup_snapshot_image_grid(dataset)[1]
    other_seed = run_files.setup_snapshot_image_grid(dataset, random_seed=5)[1]
    assert (again == images).all() and not (other_seed == images).all()


def test_grid_label_groups_fill_rows_cyclically():
    labels = np.zeros([10, 25])
    labels[:, 0] = np.arange(10) % 2  # two groups of five images
    grid_size, images, _ = run_files.setup_snapshot_image_grid(FakeDataset(labels))
    ids = grid_ids(images, grid_size)
    for y in range(ids.shape[0]):
        assert len(set(ids[y] % 2)) == 1
        assert len(set(ids[y])) == 5 and (ids[y, 5:] == ids[y, :-5]).all()
    # The next row of the same group continues where this one stopped (32 % 5 = 2).
    assert ids[2, 0] == ids[0, 2] and ids[3, 0] == ids[1, 2]


def test_grid_without_labels_and_size_formula():
    grid_size, images, labels = run_files.setup_snapshot_image_grid(FakeDataset(None, (1, 1024, 1024)))
    assert grid_size == (7, 4) and images.shape == (28, 1, 1024, 1024) and labels.shape == (28, 0)
    ids = images[:, 0, 0, 0].astype(int)
    assert sorted(ids[:10]) == list(range(10)) and (ids[10:] == ids[:-10]).all()


def test_save_image_grid_layout_and_conversion(tmp_path):
    gw, gh, h, w = 3, 2, 4, 5
    tiles = np.linspace(-1, 1, gw * gh, dtype=np.float32)
    images = np.broadcast_to(tiles[:, None, None, None], (gw * gh, 3, h, w)).copy()
    images[0, :, 0, 0] = [2.0, 0.5, np.nan]  # clipped, rounded, NaN -> 0
    path = str(tmp_path / 'reals.png')
    run_files.save_image_grid(images, path, (-1, 1), (gw, gh))
    png = PIL.Image.open(path)
    assert png.mode == 'RGB' and png.size == (gw * w, gh * h)
    pixels = np.asarray(png)
    assert list(pixels[0, 0]) == [255, 191, 0]
    for n, value in enumerate(tiles):
        y, x = divmod(n, gw)
        expected = np.clip(np.rint((value + 1) * 127.5), 0, 255)
        assert (pixels[y * h + 1:(y + 1) * h, x * w:(x + 1) * w] == expected).all()
    assert os.listdir(tmp_path) == ['reals.png']
    with pytest.raises(ValueError, match='reals.png'):
        run_files.save_image_grid(images[:5], path, (-1, 1), (gw, gh))


def test_save_fake_grids(tmp_path):
    gw, gh = 3, 2
    n = gw * gh
    depth = torch.linspace(2.0, 3.0, n * 16).reshape(n, 1, 4, 4)
    outputs = {'image': torch.zeros(n, 3, 16, 16), 'image_raw': torch.ones(n, 3, 4, 4),
               'image_depth': depth}
    run_files.save_fake_grids(outputs, str(tmp_path), 12, (gw, gh))
    assert sorted(os.listdir(tmp_path)) == ['fakes000012.png', 'fakes000012_depth.png',
                                            'fakes000012_raw.png']
    assert sorted(map(run_directory.fakes_kimg, os.listdir(tmp_path))) == [
        (12, 'depth'), (12, 'raw'), (12, 'rgb')]
    assert run_directory.fakes_kimg('fakes000012_x.png') is None
    assert run_directory.fakes_kimg('reals.png') is None
    image = PIL.Image.open(tmp_path / 'fakes000012.png')
    raw = PIL.Image.open(tmp_path / 'fakes000012_raw.png')
    depth_png = PIL.Image.open(tmp_path / 'fakes000012_depth.png')
    assert image.size == (48, 32) and raw.size == (12, 8) and depth_png.size == (12, 8)
    assert depth_png.mode == 'L'
    assert (np.asarray(image) == 128).all() and (np.asarray(raw) == 255).all()
    pixels = np.asarray(depth_png)
    assert pixels[0, 0] == 255 and pixels[-1, -1] == 0  # near (depth 2) is bright


def test_stats_single_process():
    collector = stats.Collector('tfs/.*')
    signs = stats.Collector('tfs/signs')
    stats.report('tfs/loss', torch.tensor([1.0, 2.0, 3.0]))
    stats.report('tfs/signs', np.array([1.0, -1.0]))
    stats.report('tfs/never', [])
    stats.report('tfs/bad', float('nan'))
    signs.update()
    collector.update()
    result = collector.as_dict()
    assert list(result) == ['tfs/loss', 'tfs/signs', 'tfs/never', 'tfs/bad']
    assert result['tfs/loss'] == {'num': 3, 'mean': 2.0, 'std': pytest.approx(math.sqrt(2 / 3))}
    assert result['tfs/signs'] == {'num': 2, 'mean': 0.0, 'std': 1.0}
    assert signs.as_dict() == {'tfs/signs': {'num': 2, 'mean': 0.0, 'std': 1.0}}
    assert result['tfs/never']['num'] == 0 and math.isnan(result['tfs/never']['mean'])
    assert result['tfs/bad']['num'] == 1 and math.isnan(result['tfs/bad']['mean'])

    stats.report('tfs/loss', 5)
    stats.report('tfs/bad', 4.0)
    collector.update()
    result = collector.as_dict()
    assert result['tfs/loss'] == {'num': 1, 'mean': 5.0, 'std': 0.0}
    assert result['tfs/signs'] == {'num': 2, 'mean': 0.0, 'std': 1.0}  # kept from the last period
    assert result['tfs/bad'] == {'num': 1, 'mean': 4.0, 'std': 0.0}  # a NaN spoils one period only

    fresh = stats.Collector('tfs/.*', keep_previous=False)
    stats.report('tfs/loss', 7.0)
    fresh.update()
    assert fresh.num('tfs/loss') == 1 and fresh.num('tfs/signs') == 0


WORKER = textwrap.dedent('''
    import json, math, sys
    import torch
    from eg3d_runtime.training import stats
    rank, init_file = int(sys.argv[1]), sys.argv[2]
    torch.distributed.init_process_group('gloo', init_method='file://' + init_file, rank=rank, world_size=2)
    stats.init_multiprocessing(rank, torch.device('cpu'))
    collector = stats.Collector()
    stats.report('x', [1.0, 2.0] if rank == 0 else [3.0, 4.0, 5.0])
    stats.report0('only0', 7.0)
    stats.report('never', [])
    collector.update()
    first = collector.as_dict()
    stats.report('x', [])
    stats.report0('only0', 9.0)
    stats.report('never', [])
    collector.update()
    second = collector.as_dict()
    stats.report('p' if rank == 0 else 'q', 1.0)
    try:
        collector.update()
        mismatch = None
    except RuntimeError as err:
        mismatch = str(err)
    print(json.dumps([first, second, mismatch]), flush=True)
    # Without this, gloo's threads are torn down at exit and about a third of runs abort
    # ("terminate called without an active exception", exit -6), as CI saw.
    torch.distributed.destroy_process_group()
''')


def test_stats_pooled_over_two_gloo_processes(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    init_file = str(tmp_path / 'init')
    procs = [subprocess.Popen([sys.executable, '-c', WORKER, str(rank), init_file], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    for first, second, mismatch in results:
        assert list(first) == ['x', 'only0', 'never']
        assert first['x'] == {'num': 5, 'mean': pytest.approx(values.mean()),
                              'std': pytest.approx(values.std())}
        assert first['only0'] == {'num': 1, 'mean': 7.0, 'std': 0.0}
        assert first['never']['num'] == 0 and math.isnan(first['never']['mean'])
        assert second['x'] == first['x']
        assert second['only0'] == {'num': 1, 'mean': 9.0, 'std': 0.0}
        assert mismatch is not None and 'different statistic names' in mismatch
    assert json.dumps(results[0][:2]) == json.dumps(results[1][:2])
