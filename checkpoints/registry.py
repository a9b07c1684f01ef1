"""Registry of the six released checkpoints (docs/eg3d-reference.md 4.4): file name, official
URL, family and the rendering defaults the viewer starts with. A name resolves to a file in the
cache directory; `download` fetches a missing one with a resumable, size-verified, atomic
write."""
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from eg3d_runtime.configs import FAMILY_CAMERAS
from eg3d_runtime.files import atomic_open, cache_dir

NGC_URL = 'https://api.ngc.nvidia.com/v2/models/nvidia/research/eg3d/versions/1/files/'
# The bundled demo network (`--cfg demo` distilled by eg3d_runtime.train from the procedural toys;
# README "Demo checkpoint" says how); `make run` opens it.
DEMO = Path(__file__).resolve().parent / 'demo.pkl'


@dataclass(frozen=True)
class Checkpoint:
    name: str
    family: str            # 'ffhq' | 'afhq' | 'shapenet'
    nrr: int               # neural rendering resolution it was trained at

    @property
    def fov_degrees(self):
        """A good starting field of view (official convention): the family's."""
        return FAMILY_CAMERAS[self.family].fov_degrees

    @property
    def filename(self):
        return f'{self.name}.pkl'

    @property
    def url(self):
        return NGC_URL + self.filename


RELEASED = {c.name: c for c in (
    Checkpoint('ffhq512-64', 'ffhq', 64),
    Checkpoint('ffhq512-128', 'ffhq', 128),
    Checkpoint('ffhqrebalanced512-64', 'ffhq', 64),
    Checkpoint('ffhqrebalanced512-128', 'ffhq', 128),
    Checkpoint('afhqcats512-128', 'afhq', 128),
    Checkpoint('shapenetcars128-64', 'shapenet', 64),
)}


class DownloadError(RuntimeError):
    pass


def checkpoint_dir() -> Path:
    base = os.environ.get('EG3D_CHECKPOINT_DIR')
    return Path(base) if base else cache_dir() / 'checkpoints'


def local_path(name) -> Path:
    return checkpoint_dir() / RELEASED[name].filename


def resolve(text):
    """A released name ('ffhq512-128' or 'ffhq512-128.pkl') -> its Checkpoint, else None."""
    key = text.strip()
    key = key[:-4] if key.endswith('.pkl') else key
    return RELEASED.get(key) if os.sep not in key else None


def download(name, on_progress=lambda done, total: None, cancelled=lambda: False, opener=None):
    """Fetch a released checkpoint into the cache; resumes a previous partial download.

    The data goes to `<file>.part` and is renamed only when its size matches the server's, so
    an interrupted download never leaves a file that looks complete.
    """
    ckpt = RELEASED[name]
    final = local_path(name)
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + '.part')
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(ckpt.url, headers={'Range': f'bytes={done}-'} if done else {})
    try:
        response = (opener or urllib.request.urlopen)(request, timeout=30)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, 'reason', e)
        raise DownloadError(f'{ckpt.filename}: cannot download {ckpt.url} ({reason}); offline, '
                            f'put the file at {final}') from None
    with response:
        if done and getattr(response, 'status', 200) != 206:
            done = 0                                   # the server ignored the range: restart
        length = response.headers.get('Content-Length')
        total = done + int(length) if length else None
        with atomic_open(final, 'ab' if done else 'wb', part=part) as f:
            while True:
                if cancelled():
                    raise DownloadError(f'download of {ckpt.filename} cancelled (kept {part} '
                                        'to resume)')
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                on_progress(done, total)
            if total is not None and done != total:
                raise DownloadError(f'{ckpt.filename}: download incomplete ({done} of {total} '
                                    'bytes); try again to resume')
    return final
