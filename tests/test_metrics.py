"""Training metrics: FID maths, statistics (single and multi-process), cache, detector file."""
import hashlib
import json
import os

import numpy as np
import PIL.Image
import pytest
import torch

from eg3d_runtime.metrics import (METRICS, MetricUnavailable, calc_metric, dataset_stats,
                                  frechet_distance, generator_stats, is_valid_metric,
                                  report_metric)
from eg3d_runtime.metrics import inception
from eg3d_runtime.metrics.fid import FeatureStats

from conftest import QuietHandler, local_server

# Names train.py accepts (docs/eg3d-reference.md 4.3).
OFFICIAL_NAMES = ['fid50k_full', 'kid50k_full', 'pr50k3_full', 'ppl2_wend', 'eqt50k_int',
                  'eqt50k_frac', 'eqr50k', 'fid50k', 'kid50k', 'pr50k3', 'is50k']


class StandIn(torch.nn.Module):
    """A fixed random conv net: uint8 [N,3,H,W] -> 64-d features."""
    detector_id = 'standin'

    def __init__(self):
        super().__init__()
        torch.manual_seed(123)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 4, stride=4), torch.nn.ReLU(),
                                       torch.nn.Conv2d(16, 64, 3, padding=1), torch.nn.ReLU())
        self.calls = 0

    @torch.no_grad()
    def forward(self, images):
        assert images.dtype == torch.uint8 and images.shape[1] == 3
        self.calls += 1
        return self.net(images.float() / 127.5 - 1).mean(dim=(2, 3))


class Images:
    """ImageFolderDataset-like: smooth random uint8 images and 25-d camera-like labels."""

    def __init__(self, count, seed=0, shift=0, channels=3, path=None):
        rng = np.random.default_rng(seed)
        base = rng.uniform(40, 200, size=(count, channels, 4, 4))
        big = np.kron(base, np.ones((8, 8))) + rng.normal(0, 10, size=(count, channels, 32, 32))
        self.images = np.clip(big + shift, 0, 255).astype(np.uint8)
        self.labels = rng.normal(size=(count, 25)).astype(np.float32)
        if path is not None:
            self.training_set_kwargs = {'path': path}

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


class FakeG(torch.nn.Module):
    """A generator with the TriPlaneGenerator call signature; remembers the labels it got."""
    z_dim, c_dim = 8, 25

    def __init__(self, channels=3):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(self.z_dim, channels * 32 * 32) * 0.3)
        self.channels = channels
        self.seen_c = []

    def forward(self, z, c, noise_mode='random'):
        self.seen_c.append(c)
        return {'image': torch.tanh(z @ self.weight).view(len(z), self.channels, 32, 32)}


def stats(dataset, **kwargs):
    return dataset_stats(dataset, StandIn(), 'cpu', batch_size=32, num_workers=0, **kwargs)


# ----------------------------------------------------------------------------------------------
# Maths.

def test_frechet_distance_matches_eigenvalue_formula():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) + 0.5
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr(sqrt(S1 S2)) = sum of the square roots of the (real, non-negative) eigenvalues of S1 S2.
    tr_root = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_root
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-8 * np.trace(s1))
    # 1-d Gaussians: (m1 - m2)^2 + (sd1 - sd2)^2.
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]),
                            np.array([[9.0]])) == pytest.approx(4 + 1)


def test_feature_stats_match_numpy_and_stop_at_max_items():
    x = np.random.default_rng(2).normal(size=(50, 6)).astype(np.float32)
    s = FeatureStats(max_items=40)
    for chunk in np.split(x, 5):
        s.append(chunk)
    assert s.is_full() and s.num_items == 40
    mean, cov = s.mean_cov()
    np.testing.assert_allclose(mean, x[:40].astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x[:40], rowvar=False, bias=True), atol=1e-10)


# ----------------------------------------------------------------------------------------------
# Statistics and FID with a stand-in detector.

def test_dataset_fid_is_zero_against_itself_and_grows_with_a_shift():
    real = stats(Images(120, seed=0))
    again = stats(Images(120, seed=0))
    other_half = stats(Images(120, seed=1))
    shifted = stats(Images(120, seed=1, shift=50))
    assert frechet_distance(*real, *again) == pytest.approx(0, abs=1e-6)
    same_distribution = frechet_distance(*real, *other_half)
    assert frechet_distance(*real, *shifted) > 10 * same_distribution > 0


