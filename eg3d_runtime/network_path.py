"""The network argument of the viewer and of every command (generate, bench, shapes_export,
train --resume): a pickle, a training run directory (its latest snapshot) or a released
checkpoint name, so that all of them accept the same things."""
from pathlib import Path

import checkpoints

from . import progress
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
    missing from the cache is downloaded first, with a progress bar on `stream` (stderr, when a
    terminal: eg3d_runtime.progress). Offline, the PickleLoadError says which file from which
    URL, and where to put it."""
    path, ckpt = locate_network(text)
    if ckpt is None:
        return path
    with progress.bar(f'downloading {ckpt.filename} from {ckpt.url}', stream=stream, unit='B',
                      unit_scale=True, unit_divisor=1024) as shown:
        try:
            return str(checkpoints.download(
                ckpt.name, on_progress=lambda done, total: progress.advance(shown, done, total)))
        except checkpoints.DownloadError as e:
            raise PickleLoadError(str(e)) from None
