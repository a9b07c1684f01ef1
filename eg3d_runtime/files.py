"""Where the engine keeps per-user data, and how it replaces a file without ever leaving half
of one (a crash or a full disk mid-write keeps the previous version)."""
import contextlib
import os
import threading
from pathlib import Path


def cache_dir() -> Path:
    """~/.cache/eg3d-app (or $XDG_CACHE_HOME/eg3d-app): measurements, downloads, settings."""
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'eg3d-app'


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