def test_dataset_stats_use_first_max_items_and_grey_images():
    full = Images(60, channels=1)
    mean, cov = stats(full, max_items=25)
    first = Images(60, channels=1)
    first.images = first.images[:25]
    mean25, cov25 = stats(first)
    np.testing.assert_allclose(mean, mean25, rtol=1e-6)
    np.testing.assert_allclose(cov, cov25, rtol=1e-5, atol=1e-9)


def test_dataset_stats_are_cached_by_file_and_detector(tmp_path):
    data_file = tmp_path / 'faces.zip'
    data_file.write_bytes(b'dataset')
    dataset = Images(40, path=str(data_file))
    first = stats(dataset, cache_dir=tmp_path / 'cache')
    files = list((tmp_path / 'cache' / 'gan-metrics').iterdir())
    assert len(files) == 1 and files[0].name.startswith('faces-standin-')

    detector = StandIn()
    cached = dataset_stats(dataset, detector, 'cpu', num_workers=0, cache_dir=tmp_path / 'cache')
    assert detector.calls == 0
    np.testing.assert_array_equal(cached[1], first[1])

    os.utime(data_file, ns=(1, 1))  # a changed file is a new key
    dataset_stats(dataset, detector, 'cpu', num_workers=0, cache_dir=tmp_path / 'cache')
    assert detector.calls > 0
    assert len(list((tmp_path / 'cache' / 'gan-metrics').iterdir())) == 2


def test_generator_stats_use_dataset_labels_and_uint8_images():
    torch.manual_seed(0)
    np.random.seed(0)
    G, dataset = FakeG(channels=1), Images(30)
    mean, cov = generator_stats(G, dataset, StandIn(), 'cpu', num_items=10, batch_size=8,
                                batch_gen=4)
    assert mean.shape == (64,) and cov.shape == (64, 64) and np.isfinite(cov).all()
    seen = torch.cat(G.seen_c).numpy()
    assert len(seen) == 16  # two steps of 8, the last one trimmed to 10 items
    assert all((dataset.labels == row).all(axis=1).any() for row in seen)


def test_generator_stats_run_the_triplane_generator(fixture_G):
    torch.manual_seed(0)
    mean, cov = generator_stats(fixture_G, Images(4), StandIn(), 'cpu', num_items=1,
                                batch_size=1, batch_gen=1)
    assert mean.shape == (64,) and np.isfinite(mean).all()


# ----------------------------------------------------------------------------------------------
# Registry, result dict, jsonl.

def test_registry_accepts_every_official_name():
    assert all(is_valid_metric(name) for name in OFFICIAL_NAMES)
    assert not is_valid_metric('fid50')
    assert {name for name, spec in METRICS.items() if spec is not None} == {
        'fid50k_full', 'fid50k', 'fid10k_full', 'fid5k_full', 'fid2k_full', 'fid1k_full'}
    assert METRICS['fid50k_full'] == (None, 50000) and METRICS['fid50k'] == (50000, 50000)
    with pytest.raises(MetricUnavailable, match=r'^metric kid50k_full is not implemented here'):
        calc_metric('kid50k_full', FakeG(), Images(4))
    with pytest.raises(ValueError, match="unknown metric 'fid50'"):
        calc_metric('fid50', FakeG(), Images(4))


def test_calc_metric_and_report(tmp_path, monkeypatch):
    monkeypatch.setitem(METRICS, 'fid1k_full', METRICS['fid1k_full']._replace(num_gen=48))
    seen = []
    result = calc_metric('fid1k_full', FakeG(), Images(40), detector=StandIn(), batch_size=16,
                         num_workers=0, progress=lambda done, total: seen.append((done, total)))
    assert list(result) == ['results', 'metric', 'total_time', 'total_time_str', 'num_gpus']
    assert list(result['results']) == ['fid1k_full'] and result['results']['fid1k_full'] > 0
    assert result['metric'] == 'fid1k_full' and result['num_gpus'] == 1
    assert result['total_time_str'] == f"{int(round(result['total_time']))}s"
    assert seen[0] == (16, 88) and seen[-1] == (88, 88)

    snapshot = tmp_path / 'network-snapshot-000004.pkl'
    report_metric(result, str(tmp_path), str(snapshot))
    report_metric(result, str(tmp_path), 'network-snapshot-000008.pkl')
    lines = (tmp_path / 'metric-fid1k_full.jsonl').read_text().splitlines()
    first = json.loads(lines[0])
    assert list(first) == ['results', 'metric', 'total_time', 'total_time_str', 'num_gpus',
                           'snapshot_pkl', 'timestamp']
    assert first['snapshot_pkl'] == 'network-snapshot-000004.pkl'
    assert json.loads(lines[1])['snapshot_pkl'] == 'network-snapshot-000008.pkl'


