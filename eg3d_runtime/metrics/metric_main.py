"""Quality metrics by their official names: compute one, and append it to metric-<name>.jsonl.

Implemented: FID with all dataset images (`*_full`) or the first 50k (`fid50k`) against N
generated images. The other official names are accepted (train.py validates `--metrics` against
them) but computing one raises a one-line `MetricUnavailable`, as does a missing detector file,
so training can report it and go on.
"""
import collections
import json
import os
import time

import torch

from ..run_directory import format_time, metric_file
from .fid import dataset_stats, frechet_distance, generator_stats
from .inception import MetricUnavailable, get_inception

__all__ = ['METRICS', 'FIDMetric', 'calc_metric', 'is_valid_metric', 'report_metric']

FIDMetric = collections.namedtuple('FIDMetric', ['max_real', 'num_gen'])

# name -> FIDMetric (max_real None = the whole dataset), or None for official names without an
# implementation here.
METRICS = {
    'fid50k_full': FIDMetric(None, 50000),
    'fid50k': FIDMetric(50000, 50000),
    'fid10k_full': FIDMetric(None, 10000),
    'fid5k_full': FIDMetric(None, 5000),
    'fid2k_full': FIDMetric(None, 2000),
    'fid1k_full': FIDMetric(None, 1000),
    **dict.fromkeys(['kid50k_full', 'kid50k', 'pr50k3_full', 'pr50k3', 'is50k', 'ppl2_wend',
                     'eqt50k_int', 'eqt50k_frac', 'eqr50k']),
}


def is_valid_metric(name):
    return name in METRICS


def _metric_dataset(dataset, full):
    """The dataset as the official metrics read it: every image (max_size None) and, for
    `*_full`, no mirrored copies. A dataset with constructor arguments (`training_set_kwargs`)
    is rebuilt with those changes; any other is used as given."""
    kwargs = getattr(dataset, 'training_set_kwargs', None)
    if kwargs is None:
        return dataset
    wanted = dict(kwargs, max_size=None, **({'xflip': False} if full else {}))
    if wanted == kwargs:
        return dataset
    wanted.pop('class_name', None)
    return type(dataset)(**wanted)


def _shared_detector(device, num_gpus, rank, inception_path):
    """The Inception detector; with several ranks rank 0 fetches the file first and a failure
    there stops every rank with the same message instead of leaving them waiting."""
    if num_gpus == 1:
        return get_inception(device, inception_path)
    problem = None
    if rank == 0:
        try:
            get_inception(device, inception_path)
        except MetricUnavailable as exc:
            problem = exc
    ok = torch.tensor(float(problem is None), device=device)
    torch.distributed.broadcast(ok, src=0)
    if problem is not None:
        raise problem
    if not ok.item():
        raise MetricUnavailable('the Inception detector could not be loaded (see rank 0)')
    return get_inception(device, inception_path)


def calc_metric(metric, G, dataset, num_gpus=1, rank=0, device=None, detector=None,
                progress=None, batch_size=64, batch_gen=4, G_kwargs=None, cache=True,
                cache_dir=None, num_workers=3, inception_path=None):
    """Compute `metric` for generator G (G_ema) against `dataset`; the official result dict.

    Reals come from the dataset without its max_size limit and, for `*_full`, without mirrored
    copies (rebuilt from its `training_set_kwargs` when needed, as the official code does);
    generator labels are drawn from that dataset too. `detector` (uint8 [N,3,H,W] -> [N,D])
    defaults to the Inception network (file from `inception_path`, see inception.weights_path);
    `device` to G's. With num_gpus > 1 every rank calls this with its rank inside an initialised
    torch.distributed group and gets the same result. `progress(done, total)` counts dataset
    then generated images."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}' (valid: {', '.join(METRICS)})")
    spec = METRICS[metric]
    if spec is None:
        implemented = ', '.join(name for name, value in METRICS.items() if value is not None)
        raise MetricUnavailable(f'metric {metric} is not implemented here (implemented: '
                                f'{implemented})')
    if num_gpus > 1 and not (torch.distributed.is_available()
                             and torch.distributed.is_initialized()):
        raise ValueError(f'num_gpus={num_gpus} needs an initialised torch.distributed group')
    device = torch.device(device) if device is not None else next(G.parameters()).device
    start = time.time()
    if detector is None:
        detector = _shared_detector(device, num_gpus, rank, inception_path)

    dataset = _metric_dataset(dataset, full=spec.max_real is None)
    num_real = len(dataset) if spec.max_real is None else min(len(dataset), spec.max_real)
    total = num_real + spec.num_gen

    def progress_from(offset):
        if progress is not None:
            return lambda done, _part_total: progress(offset + done, total)

    mu_real, sigma_real = dataset_stats(
        dataset, detector, device, max_items=spec.max_real, batch_size=batch_size,
        num_gpus=num_gpus, rank=rank, cache=cache, cache_dir=cache_dir, num_workers=num_workers,
        progress=progress_from(0))
    mu_gen, sigma_gen = generator_stats(
        G, dataset, detector, device, spec.num_gen, batch_size=batch_size, batch_gen=batch_gen,
        num_gpus=num_gpus, G_kwargs=G_kwargs, progress=progress_from(num_real))
    value = frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real)

    total_time = time.time() - start
    return {'results': {metric: value}, 'metric': metric, 'total_time': total_time,
            'total_time_str': format_time(total_time), 'num_gpus': num_gpus}


def _relative_name(snapshot_pkl, run_dir):
    """A path with a directory (absolute or from the working dir, as the official loop passes
    it) relative to run_dir; a bare file name as it is."""
    if snapshot_pkl is None or not os.path.dirname(snapshot_pkl):
        return snapshot_pkl
    return os.path.relpath(snapshot_pkl, run_dir)


def report_metric(result_dict, run_dir, snapshot_pkl):
    """Append the result as one JSON line to run_dir/metric-<name>.jsonl (key order:
    docs/eg3d-reference.md 7.2), print it as the official loop does, and return it."""
    line = json.dumps({
        'results': result_dict['results'], 'metric': result_dict['metric'],
        'total_time': result_dict['total_time'], 'total_time_str': result_dict['total_time_str'],
        'num_gpus': result_dict['num_gpus'],
        'snapshot_pkl': _relative_name(snapshot_pkl, run_dir),
        'timestamp': time.time()})
    print(line)
    with open(os.path.join(run_dir, metric_file(result_dict['metric'])), 'at') as f:
        f.write(line + '\n')
    return line
