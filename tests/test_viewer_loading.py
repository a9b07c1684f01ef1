"""Opening networks: released names, run directories, Recent list, downloads, drag-and-drop."""
import io

import pytest

import checkpoints
from viz.pickle_widget import latest_snapshot, resolve_network
from viz.settings import RecentList

from conftest import frames


@pytest.fixture
def ckpt_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('EG3D_CHECKPOINT_DIR', str(tmp_path / 'ckpts'))
    return tmp_path / 'ckpts'


def test_registry_knows_the_released_checkpoints():
    assert set(checkpoints.RELEASED) == {'ffhq512-64', 'ffhq512-128', 'ffhqrebalanced512-64',
                                         'ffhqrebalanced512-128', 'afhqcats512-128',
                                         'shapenetcars128-64'}
    c = checkpoints.RELEASED['shapenetcars128-64']
    assert (c.family, c.nrr, c.filename) == ('shapenet', 64, 'shapenetcars128-64.pkl')
    assert c.url.startswith('https://') and c.url.endswith('/shapenetcars128-64.pkl')
    assert checkpoints.resolve('ffhq512-128.pkl').name == 'ffhq512-128'
    assert checkpoints.resolve('/some/ffhq512-128') is None


def test_run_directory_opens_its_latest_snapshot(tmp_path):
    for kimg in (0, 200, 40):
        (tmp_path / f'network-snapshot-{kimg:06d}.pkl').write_bytes(b'x')
    assert latest_snapshot(tmp_path).name == 'network-snapshot-000200.pkl'
    path, ckpt, error = resolve_network(str(tmp_path))
    assert path.endswith('network-snapshot-000200.pkl') and ckpt is None and error is None
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert resolve_network(str(empty))[2] == f'{empty}: no network-snapshot-*.pkl in this directory'
    assert resolve_network(str(tmp_path / 'nope.pkl'))[2].endswith('nope.pkl: no such file')


def test_released_name_resolves_to_the_cache(ckpt_dir):
    path, ckpt, error = resolve_network('ffhq512-64')
    assert path is None and ckpt.name == 'ffhq512-64' and error is None
    ckpt_dir.mkdir()
    (ckpt_dir / 'ffhq512-64.pkl').write_bytes(b'x')
    assert resolve_network('ffhq512-64')[0] == str(ckpt_dir / 'ffhq512-64.pkl')


class FakeResponse(io.BytesIO):
    def __init__(self, data, status=200, length=None):
        super().__init__(data)
        self.status = status
        self.headers = {'Content-Length': str(len(data) if length is None else length)}


def test_download_resumes_and_is_atomic(ckpt_dir):
    data = bytes(range(256)) * 100
    requests = []

    def opener(request, timeout):
        requests.append(request.headers.get('Range'))
        start = int(request.headers['Range'][6:-1]) if 'Range' in request.headers else 0
        return FakeResponse(data[start:], status=206 if start else 200)

    ckpt_dir.mkdir()
    (ckpt_dir / 'ffhq512-64.pkl.part').write_bytes(data[:1000])     # an interrupted download
    progress = []
    path = checkpoints.download('ffhq512-64', on_progress=lambda d, t: progress.append((d, t)),
                                opener=opener)
    assert requests == ['bytes=1000-']
    assert path.read_bytes() == data and not (ckpt_dir / 'ffhq512-64.pkl.part').exists()
    assert progress[-1] == (len(data), len(data))


def test_short_download_leaves_no_file(ckpt_dir):
    def opener(request, timeout):
        return FakeResponse(b'abc', length=10)
    with pytest.raises(checkpoints.DownloadError, match='incomplete'):
        checkpoints.download('ffhq512-128', opener=opener)
    assert not (ckpt_dir / 'ffhq512-128.pkl').exists()


def test_offline_says_where_to_put_the_file(ckpt_dir):
    import urllib.error

    def opener(request, timeout):
        raise urllib.error.URLError('no network')
    with pytest.raises(checkpoints.DownloadError) as e:
        checkpoints.download('afhqcats512-128', opener=opener)
    assert str(e.value) == ('afhqcats512-128.pkl: cannot download '
                            f'{checkpoints.RELEASED["afhqcats512-128"].url} (no network); '
                            f'offline, put the file at {ckpt_dir / "afhqcats512-128.pkl"}')


