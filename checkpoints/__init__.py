"""The released EG3D checkpoints by name, and where the viewer finds or downloads them."""
from .registry import DEMO, RELEASED, Checkpoint, DownloadError, download, local_path, resolve

__all__ = ['DEMO', 'RELEASED', 'Checkpoint', 'DownloadError', 'download', 'local_path', 'resolve']
