"""Network pickle: path field, file browser, Recent list, released names, run directories,
drag-and-drop (routed here by the app), and the extra pickles given on the command line."""
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imgui_bundle import imgui

import checkpoints
from eg3d_runtime.network_path import resolve_network
from eg3d_runtime.remote.client import RemoteError
from eg3d_runtime.run_directory import latest_snapshot

from .background import BackgroundTask
from .gui_helpers import button, error_text, label
from .settings import RecentList, config_dir


@dataclass(frozen=True)
class FolderListing:
    """What the file browser shows of one folder."""
    folder: Path
    folders: tuple[Path, ...] = ()
    files: tuple[Path, ...] = ()         # those with the browser's suffixes
    is_run: bool = False                 # a training run: offer its latest snapshot
    error: str | None = None


def list_folder(folder, suffixes=('.pkl',)):
    try:
        entries = [(entry.is_dir(), entry) for entry in folder.iterdir()
                   if not entry.name.startswith('.')]
    except OSError as e:
        return FolderListing(folder, error=f'cannot list: {e.strerror}')
    entries.sort(key=lambda item: item[1].name)
    return FolderListing(folder, tuple(e for is_dir, e in entries if is_dir),
                         tuple(e for is_dir, e in entries
                               if not is_dir and e.suffix.lower() in suffixes),
                         latest_snapshot(folder) is not None)


class FolderLister:
    """Lists the browser's folder on its own thread, at once when the folder changes and then
    every second while the browser keeps asking: the GUI only reads the newest listing, so a slow
    or network file system never stalls a frame."""
    REFRESH_SECONDS = 1.0

    def __init__(self, suffixes=('.pkl',), list_fn=list_folder):
        self.suffixes = suffixes
        self._list = list_fn                  # list_folder, or a render server's listing
        self._wake = threading.Condition()
        self._folder = None
        self._asked = -float('inf')          # when the GUI last asked
        self._listing = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name='folder-lister')
        self._thread.start()

    def listing(self, folder):
        """The newest listing of `folder`, or None until its first one is ready."""
        with self._wake:
            now = time.monotonic()
            if folder != self._folder or now - self._asked > self.REFRESH_SECONDS:
                self._wake.notify()              # a new folder, or the lister went idle
            self._folder, self._asked = folder, now
            listing = self._listing
        return listing if listing is not None and listing.folder == folder else None

    def close(self):
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def _idle(self):
        return self._folder is None or time.monotonic() - self._asked > self.REFRESH_SECONDS

    def _run(self):
        while True:
            with self._wake:
                while not self._stop and self._idle():
                    self._wake.wait()
                if self._stop:
                    return
                folder = self._folder
            listing = self._list(folder, self.suffixes)
            with self._wake:
                self._listing = listing
                if folder == self._folder and not self._stop:
                    self._wake.wait(self.REFRESH_SECONDS)   # a new folder wakes it earlier


def browse_popup(popup_id, lister, folder, run_entry=None):
    """The file browser popup: folders to walk and the lister's files to pick (with `run_entry`,
    a training run's folder itself too). Returns (folder now shown, path picked or None)."""
    if not imgui.begin_popup(popup_id):
        return folder, None
    imgui.text_disabled(str(folder))
    imgui.separator()
    listing = lister.listing(folder) or FolderListing(folder)
    if listing.error:
        error_text(listing.error)
    keep_open = imgui.SelectableFlags_.dont_close_popups
    picked, shown = None, folder
    if imgui.selectable('..', False, keep_open)[0]:
        shown = folder.parent
    if run_entry and listing.is_run and imgui.selectable(run_entry, False)[0]:
        picked = folder
    for sub in listing.folders:
        if imgui.selectable(sub.name + '/', False, keep_open)[0]:
            shown = sub
    for path in listing.files:
        if imgui.selectable(path.name, False)[0]:
            picked = path
    imgui.end_popup()
    return shown, picked


def server_lister(link):
    """A list function for FolderLister that lists a render server's folder (only under the
    folders it serves; it answers a refusal as the listing's error)."""
    def list_remote(folder, suffixes):
        connection = link.connection
        if link.disconnected:
            return FolderListing(folder, error=f'disconnected: {link.disconnected}')
        try:
            reply = connection.call('list', path=str(folder)).fields
        except RemoteError as e:
            return FolderListing(folder, error=str(e))
        if reply.get('error'):
            return FolderListing(folder, error=str(reply['error']))
        names = reply.get('folders') or [], reply.get('files') or []
        return FolderListing(folder, tuple(folder / str(n) for n in names[0]),
                             tuple(folder / str(n) for n in names[1]
                                   if PurePosixPath(str(n)).suffix.lower() in suffixes),
                             bool(reply.get('is_run')))
    return list_remote