class NetworkSelections:
    """The viewer as PickleWidget sees it: the networks it was asked to open."""
    def __init__(self):
        self.opened = []

    def on_network_selected(self, path, checkpoint):
        self.opened.append((path, checkpoint.name if checkpoint else None))


def _download_in_the_widget(tmp_path, download):
    """Opens 'ffhq512-64' in a PickleWidget whose checkpoints.download is `download`; returns
    the widget once the GUI has taken the download's end, and the networks it opened."""
    from viz.pickle_widget import PickleWidget
    viz = NetworkSelections()
    widget = PickleWidget(viz, recent=RecentList(tmp_path / 'recent.json'))
    try:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(checkpoints, 'download', download)
            widget.load('ffhq512-64')
            assert widget.download is not None and widget.download[0] == 'ffhq512-64'
            widget.join(timeout=30)
            widget._poll_download()                 # what each frame of the GUI does first
        assert widget.download is None
        return widget, viz.opened
    finally:
        widget.close()


def test_a_download_opens_the_network_it_fetched(ckpt_dir, tmp_path):
    def download(name, on_progress, **_):
        on_progress(5, 10)
        ckpt_dir.mkdir()
        (ckpt_dir / f'{name}.pkl').write_bytes(b'x')
        return ckpt_dir / f'{name}.pkl'
    widget, opened = _download_in_the_widget(tmp_path, download)
    assert opened == [(str(ckpt_dir / 'ffhq512-64.pkl'), 'ffhq512-64')] and widget.error is None


@pytest.mark.parametrize('error, message', [
    (checkpoints.DownloadError('ffhq512-64.pkl: cannot download (no network)'),
     'ffhq512-64.pkl: cannot download (no network)'),
    # Not a DownloadError (an unwritable or full cache): the download still ends, in one line.
    (PermissionError(13, 'Permission denied'),
     'ffhq512-64.pkl: download failed: PermissionError: [Errno 13] Permission denied')])
def test_a_failed_download_ends_with_one_line(ckpt_dir, tmp_path, error, message):
    def download(name, on_progress, **_):
        raise error
    widget, opened = _download_in_the_widget(tmp_path, download)
    assert opened == [] and widget.error == message


def test_recent_list_survives_restarts(tmp_path):
    path = tmp_path / 'recent.json'
    recent = RecentList(path, limit=3)
    for item in ('a.pkl', 'b.pkl', 'a.pkl', 'c.pkl', 'd.pkl'):
        recent.add(item)
    assert RecentList(path, limit=3).items == ['d.pkl', 'c.pkl', 'a.pkl']
    path.write_text('{broken')
    assert RecentList(path).items == []


def test_drop_and_command_line_pickles(viewer, fixture_pkl, tmp_path):
    viz = viewer
    assert viz.pickle_widget.pkl == str(fixture_pkl.resolve())
    copy = tmp_path / 'copy.pkl'
    copy.write_bytes(fixture_pkl.read_bytes())
    viz.window._drop_paths.append(str(copy))             # what GLFW's drop callback delivers
    frames(viz, 2)
    assert viz.pickle_widget.pkl == str(copy)
    assert viz.settle(timeout=300)
    assert viz.pickle_widget.recent.items[0] == str(copy)


def test_the_file_browser_lists_folders_off_the_gui_thread(tmp_path):
    """The GUI only reads the newest listing: the first ask answers None, a new file shows up
    within the refresh period, and an unreadable folder comes back as an error."""
    import time

    from viz.pickle_widget import FolderLister
    (tmp_path / 'sub').mkdir()
    (tmp_path / '.hidden').mkdir()
    (tmp_path / 'a.pkl').write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('')
    lister = FolderLister()

    def wait(folder, ready):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            listing = lister.listing(folder)
            if listing is not None and ready(listing):
                return listing
            time.sleep(0.01)
        raise AssertionError(f'no listing of {folder}')
    try:
        listing = wait(tmp_path, lambda listing: True)
        assert listing.folders == (tmp_path / 'sub',) and listing.files == (tmp_path / 'a.pkl',)
        (tmp_path / 'b.pkl').write_bytes(b'')
        wait(tmp_path, lambda listing: len(listing.files) == 2)
        assert wait(tmp_path / 'missing', lambda listing: True).error.startswith('cannot list')
    finally:
        lister.close()
    assert not lister._thread.is_alive()