def test_full_metrics_read_every_unmirrored_image(tmp_path, monkeypatch):
    from eg3d_runtime.training.dataset import ImageFolderDataset
    rng = np.random.default_rng(3)
    for i in range(5):
        PIL.Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
            tmp_path / f'{i}.png')
    dataset = ImageFolderDataset(tmp_path, max_size=3, xflip=True)
    assert len(dataset) == 6
    monkeypatch.setitem(METRICS, 'fid1k_full', METRICS['fid1k_full']._replace(num_gen=4))
    monkeypatch.setitem(METRICS, 'fid50k', METRICS['fid50k']._replace(num_gen=4))
    G = FakeG(channels=3)
    G.c_dim = 0
    G.seen_c = []

    def count_reals(metric):
        seen = []
        calc_metric(metric, G, dataset, detector=StandIn(), batch_size=4, num_workers=0,
                    cache=False, progress=lambda done, total: seen.append(total))
        return seen[0] - 4
    assert count_reals('fid1k_full') == 5  # max_size and xflip dropped
    assert count_reals('fid50k') == 10  # max_size dropped, mirrored copies kept
    assert all(c.shape == (4, 0) for c in G.seen_c)


# ----------------------------------------------------------------------------------------------
# Multi-process: strided shares gathered back give the single-process statistics.

def _distributed_worker(rank, directory):
    torch.distributed.init_process_group('gloo', init_method=f'file://{directory}/init',
                                         rank=rank, world_size=2)
    torch.manual_seed(rank)
    np.random.seed(rank)
    mean, cov = dataset_stats(Images(37), StandIn(), 'cpu', batch_size=8, num_gpus=2, rank=rank,
                              num_workers=0)
    METRICS['fid1k_full'] = METRICS['fid1k_full']._replace(num_gen=10)
    result = calc_metric('fid1k_full', FakeG(), Images(37), num_gpus=2, rank=rank,
                         detector=StandIn(), batch_size=4, num_workers=0)
    np.savez(f'{directory}/rank{rank}.npz', mean=mean, cov=cov,
             fid=result['results']['fid1k_full'])
    torch.distributed.destroy_process_group()


@pytest.mark.slow  # two spawned processes importing torch: ~25 s on a busy machine
def test_two_processes_match_one(tmp_path):
    torch.multiprocessing.spawn(_distributed_worker, args=(str(tmp_path),), nprocs=2)
    mean, cov = stats(Images(37))
    out = [np.load(tmp_path / f'rank{rank}.npz') for rank in range(2)]
    for rank in out:
        np.testing.assert_allclose(rank['mean'], mean, rtol=1e-6)
        np.testing.assert_allclose(rank['cov'], cov, rtol=1e-5, atol=1e-9)
    assert out[0]['fid'] == out[1]['fid'] > 0


# ----------------------------------------------------------------------------------------------
# The Inception detector and its weights file.

