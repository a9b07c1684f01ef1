"""Where the viewer keeps user data: settings and the Recent list, captures, downloads
(`eg3d_runtime.files.cache_dir`). Never the repository or the current directory."""
import json
import os
from pathlib import Path

from eg3d_runtime.files import atomic_write


def config_dir() -> Path:
    return Path(os.environ.get('XDG_CONFIG_HOME') or Path.home() / '.config') / 'eg3d-app'


def captures_dir() -> Path:
    """Always ~/Pictures/eg3d-captures (made on the first capture): captures are the user's
    files, so they go where pictures belong, never into a cache that may be cleaned."""
    return Path.home() / 'Pictures' / 'eg3d-captures'


class RecentList:
    """Most-recent-first list of opened networks, kept across restarts in a JSON file."""

    def __init__(self, path=None, limit=12):
        self.path = Path(path) if path else config_dir() / 'recent.json'
        self.limit = limit
        try:
            items = json.loads(self.path.read_text())
            self.items = [str(x) for x in items if isinstance(x, str)][:limit]
        except (OSError, ValueError):
            self.items = []

    def add(self, item):
        self.items = [item] + [x for x in self.items if x != item][:self.limit - 1]
        try:
            atomic_write(self.path, json.dumps(self.items, indent=1))
        except OSError:
            pass  # a read-only home must not break opening networks
