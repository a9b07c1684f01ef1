"""The network argument of the viewer and of every command (generate, bench, shapes_export,
train --resume): a pickle, a training run directory (its latest snapshot) or a released
checkpoint name, so that all of them accept the same things."""
import sys
import time
from pathlib import Path

import checkpoints

from .pickles import PickleLoadError
from .run_directory import latest_snapshot


def locate_network(text):
    """Network argument -> (local path, None), or (None, Checkpoint) for a released checkpoint
    that is not in the cache yet. A file or directory of that name wins over a released name.
    Raises a one-line PickleLoadError when the argument names nothing."""
    text = str(text).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        snapshot = latest_snapshot(path)
        if snapshot is None:
            raise PickleLoadError(f'{path}: no network-snapshot-*.pkl in this directory')
        return str(snapshot), None
    if path.exists():
        return str(path), None
    ckpt = checkpoints.resolve(text)
    if ckpt is None:
        raise PickleLoadError(f'{path}: no such file')
    cached = checkpoints.local_path(ckpt.name)
    return (str(cached), None) if cached.exists() else (None, ckpt)


def resolve_network(text):
    """User text -> (absolute path or None, released Checkpoint to download or None, error or
    None): what the viewer opens (the download runs in the background there)."""
    try:
        path, ckpt = locate_network(text)
    except PickleLoadError as e:
        return None, None, str(e)
    return (str(Path(path).resolve()) if path else None), ckpt, None


def network_path(text, stream=None):
    """Network argument -> local pickle path, for the command-line tools: a released checkpoint
    missing from the cache is downloaded first, with a progress line on `stream` (stderr).
    Offline, the PickleLoadError says which file from which URL, and where to put it."""
    path, ckpt = locate_network(text)
    if ckpt is None:
        return path
    progress = _ProgressLine(ckpt, stream or sys.stderr)
    try:
        return str(checkpoints.download(ckpt.name, on_progress=progress))
    except checkpoints.DownloadError as e:
        raise PickleLoadError(str(e)) from None
    finally:
        progress.close()


class _ProgressLine:
    """One line rewritten in place (at most 10 times a second) while a download runs."""

    def __init__(self, ckpt, stream):
        self.text = f'downloading {ckpt.filename} from {ckpt.url}'
        self.stream, self.last, self.shown = stream, 0.0, False

    def __call__(self, done, total):
        now = time.monotonic()
        if self.shown and now - self.last < 0.1 and done != total:
            return
        self.last, self.shown = now, True
        size = f'{100 * done / total:3.0f}% of {total / 2**20:.0f} MB' if total else \
            f'{done / 2**20:.0f} MB'
        self.stream.write(f'\r{self.text}: {size}')
        self.stream.flush()

    def close(self):
        if self.shown:
            self.stream.write('\n')
            self.stream.flush()