def _documented_state_shapes():
    """Parameter/statistic shapes of pytorch-fid's FID Inception (torchvision's Inception3 layout,
    aux classifier dropped, fc 2048->1008), written out from its documented layer list."""
    convs = [('Conv2d_1a_3x3', 3, 32, 3, 3), ('Conv2d_2a_3x3', 32, 32, 3, 3),
             ('Conv2d_2b_3x3', 32, 64, 3, 3), ('Conv2d_3b_1x1', 64, 80, 1, 1),
             ('Conv2d_4a_3x3', 80, 192, 3, 3)]
    for name, cin, pool in (('5b', 192, 32), ('5c', 256, 64), ('5d', 288, 64)):
        convs += [(f'Mixed_{name}.{b}', *s) for b, s in [
            ('branch1x1', (cin, 64, 1, 1)), ('branch5x5_1', (cin, 48, 1, 1)),
            ('branch5x5_2', (48, 64, 5, 5)), ('branch3x3dbl_1', (cin, 64, 1, 1)),
            ('branch3x3dbl_2', (64, 96, 3, 3)), ('branch3x3dbl_3', (96, 96, 3, 3)),
            ('branch_pool', (cin, pool, 1, 1))]]
    convs += [(f'Mixed_6a.{b}', *s) for b, s in [
        ('branch3x3', (288, 384, 3, 3)), ('branch3x3dbl_1', (288, 64, 1, 1)),
        ('branch3x3dbl_2', (64, 96, 3, 3)), ('branch3x3dbl_3', (96, 96, 3, 3))]]
    for name, c7 in (('6b', 128), ('6c', 160), ('6d', 160), ('6e', 192)):
        convs += [(f'Mixed_{name}.{b}', *s) for b, s in [
            ('branch1x1', (768, 192, 1, 1)), ('branch7x7_1', (768, c7, 1, 1)),
            ('branch7x7_2', (c7, c7, 1, 7)), ('branch7x7_3', (c7, 192, 7, 1)),
            ('branch7x7dbl_1', (768, c7, 1, 1)), ('branch7x7dbl_2', (c7, c7, 7, 1)),
            ('branch7x7dbl_3', (c7, c7, 1, 7)), ('branch7x7dbl_4', (c7, c7, 7, 1)),
            ('branch7x7dbl_5', (c7, 192, 1, 7)), ('branch_pool', (768, 192, 1, 1))]]
    convs += [(f'Mixed_7a.{b}', *s) for b, s in [
        ('branch3x3_1', (768, 192, 1, 1)), ('branch3x3_2', (192, 320, 3, 3)),
        ('branch7x7x3_1', (768, 192, 1, 1)), ('branch7x7x3_2', (192, 192, 1, 7)),
        ('branch7x7x3_3', (192, 192, 7, 1)), ('branch7x7x3_4', (192, 192, 3, 3))]]
    for name, cin in (('7b', 1280), ('7c', 2048)):
        convs += [(f'Mixed_{name}.{b}', *s) for b, s in [
            ('branch1x1', (cin, 320, 1, 1)), ('branch3x3_1', (cin, 384, 1, 1)),
            ('branch3x3_2a', (384, 384, 1, 3)), ('branch3x3_2b', (384, 384, 3, 1)),
            ('branch3x3dbl_1', (cin, 448, 1, 1)), ('branch3x3dbl_2', (448, 384, 3, 3)),
            ('branch3x3dbl_3a', (384, 384, 1, 3)), ('branch3x3dbl_3b', (384, 384, 3, 1)),
            ('branch_pool', (cin, 192, 1, 1))]]
    shapes = {}
    for prefix, cin, cout, kh, kw in convs:
        shapes[f'{prefix}.conv.weight'] = (cout, cin, kh, kw)
        for stat in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{prefix}.bn.{stat}'] = (cout,)
    return shapes


def test_inception_layout_matches_pytorch_fid_weights():
    model = inception.InceptionFID()
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()
           if not k.endswith('num_batches_tracked')}
    assert own == _documented_state_shapes()
    # torchvision documents 27,161,264 parameters for Inception3 (1000 classes, aux classifier);
    # without the aux classifier (3,326,696) and fc (2,049,000) that leaves the feature layers.
    assert sum(p.numel() for p in model.parameters()) == 27_161_264 - 3_326_696 - 2_049_000


def _fake_weights_file(path, **changes):
    rng = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in _documented_state_shapes().items():
        if key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=rng) + 0.5
        elif key.endswith('conv.weight'):
            state[key] = torch.randn(shape, generator=rng) / np.sqrt(np.prod(shape[1:]))
        else:
            state[key] = torch.randn(shape, generator=rng) * 0.1
        if key.endswith('running_var'):
            state[key.replace('running_var', 'num_batches_tracked')] = torch.tensor(0)
    state['fc.weight'], state['fc.bias'] = torch.zeros(1008, 2048), torch.zeros(1008)
    state.update(changes)
    torch.save({k: v for k, v in state.items() if v is not None}, path)
    return state


