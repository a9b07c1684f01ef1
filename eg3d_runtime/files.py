"""Where the engine keeps per-user data, and how it replaces a file without ever leaving half
of one (a crash or a full disk mid-write keeps the previous version)."""
import contextlib
import os
import threading
from pathlib import Path


def cache_dir() -> Path:
    """~/.cache/eg3d-app (or $XDG_CACHE_HOME/eg3d-app): measurements, downloads, settings."""
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'eg3d-app'


def atomic_write(path, data):
    """Write `data` (str or bytes) to `path` via a synced temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'{path.name}.{os.getpid()}-{threading.get_ident()}.tmp')
    try:
        with open(tmp, 'w' if isinstance(data, str) else 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
