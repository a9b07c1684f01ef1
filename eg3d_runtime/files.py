"""Where the engine keeps per-user data, how it replaces a file without ever leaving half of
one (a crash or a full disk mid-write keeps the previous version), and how a command's outputs
appear all together or not at all (Outputs)."""
import contextlib
import os
import re
import shutil
import signal
import threading
from pathlib import Path


def cache_dir() -> Path:
    """~/.cache/eg3d-app (or $XDG_CACHE_HOME/eg3d-app): measurements, downloads, settings."""
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'eg3d-app'


def next_capture_path(directory: Path, suffix: str) -> Path:
    """NNNNN<suffix> with NNNNN one more than the largest numbered file present (captures,
    meshes, inversions: the viewer's and a render server's)."""
    numbers = [int(m.group(1)) for p in directory.glob('*') if (m := re.match(r'(\d+)', p.name))]
    return directory / f'{max(numbers, default=0) + 1:05d}{suffix}'


@contextlib.contextmanager
def atomic_open(path, mode='wb', encoding=None, part=None):
    """Yield a file that becomes `path` only if the block ends without an exception: it is
    written under a hidden temporary name in the same folder, synced, renamed over any previous
    `path` and the rename synced, so readers never see half a file and a crash, full disk or
    Ctrl-C keeps the previous one (a hard kill may leave a stray `.<name>.*.tmp`).

    The temporary file is named by process and thread rather than made by tempfile.mkstemp,
    whose 0600 mode would survive the rename. A resumable download passes its `part` file
    instead (mode 'ab' to go on with it): that one is kept on failure for the next try."""
    path = Path(path)
    temp = Path(part) if part else path.with_name(
        f'.{path.name}.{os.getpid()}-{threading.get_ident()}.tmp')
    try:
        with open(temp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if not part:
            with contextlib.suppress(OSError):
                os.remove(temp)
        raise
    _sync_directory(path.parent)


def atomic_write(path, data):
    """Write `data` (str as UTF-8, or bytes) to `path` with `atomic_open`, making its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = isinstance(data, str)
    with atomic_open(path, 'w' if text else 'wb', 'utf-8' if text else None) as f:
        f.write(data)


def _sync_directory(directory):
    """Make a rename itself durable where directories can be opened (POSIX)."""
    if not hasattr(os, 'O_DIRECTORY'):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutputExists(Exception):
    """An output would replace an earlier result and --force was not given; one line."""


class Outputs:
    """The files or folders `names` that a command writes into `folder`, all or none.

        outputs = Outputs('out', ['seed0000.png', 'seed0000_depth.png'], force=False)
        outputs.check()              # before any work: OutputExists, one line
        with outputs:
            image.save(outputs.path('seed0000.png')) ...

    Inside the block everything is written into a hidden staging folder beside the
    destination: inside `folder` when it exists, else a sibling `.<folder>.partial-<pid>` that
    becomes `folder` with one rename. Only a block that ends without an exception moves the
    results into place (SIGINT and SIGTERM held back meanwhile); an error, Ctrl-C or SIGTERM
    deletes the staging folder, so neither half a result nor an empty folder is left behind.

    A name that already exists in `folder` is an earlier result: refused unless `force`; with
    `force` it is replaced, and the names of the set this run did not write are removed, so no
    earlier result survives half-replaced. Other files in `folder` are never touched."""

    def __init__(self, folder, names, force=False):
        self.folder = Path(folder).expanduser()
        self.names = list(dict.fromkeys(str(n) for n in names))
        self.force = force
        self.staging = self._last = None

    def existing(self):
        """The names of the set that exist in the folder now."""
        if not self.folder.is_dir():
            return []
        return [n for n in self.names if os.path.lexists(self.folder / n)]

    def check(self):
        """Raise OutputExists now if the outputs could not be written."""
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputExists(f'{self.folder}: is a file, not a folder')
        found = [] if self.force else self.existing()
        if found:
            more = f' (and {len(found) - 1} more of the outputs)' if len(found) > 1 else ''
            raise OutputExists(f'{self.folder / found[0]}{more}: exists from an earlier run '
                               '(add --force to replace it)')

    def path(self, name):
        """Where output `name` (one of `names`, or a path inside one of them) is written while
        the block runs; its parent folder exists."""
        if Path(name).parts[0] not in self.names:
            raise ValueError(f'{name} is not one of the declared outputs')
        path = self._last = self.staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def __enter__(self):
        self.check()
        if self.folder.is_dir():
            self.staging = self.folder / f'.partial-{os.getpid()}'
        else:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            self.staging = self.folder.with_name(f'.{self.folder.name}.partial-{os.getpid()}')
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir()
        return self

    def __exit__(self, kind, error, trace):
        try:
            if kind is None:
                with _signals_held():
                    self._commit()
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
        if isinstance(error, OSError):   # name the output (the one asked for last), not staging
            with contextlib.suppress(ValueError, TypeError):
                staged = Path(error.filename or self._last)
                error.filename = str(self.folder / staged.relative_to(self.staging))
        return False

    def _commit(self):
        for path in self.staging.rglob('*'):
            if path.is_file():
                _sync_file(path)
        if not self.folder.exists():
            with contextlib.suppress(OSError):    # unless the folder appeared meanwhile
                os.rename(self.staging, self.folder)
                _sync_directory(self.folder.parent)
                return
        self.check()   # an earlier result that appeared while the work ran is not replaced
        written = [p.name for p in self.staging.iterdir()]
        trash = self.staging / '.replaced'
        for name in self.existing():
            if name not in written or (self.folder / name).is_dir():
                trash.mkdir(exist_ok=True)
                os.replace(self.folder / name, trash / name)
        for name in written:
            os.replace(self.staging / name, self.folder / name)
        _sync_directory(self.folder)


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM wait until the block ends (main thread; elsewhere nothing to hold)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, 'pthread_sigmask'):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _sync_file(path):
    with open(path, 'rb') as f:
        os.fsync(f.fileno())