def test_load_inception_reads_the_state_dict_and_runs_on_299(tmp_path):
    path = tmp_path / inception.WEIGHTS_FILE
    state = _fake_weights_file(path)
    model = inception.load_inception(path)
    torch.testing.assert_close(model.Mixed_7c.branch_pool.conv.weight,
                               state['Mixed_7c.branch_pool.conv.weight'])
    images = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8)
    features = model(images)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert (features >= 0).all() and features.std() > 0


def test_bad_weights_files_are_one_line_errors(tmp_path):
    missing = tmp_path / 'missing.pth'
    _fake_weights_file(missing, **{'Mixed_6e.branch_pool.bn.running_var': None})
    with pytest.raises(MetricUnavailable, match=r'missing\.pth: not the pytorch-fid Inception '
                                                r'weights \(Mixed_6e\.branch_pool\.bn\.'
                                                r'running_var: missing\)'):
        inception.load_inception(missing)
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a zip')
    with pytest.raises(MetricUnavailable, match=r'junk\.pth: cannot be read') as info:
        inception.load_inception(junk)
    assert '\n' not in str(info.value)


def test_offline_without_the_file_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv('EG3D_CACHE_DIR', str(tmp_path))
    monkeypatch.delenv('EG3D_INCEPTION_PATH', raising=False)
    monkeypatch.setattr(inception, 'WEIGHTS_URL', 'http://127.0.0.1:9/weights.pth')
    with pytest.raises(MetricUnavailable) as info:
        inception.get_inception()
    message = str(info.value)
    assert '\n' not in message and 'cannot download http://127.0.0.1:9/weights.pth' in message
    assert inception.WEIGHTS_FILE in message and '$EG3D_INCEPTION_PATH' in message
    assert str(tmp_path / inception.WEIGHTS_FILE) in message
    with pytest.raises(MetricUnavailable, match='nowhere.pth: no such file'):
        inception.weights_path(str(tmp_path / 'nowhere.pth'))


def test_weights_path_prefers_argument_then_environment_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('EG3D_CACHE_DIR', str(tmp_path / 'cache'))
    (tmp_path / 'cache').mkdir()
    cached = tmp_path / 'cache' / inception.WEIGHTS_FILE
    cached.write_bytes(b'x')
    env_file, arg_file = tmp_path / 'env.pth', tmp_path / 'arg.pth'
    env_file.write_bytes(b'x')
    arg_file.write_bytes(b'x')
    monkeypatch.delenv('EG3D_INCEPTION_PATH', raising=False)
    assert inception.weights_path(download=False) == cached
    monkeypatch.setenv('EG3D_INCEPTION_PATH', str(env_file))
    assert inception.weights_path() == env_file
    assert inception.weights_path(str(arg_file)) == arg_file


class _RangeServer(QuietHandler):
    payload = b''
    ranges = []

    def do_GET(self):
        start = int(self.headers['Range'][6:-1]) if self.headers['Range'] else 0
        type(self).ranges.append(start)
        self.reply(206 if start else 200, self.payload[start:])


@pytest.fixture
def range_server():
    _RangeServer.payload = os.urandom(3_000_000)
    _RangeServer.ranges = []
    with local_server(_RangeServer) as url:
        yield f'{url}/w.pth'


def test_download_resumes_checks_the_hash_and_moves_into_place(tmp_path, range_server):
    payload = _RangeServer.payload
    digest = hashlib.sha256(payload).hexdigest()[:8]
    dest = tmp_path / 'sub' / 'w.pth'
    dest.parent.mkdir()
    (tmp_path / 'sub' / 'w.pth.part').write_bytes(payload[:1_000_000])
    assert inception.download_weights(dest, range_server, sha256_prefix=digest) == dest
    assert dest.read_bytes() == payload and _RangeServer.ranges == [1_000_000]
    assert not (tmp_path / 'sub' / 'w.pth.part').exists()

    other = tmp_path / 'other.pth'
    with pytest.raises(MetricUnavailable, match='wrong sha256'):
        inception.download_weights(other, range_server, sha256_prefix='not a digest')
    assert not other.exists() and not (tmp_path / 'other.pth.part').exists()
