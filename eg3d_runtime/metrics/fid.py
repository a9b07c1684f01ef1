"""Fréchet Inception Distance as the official metric computes it.

Feature statistics (mean and covariance of detector features) come from dataset images and from
generator samples `G(z, c)` with c drawn from random dataset labels; images reach the detector as
uint8 [N,3,H,W] (generated ones as `(x·127.5 + 128).clamp(0, 255)`, grey ones repeated to 3
channels). With several processes each rank takes a strided share and the features are gathered,
interleaved back into dataset order, so the statistics equal the single-process ones. Dataset
statistics are cached on disk, keyed by the dataset's arguments and file (path, size, mtime),
its length, the item count and the detector.
"""
import hashlib
import math
import os
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from ..files import atomic_open
from .inception import cache_dir as default_cache_dir

__all__ = ['FeatureStats', 'dataset_stats', 'frechet_distance', 'generator_stats']


class FeatureStats:
    """Running float64 sum and sum of outer products of at most `max_items` feature rows."""

    def __init__(self, max_items):
        self.max_items = max_items
        self.num_items = 0
        self.total = None
        self.outer = None

    def is_full(self):
        return self.num_items >= self.max_items

    def append(self, features):
        x = np.asarray(features, dtype=np.float64)[:self.max_items - self.num_items]
        if self.total is None:
            self.total = np.zeros(x.shape[1])
            self.outer = np.zeros((x.shape[1], x.shape[1]))
        self.total += x.sum(axis=0)
        self.outer += x.T @ x
        self.num_items += len(x)

    def mean_cov(self):
        """Mean and (population) covariance, as the official FeatureStats gives them."""
        mean = self.total / self.num_items
        return mean, self.outer / self.num_items - np.outer(mean, mean)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """|mu1 - mu2|² + tr(S1 + S2 - 2·sqrtm(S1·S2)), real part, as a float."""
    root = scipy.linalg.sqrtm(np.dot(sigma1, sigma2))
    return float(np.real(np.square(mu1 - mu2).sum() + np.trace(sigma1 + sigma2 - 2 * root)))


def _gather(features, num_gpus):
    """Every rank's [B, D] rows, interleaved (row i of rank r lands at i·num_gpus + r)."""
    if num_gpus == 1:
        return features
    parts = [torch.empty_like(features) for _ in range(num_gpus)]
    torch.distributed.all_gather(parts, features)
    return torch.stack(parts, dim=1).flatten(0, 1)


def _rank0_flag(flag, num_gpus, device):
    if num_gpus == 1:
        return flag
    value = torch.tensor(float(flag), device=device)
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


def _as_rgb(images):
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def _cache_file(dataset, detector, max_items, directory):
    """Where the statistics of this dataset are cached, or None if they cannot be keyed: the key
    holds the dataset's constructor arguments (`training_set_kwargs`), the size and mtime of its
    file, its length, the item count and the detector."""
    kwargs = getattr(dataset, 'training_set_kwargs', None)
    detector_id = getattr(detector, 'detector_id', None)
    if kwargs is None or detector_id is None or not os.path.exists(kwargs.get('path', '')):
        return None
    path = kwargs['path']
    stat = os.stat(path)
    key = repr((sorted(kwargs.items()), os.path.abspath(path), stat.st_size, stat.st_mtime_ns,
                len(dataset), max_items, detector_id))
    name = f'{Path(path).stem}-{detector_id}-{hashlib.md5(key.encode()).hexdigest()}.npz'
    return Path(directory or default_cache_dir()) / 'gan-metrics' / name


@torch.no_grad()
def dataset_stats(dataset, detector, device, max_items=None, batch_size=64, num_gpus=1, rank=0,
                  cache=True, cache_dir=None, num_workers=3, progress=None):
    """(mean, cov) of detector features of the first `max_items` dataset images (all if None).

    `dataset[i]` gives (uint8 [C,H,W], label); a dataset with `training_set_kwargs` (its
    constructor arguments, including `path`) is cached on disk under `cache_dir` (default: the
    eg3d cache dir). `progress(done, total)` is called
    after each batch."""
    cache_file = _cache_file(dataset, detector, max_items, cache_dir) if cache else None
    if _rank0_flag(cache_file is not None and cache_file.is_file(), num_gpus, device):
        with np.load(cache_file, allow_pickle=False) as data:
            return data['mean'], data['cov']

    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    share = [(i * num_gpus + rank) % num_items for i in range(math.ceil(num_items / num_gpus))]
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=share,
                                         num_workers=num_workers,
                                         pin_memory=torch.device(device).type == 'cuda')
    stats = FeatureStats(num_items)
    for images, _labels in loader:
        features = detector(_as_rgb(torch.as_tensor(images).to(device)))
        stats.append(_gather(features, num_gpus).cpu().numpy())
        if progress is not None:
            progress(stats.num_items, num_items)
    mean, cov = stats.mean_cov()

    if cache_file is not None and rank == 0:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(cache_file) as f:
            np.savez(f, mean=mean, cov=cov)
    return mean, cov


def _random_labels(dataset, c_dim, count, device):
    """Labels of `count` random dataset items (without decoding images when the dataset offers
    `get_label`), or zeros for an unconditional generator."""
    if c_dim == 0:
        return torch.zeros([count, 0], device=device)
    get_label = getattr(dataset, 'get_label', None) or (lambda index: dataset[index][1])
    labels = [get_label(int(i)) for i in np.random.randint(len(dataset), size=count)]
    return torch.as_tensor(np.stack(labels), dtype=torch.float32, device=device)


@torch.no_grad()
def generator_stats(G, dataset, detector, device, num_items, batch_size=64, batch_gen=4,
                    num_gpus=1, G_kwargs=None, progress=None):
    """(mean, cov) of detector features of `num_items` images `G(z, c, **G_kwargs)['image']`.

    Each rank renders `batch_size` images per step in chunks of `batch_gen`; z and labels come
    from the global torch/numpy random state (seeded per rank by the caller)."""
    if batch_size % batch_gen:
        raise ValueError(f'batch_size {batch_size} is not a multiple of batch_gen {batch_gen}')
    stats = FeatureStats(num_items)
    while not stats.is_full():
        images = []
        for _ in range(batch_size // batch_gen):
            z = torch.randn([batch_gen, G.z_dim], device=device)
            c = _random_labels(dataset, G.c_dim, batch_gen, device)
            image = G(z, c, **(G_kwargs or {}))['image']
            images.append((image * 127.5 + 128).clamp(0, 255).to(torch.uint8))
        features = detector(_as_rgb(torch.cat(images)))
        stats.append(_gather(features, num_gpus).cpu().numpy())
        if progress is not None:
            progress(stats.num_items, num_items)
    return stats.mean_cov()
