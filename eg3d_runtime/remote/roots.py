"""The folders a render server may open files in. Paths from the network are resolved (user
folder, symlinks, '..') and refused unless they lie under one of the roots: a client can open
networks, runs and latents the server's user chose to serve, nothing else."""
import os
from pathlib import Path

import checkpoints
from checkpoints.registry import checkpoint_dir


class PathRefused(Exception):
    """A path outside the roots; the message is the one line the client shows."""


def default_roots():
    """The working folder, ~/training-runs, the checkpoint cache and the bundled demo's folder."""
    return [Path.cwd(), Path.home() / 'training-runs', checkpoint_dir(),
            checkpoints.DEMO.parent]


class Roots:
    def __init__(self, folders):
        self.folders = []
        for folder in folders:
            real = Path(os.path.realpath(Path(folder).expanduser()))
            if real not in self.folders:
                self.folders.append(real)

    def __str__(self):
        return ', '.join(map(str, self.folders))

    def resolve(self, text):
        """A client's path -> the real path under a root (it need not exist yet); raises
        PathRefused for '..', and for anything (symlinks included) that ends up outside."""
        if not isinstance(text, str) or not text or '\0' in text:
            raise PathRefused('refused: an empty or malformed path')
        path = Path(text).expanduser()
        if '..' in path.parts:
            raise PathRefused(f'refused: {text}: ".." is not allowed in paths')
        if not path.is_absolute():
            path = Path.cwd() / path
        real = Path(os.path.realpath(path))
        if not any(real == root or root in real.parents for root in self.folders):
            raise PathRefused(f'refused: {text} is outside the folders this server serves '
                              f'({self}); start it with --root to add one')
        return real
