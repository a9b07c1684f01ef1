"""Every command takes the network argument the viewer takes: a pickle, a run directory or a
released name (from the cache, downloaded with a progress line, or one error line offline)."""
import io
import urllib.error
import urllib.request

import pytest
import torch

import checkpoints
import shapes_export
from eg3d_runtime import benchmark
from eg3d_runtime.commands import bench, generate
from eg3d_runtime.network_path import locate_network, network_path
from eg3d_runtime.pickles import PickleLoadError
from eg3d_runtime.training.options import TrainError
from eg3d_runtime.training.resume import resolve_resume_path
from viz.pickle_widget import resolve_network

NAME = 'ffhq512-128'


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty checkpoint cache, and no network: any download attempt fails as offline."""
    monkeypatch.setenv('EG3D_CHECKPOINT_DIR', str(tmp_path / 'ckpts'))

    def offline(request, timeout=None):
        raise urllib.error.URLError('no network')
    monkeypatch.setattr(urllib.request, 'urlopen', offline)
    return tmp_path / 'ckpts'


@pytest.fixture
def cached(cache, fixture_pkl):
    """The fixture pickle in the cache under a released file name."""
    cache.mkdir()
    (cache / f'{NAME}.pkl').symlink_to(fixture_pkl)
    return cache / f'{NAME}.pkl'


def test_released_name_in_the_cache_opens_in_every_command(cached, tmp_path, capsys):
    for text in (NAME, f'{NAME}.pkl'):
        assert network_path(text) == str(cached)
    assert resolve_network(NAME) == (str(cached.resolve()), None, None)      # the viewer
    assert resolve_resume_path(NAME) == str(cached)                          # train --resume

    assert generate.main(['--network', NAME, '--seeds', '0', '--nrr', '16', '--device', 'cpu',
                          '--outdir', str(tmp_path / 'images')]) == 0
    assert (tmp_path / 'images' / 'seed0000.png').is_file()
    assert shapes_export.main(['--network', NAME, '--resolution', '16', '--format', 'npy',
                               '--device', 'cpu', '--outdir', str(tmp_path / 'shapes')]) == 0
    assert (tmp_path / 'shapes' / 'seed0000.npy').is_file()
    G, name = benchmark.load(benchmark.BenchOptions(network=NAME), torch.device('cpu'))
    assert name == NAME and G.neural_rendering_resolution == 64
    assert capsys.readouterr().err == ''


def test_offline_without_the_file_is_one_line(cache, tmp_path, capsys):
    url = checkpoints.RELEASED[NAME].url
    expected = (f'error: {NAME}.pkl: cannot download {url} (no network); offline, put the file '
                f'at {cache / f"{NAME}.pkl"}\n')
    out = str(tmp_path / 'out')
    for main, argv in ((generate.main, ['--network', NAME, '--outdir', out]),
                       (shapes_export.main, ['--network', NAME, '--resolution', '16',
                                             '--outdir', out]),
                       (bench.main, ['--network', NAME, '--device', 'cpu'])):
        assert main(argv) == 1
        assert capsys.readouterr().err == expected
    with pytest.raises(TrainError) as e:
        resolve_resume_path(NAME)
    assert str(e.value) == f'--resume {expected[len("error: "):-1]}'


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_download_shows_one_progress_bar_on_a_terminal_only(cache, monkeypatch):
    data = b'x' * 3000

    class Response(io.BytesIO):
        status = 200
        headers = {'Content-Length': str(len(data))}
    monkeypatch.setattr(urllib.request, 'urlopen', lambda request, timeout=None: Response(data))
    stream = Terminal()
    assert network_path(NAME, stream) == str(cache / f'{NAME}.pkl')
    assert (cache / f'{NAME}.pkl').read_bytes() == data
    text = stream.getvalue()
    assert text.startswith(f'\rdownloading {NAME}.pkl from {checkpoints.RELEASED[NAME].url}: ')
    last = text.rstrip('\n').split('\r')[-1]
    assert '100%|' in last and ' 2.93k/2.93k ' in last and text.count('\n') == 1
    (cache / f'{NAME}.pkl').unlink()
    log = io.StringIO()                                # a log or a pipe: no bar
    assert network_path(NAME, log) == str(cache / f'{NAME}.pkl') and log.getvalue() == ''


def test_files_and_run_directories_come_first(cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / f'{NAME}.pkl').write_bytes(b'local')                  # a file of that name wins
    assert locate_network(f'{NAME}.pkl') == (f'{NAME}.pkl', None)
    run = tmp_path / 'run'
    run.mkdir()
    for kimg in (4, 12):
        (run / f'network-snapshot-{kimg:06d}.pkl').write_bytes(b'x')
    assert network_path(str(run)) == str(run / 'network-snapshot-000012.pkl')
    path, ckpt = locate_network('afhqcats512-128')                    # not cached: to download
    assert path is None and ckpt.name == 'afhqcats512-128'
    for text, problem in (('nope.pkl', 'no such file'),
                          (str(cache), 'no network-snapshot-*.pkl in this directory')):
        cache.mkdir(exist_ok=True)
        with pytest.raises(PickleLoadError) as e:
            network_path(text)
        assert str(e.value) == f'{text}: {problem}'