class PickleWidget(BackgroundTask):
    """With `remote` (a RemoteLink), paths and released names are the server's: it resolves
    and downloads them, the browser lists its folders, and Recent is kept per server."""

    def __init__(self, viz, paths=(), recent=None, remote=None):
        self.viz = viz
        self.remote = remote
        if recent is None and remote is not None:
            host = remote.info.get('host', 'server')
            recent = RecentList(config_dir() / f'recent-{host}.json')
        self.recent = recent if recent is not None else RecentList()
        self.others = [str(p) for p in paths[1:]]
        self.text = ''
        self.pkl = None                  # the path rendered
        self._previous_pkl = None        # restored if the new one fails to load
        self._entered = None             # what the user typed for the network being opened
        self.error = None
        self._downloading = None         # the released name being downloaded
        self._downloaded = False
        if remote is None:
            self.browse_dir = Path.cwd()
            self._lister = FolderLister()
        else:
            self.browse_dir = PurePosixPath(remote.info.get('cwd') or '/')
            self._lister = FolderLister(list_fn=server_lister(remote))
        if paths:
            self.load(str(paths[0]))

    @staticmethod
    def resolved_paths(texts):
        """Local paths of the command-line networks that exist (for compare panels)."""
        return [path for path, _, _ in map(resolve_network, texts) if path]

    def close(self):
        self._lister.close()

    def load(self, text):
        self.text = text
        if self.remote is not None:        # the server resolves (and downloads) what it names
            self._previous_pkl, self.pkl = self.pkl, text.strip()
            self._entered, self.error = text, None
            self.viz.on_network_selected(self.pkl, checkpoints.resolve(text))
            return
        path, ckpt, error = resolve_network(text)
        self.error = error
        if error:
            return
        if ckpt is not None:
            self._start_download(ckpt)
            return
        self._previous_pkl, self.pkl = self.pkl, path
        self._entered = text
        self.viz.on_network_selected(path, checkpoints.resolve(text))

    def loaded(self, path):
        """The renderer opened `path`: remember it in the Recent list."""
        if path == self.pkl and self._entered is not None:
            self.recent.add(self._entered if checkpoints.resolve(self._entered) else path)
            self._entered = None

    def load_failed(self, path, error):
        """The renderer could not open `path`: show why and go back to the previous network."""
        if path == self.pkl:
            self.error = error
            self.pkl, self._previous_pkl = self._previous_pkl, None
            self._entered = None

    @property
    def download(self):
        """(name, fraction or None) from the start of a download until the GUI has taken its
        end (then the network opens, or its one-line error shows)."""
        if self._downloading is None:
            return None
        return self.progress or (self._downloading, 1.0 if self._downloaded else None)

    def _start_download(self, ckpt):
        if self._downloading is not None:
            return
        self._downloading, self._downloaded = ckpt.name, False

        def work():
            checkpoints.download(ckpt.name, on_progress=lambda done, total: setattr(
                self, 'progress', (ckpt.name, done / total if total else None)))
            self._downloaded = True
            return ''
        self._start('download', (ckpt.name, None), work, (), '', checkpoints.DownloadError,
                    f'{ckpt.filename}: download failed')

    def _poll_download(self):
        if self._downloading is None or self.running:
            return
        name, self._downloading = self._downloading, None
        if self._downloaded:
            self.load(name)
        else:
            self.error = self.message

    def __call__(self, show=True):
        self._poll_download()
        if not show:
            return
        viz = self.viz
        label('Pickle', viz.label_w)
        imgui.set_next_item_width(-viz.button_w * 3 - viz.spacing * 3)
        entered, self.text = imgui.input_text_with_hint(
            '##pkl', 'path | run dir | released name (ffhq512-128 ...)', self.text,
            imgui.InputTextFlags_.enter_returns_true)
        if entered:
            self.load(self.text)
        imgui.same_line()
        if button('Browse...', width=viz.button_w):
            imgui.open_popup('browse_popup')
        imgui.same_line()
        if button('Recent...', enabled=bool(self.recent.items), width=viz.button_w):
            imgui.open_popup('recent_popup')
        imgui.same_line()
        if button('Released...', width=viz.button_w):
            imgui.open_popup('released_popup')
        self._recent_popup()
        self._released_popup()
        self._browse_popup()
        imgui.set_cursor_pos_x(viz.label_w)
        if self.download is not None:
            name, fraction = self.download
            imgui.progress_bar(fraction if fraction is not None else 0.0, imgui.ImVec2(-1, 0),
                               f'Downloading {name}...')
        elif self.error:
            error_text(self.error)
        elif self.pkl:
            imgui.text_disabled(self.pkl)
        else:
            imgui.text_disabled('No network loaded (drop a .pkl on the window)')
        for other in self.others:
            imgui.set_cursor_pos_x(viz.label_w)
            if imgui.small_button(f'Open {Path(other).name}##{other}'):
                self.load(other)

    def _recent_popup(self):
        if imgui.begin_popup('recent_popup'):
            for item in self.recent.items:
                if imgui.selectable(item, False)[0]:
                    self.load(item)
            imgui.end_popup()

    def _released_popup(self):
        if imgui.begin_popup('released_popup'):
            for ckpt in checkpoints.RELEASED.values():
                if self.remote is not None:
                    text = f'{ckpt.name}  (on the server: downloaded there when missing)'
                else:
                    here = checkpoints.local_path(ckpt.name).exists()
                    text = f'{ckpt.name}  ({"downloaded" if here else "download from NGC"})'
                if imgui.selectable(text, False)[0]:
                    self.load(ckpt.name)
            imgui.end_popup()

    def _browse_popup(self):
        self.browse_dir, picked = browse_popup('browse_popup', self._lister, self.browse_dir,
                                               '[open the latest snapshot of this run]')
        if picked:
            self.load(str(picked))

    def render_fields(self):
        return {'pkl': self.pkl}
