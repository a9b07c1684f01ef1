"""Training images and camera labels from a dataset_tool folder or zip (docs/eg3d-reference.md 7.6).

Same layout and semantics as the official `training.dataset.ImageFolderDataset`, with the
labels checked when the dataset is opened (one DatasetError naming the file and the image
instead of a KeyError mid-training) and xflip giving flipped images their mirrored camera.
"""
import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import torch

from .dataset_format import (LABEL_DIM, LABEL_FILE, DatasetError, is_image_name,
                             mirror_camera_label, parse_labels)

__all__ = ['LABEL_DIM', 'LABEL_FILE', 'DatasetError', 'ImageFolderDataset', 'InfiniteSampler',
           'is_image_name', 'mirror_camera_label', 'parse_labels']


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images (uint8 CHW) and 25-float camera labels from a directory (searched recursively)
    or a .zip; images are the files with an extension PIL knows, sorted by relative path.

    max_size keeps a seeded random subset (sorted); xflip appends a mirrored copy of every
    image. Deliberate difference from the official class: a mirrored copy carries the mirrored
    camera (`mirror_camera_label`), not the unchanged label, so xflip is usable for EG3D.

    The zip is opened lazily in each process (the handle is dropped when pickled and reopened
    after a fork), so the dataset works with DataLoader workers."""

    def __init__(self, path, resolution=None, use_labels=False, max_size=None, xflip=False,
                 random_seed=0):
        self._path = str(path)
        self._zip = None
        self._zip_pid = None
        self._kwargs = dict(path=self._path, use_labels=use_labels, max_size=max_size,
                            xflip=xflip, resolution=resolution, random_seed=random_seed)
        if os.path.isdir(self._path):
            self._type = 'dir'
            names = [os.path.relpath(os.path.join(root, f), self._path).replace(os.sep, '/')
                     for root, _dirs, files in os.walk(self._path) for f in files]
        elif os.path.isfile(self._path) and self._path.lower().endswith('.zip'):
            self._type = 'zip'
            names = [n for n in self._zipfile().namelist() if not n.endswith('/')]
        elif os.path.exists(self._path):
            raise DatasetError(f'{self._path}: not a directory or a .zip file')
        else:
            raise DatasetError(f'{self._path}: no such file or directory')
        self._image_names = sorted(n for n in names if is_image_name(n))
        if not self._image_names:
            raise DatasetError(f'{self._path}: no image files')
        self._image_shape = list(self._load_image(0).shape)
        c, h, w = self._image_shape
        if resolution is not None and (h != resolution or w != resolution):
            raise DatasetError(f'{self._where(self._image_names[0])}: image is {w}x{h}, '
                               f'expected {resolution}x{resolution}')
        self._raw_labels = None
        if LABEL_FILE in names:
            self._raw_labels = parse_labels(self._read_json(), self._image_names,
                                            self._where(LABEL_FILE))
        if use_labels and self._raw_labels is None:
            raise DatasetError(f'{self._where(LABEL_FILE)}: no labels, but use_labels=True')
        self._use_labels = bool(use_labels)
        self._name = os.path.splitext(os.path.basename(self._path.rstrip('/\\')))[0]

        raw_idx = np.arange(len(self._image_names), dtype=np.int64)
        if max_size is not None and raw_idx.size > max_size:
            np.random.RandomState(random_seed).shuffle(raw_idx)
            raw_idx = np.sort(raw_idx[:max_size])
        self._xflip = np.zeros(raw_idx.size, dtype=bool)
        if xflip:
            raw_idx = np.tile(raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, ~self._xflip])
        self._raw_idx = raw_idx

    def _where(self, member):
        return f'{self._path}:{member}' if self._type == 'zip' else os.path.join(self._path, member)

    def _zipfile(self):
        if self._zip is None or self._zip_pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self._path)
            except (OSError, zipfile.BadZipFile) as e:
                raise DatasetError(f'{self._path}: cannot open the zip ({e})') from None
            self._zip_pid = os.getpid()
        return self._zip

    def _read_bytes(self, name):
        if self._type == 'zip':
            return self._zipfile().read(name)
        with open(os.path.join(self._path, name), 'rb') as f:
            return f.read()

    def _read_json(self):
        try:
            return json.loads(self._read_bytes(LABEL_FILE))
        except (ValueError, UnicodeDecodeError) as e:
            raise DatasetError(f'{self._where(LABEL_FILE)}: not valid JSON ({e})') from None

    def _load_image(self, raw_index):
        name = self._image_names[raw_index]
        try:
            with PIL.Image.open(io.BytesIO(self._read_bytes(name))) as img:
                image = np.array(img)
        except (OSError, SyntaxError, ValueError) as e:
            raise DatasetError(f'{self._where(name)}: cannot read the image ({e})') from None
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        if image.dtype != np.uint8:
            raise DatasetError(f'{self._where(name)}: expected 8-bit pixels, got {image.dtype}')
        return image.transpose(2, 0, 1)

    def close(self):
        if self._zip is not None:
            self._zip.close()
        self._zip = None

    def __getstate__(self):
        return dict(self.__dict__, _zip=None, _zip_pid=None)

    def __len__(self):
        return self._raw_idx.size

    def __getitem__(self, index):
        image = self._load_image(self._raw_idx[index])
        if list(image.shape) != self._image_shape:
            name = self._where(self._image_names[self._raw_idx[index]])
            raise DatasetError(f'{name}: image shape {image.shape} differs from the first '
                               f'image {tuple(self._image_shape)}')
        if self._xflip[index]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(index)

    def get_label(self, index):
        """float32 [label_dim]; the mirrored camera for an xflip copy."""
        if not self._use_labels:
            return np.zeros([0], dtype=np.float32)
        label = self._raw_labels[self._raw_idx[index]]
        return mirror_camera_label(label) if self._xflip[index] else label.copy()

    def get_label_std(self):
        """Per-dimension std over the raw labels of all images (the official statistic)."""
        if not self._use_labels:
            return np.zeros([0], dtype=np.float32)
        return self._raw_labels.std(0)

    @property
    def name(self):
        return self._name

    @property
    def image_shape(self):
        return list(self._image_shape)

    @property
    def num_channels(self):
        return self._image_shape[0]

    @property
    def resolution(self):
        return self._image_shape[1]

    @property
    def label_shape(self):
        return [LABEL_DIM if self._use_labels else 0]

    @property
    def label_dim(self):
        return self.label_shape[0]

    @property
    def has_labels(self):
        return self.label_dim != 0

    @property
    def training_set_kwargs(self):
        """The pickle's `training_set_kwargs` (docs/eg3d-reference.md 1.1): the constructor
        arguments."""
        return dict(class_name='training.dataset.ImageFolderDataset', **self._kwargs)


class InfiniteSampler(torch.utils.data.Sampler):
    """Endless stream of dataset indices, as the official sampler: a seeded permutation in
    which, after each visit, the visited item is swapped with a random one of the window_size
    fraction of items before it, so later passes are reshuffled gradually. Every rank replays
    the same stream and keeps the positions congruent to its rank, so ranks see disjoint,
    interleaved parts of it."""

    def __init__(self, dataset, rank=0, num_replicas=1, shuffle=True, seed=0, window_size=0.5):
        if len(dataset) == 0:
            raise ValueError('InfiniteSampler: the dataset is empty')
        if not 0 <= rank < num_replicas:
            raise ValueError(f'InfiniteSampler: rank {rank} outside [0, {num_replicas})')
        if not 0 <= window_size <= 1:
            raise ValueError(f'InfiniteSampler: window_size {window_size} outside [0, 1]')
        super().__init__()
        self.dataset = dataset
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.window_size = window_size

    def __iter__(self):
        order = np.arange(len(self.dataset))
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(order.size * self.window_size))
        position = 0
        while True:
            i = position % order.size
            if position % self.num_replicas == self.rank:
                yield int(order[i])
            if window >= 2:
                j = (i - rnd.randint(window)) % order.size
                order[i], order[j] = order[j], order[i]
            position += 1
