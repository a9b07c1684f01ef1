"""Writing the files of an official EG3D run directory other than the network pickle
(docs/eg3d-reference.md 4.2, 7.2): the numbered directory, training_options.json, json lines,
log.txt's copy of the console, and the reals/fakes grids. Their names and line formats are
declared in eg3d_runtime.run_directory, which the readers use too.

Tools written for the official trainer (plots of stats.jsonl, scripts that look for
fakes*.png or parse log.txt) must work on our runs unchanged, so layouts, number formats and
image conversions follow the official files exactly.
"""
import contextlib
import json
import os
import re
import shutil
import sys
import threading
import traceback

import numpy as np
import PIL.Image

from ..files import atomic_open, atomic_write
from ..run_directory import OPTIONS_FILE, STATS_FILE, fakes_name, list_snapshots


def run_description(cfg, data_path, gpus, batch, gamma, desc=None):
    """'<cfg>-<dataset name>-gpus<G>-batch<B>-gamma<γ:g>[-<desc>]'; the dataset name is the
    zip/directory base name without extension."""
    dataset_name = os.path.splitext(os.path.basename(os.path.normpath(data_path)))[0]
    text = f'{cfg}-{dataset_name}-gpus{int(gpus):d}-batch{int(batch):d}-gamma{float(gamma):g}'
    return text if desc is None else f'{text}-{desc}'


def _next_run_id(outdir):
    ids = []
    if os.path.isdir(outdir):
        for entry in os.scandir(outdir):
            match = re.match(r'\d+', entry.name)
            if match and entry.is_dir():
                ids.append(int(match.group()))
    return max(ids, default=-1) + 1


def next_run_dir(outdir, cfg, data_path, gpus, batch, gamma, desc=None):
    """Path of the next run dir: 1 + the highest numeric prefix of the sub-directories, 5 digits."""
    name = run_description(cfg, data_path, gpus, batch, gamma, desc)
    return os.path.join(outdir, f'{_next_run_id(outdir):05d}-{name}')


def create_run_dir(outdir, cfg, data_path, gpus, batch, gamma, desc=None):
    """Create and return the next run dir; a launch racing for the same number takes the next one."""
    os.makedirs(outdir, exist_ok=True)
    name = run_description(cfg, data_path, gpus, batch, gamma, desc)
    run_id = _next_run_id(outdir)
    while True:
        path = os.path.join(outdir, f'{run_id:05d}-{name}')
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            run_id = max(run_id + 1, _next_run_id(outdir))


@contextlib.contextmanager
def removed_unless_started(run_dir, errors):
    """A block that runs the training in `run_dir`: if it ends with one of `errors` (the ones
    reported in one line: a bad dataset or resume file, Ctrl-C, SIGTERM) before the run logged
    its first tick (no stats.jsonl, no snapshot), the directory goes too, so an early failure
    leaves no run that never trained. Other exceptions keep it: log.txt holds their traceback."""
    try:
        yield run_dir
    except errors:
        if not os.path.exists(os.path.join(run_dir, STATS_FILE)) and not list_snapshots(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def write_training_options(run_dir, options):
    """training_options.json: json with indent=2, keys in the caller's order
    (docs/eg3d-reference.md 7.2)."""
    atomic_write(os.path.join(run_dir, OPTIONS_FILE), json.dumps(options, indent=2))


def append_jsonl(path, obj):
    """Append one json line (NaN/Infinity literals as Python writes them) and flush it."""
    line = json.dumps(obj) + '\n'
    with open(path, 'a', encoding='utf-8') as f:
        f.write(line)
        f.flush()


class _Tee:
    """A text stream that writes to the original stream and to the shared log file."""

    def __init__(self, stream, log, lock):
        self._stream = stream
        self._log = log
        self._lock = lock

    def write(self, text):
        if isinstance(text, bytes):
            text = text.decode(errors='replace')
        if not text:
            return 0
        with self._lock:
            if not self._log.closed:
                self._log.write(text)
                self._log.flush()
            self._stream.write(text)
            self._stream.flush()
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        with self._lock:
            if not self._log.closed:
                self._log.flush()
            self._stream.flush()

    def __getattr__(self, name):
        # encoding, isatty, fileno, ... come from the real stream.
        if name.startswith('_'):  # no recursion while half-built (copy, pickle)
            raise AttributeError(name)
        return getattr(self._stream, name)


@contextlib.contextmanager
def tee_output(log_path):
    """Copy everything this process writes to sys.stdout/sys.stderr into `log_path` (appended).

    Like the official log.txt, but stderr stays on stderr. An exception leaving the block is
    written to the log as a traceback (the interpreter then prints it on the console as usual),
    so the log of a crashed run ends with the reason.
    """
    log = open(log_path, 'a', encoding='utf-8')
    lock = threading.RLock()  # re-entrant: a write may itself trigger a warning on stderr
    saved_out, saved_err = sys.stdout, sys.stderr
    tee_out, tee_err = _Tee(saved_out, log, lock), _Tee(saved_err, log, lock)
    sys.stdout, sys.stderr = tee_out, tee_err
    try:
        yield log_path
    except BaseException as exc:
        if not isinstance(exc, SystemExit):
            with lock:
                log.write(''.join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        raise
    finally:
        with lock:
            if sys.stdout is tee_out:
                sys.stdout = saved_out
            if sys.stderr is tee_err:
                sys.stderr = saved_err
            log.close()
        saved_out.flush()
        saved_err.flush()


def setup_snapshot_image_grid(dataset, random_seed=0):
    """The fixed grid of reals.png and the fakes: ((gw, gh), uint8 images [N,C,H,W], float32 labels [N,L]).

    gw = clip(7680 // W, 7, 32), gh = clip(4320 // H, 4, 32). With labels, each row shows one
    group of identical labels (groups in seeded random order), cycling through the group; the
    random calls are made in the official order so the same dataset gives the same grid.
    """
    _c, h, w = dataset.image_shape
    gw = int(np.clip(7680 // w, 7, 32))
    gh = int(np.clip(4320 // h, 4, 32))
    rnd = np.random.RandomState(random_seed)
    if len(dataset) == 0:
        raise ValueError('snapshot image grid: the dataset has no images')

    if not dataset.has_labels:
        order = list(range(len(dataset)))
        rnd.shuffle(order)
        grid_indices = [order[i % len(order)] for i in range(gw * gh)]
    else:
        groups = {}
        for idx in range(len(dataset)):
            key = tuple(np.asarray(dataset.get_label(idx)).ravel().tolist())
            groups.setdefault(key, []).append(idx)
        group_order = list(groups)
        rnd.shuffle(group_order)
        for key in group_order:
            rnd.shuffle(groups[key])
        grid_indices = []
        for y in range(gh):
            key = group_order[y % len(group_order)]
            members = groups[key]
            grid_indices += [members[x % len(members)] for x in range(gw)]
            shift = gw % len(members)
            groups[key] = members[shift:] + members[:shift]

    items = [dataset[i] for i in grid_indices]
    images = np.stack([np.asarray(image) for image, _label in items])
    labels = np.stack([np.asarray(label, dtype=np.float32) for _image, label in items])
    return (gw, gh), images, labels


def save_image_grid(images, path, drange, grid_size):
    """PNG of N = gw*gh images [N,C,H,W] (C 1 -> 'L', 3 -> 'RGB'): (x-lo)*255/(hi-lo), rint, clip.

    NaN pixels become 0 (the official output is undefined there).
    """
    lo, hi = (float(v) for v in drange)
    gw, gh = grid_size
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[0] != gw * gh or images.shape[1] not in (1, 3):
        raise ValueError(f'{path}: expected {gw * gh} images of shape [C in (1, 3), H, W], '
                         f'got array of shape {images.shape}')
    if not hi > lo:
        raise ValueError(f'{path}: empty value range [{lo}, {hi}]')
    pixels = np.nan_to_num((images - lo) * (255 / (hi - lo)), nan=0.0)
    pixels = np.rint(pixels).clip(0, 255).astype(np.uint8)
    _n, c, h, w = pixels.shape
    canvas = pixels.reshape(gh, gw, c, h, w).transpose(0, 3, 1, 4, 2).reshape(gh * h, gw * w, c)
    image = PIL.Image.fromarray(canvas[:, :, 0], 'L') if c == 1 else PIL.Image.fromarray(canvas, 'RGB')
    with atomic_open(path) as f:
        image.save(f, format='PNG')


def save_fake_grids(outputs, run_dir, kimg, grid_size):
    """The fakes_name grids: image and raw ([-1, 1]) and -depth over the grid's range.

    `outputs` holds the generator's 'image', 'image_raw' and 'image_depth' for the whole grid.
    """
    def to_numpy(key):
        return outputs[key].detach().float().cpu().numpy()

    def path(kind):
        return os.path.join(run_dir, fakes_name(kimg, kind))

    save_image_grid(to_numpy('image'), path('rgb'), (-1, 1), grid_size)
    save_image_grid(to_numpy('image_raw'), path('raw'), (-1, 1), grid_size)
    depth = -to_numpy('image_depth')
    finite = depth[np.isfinite(depth)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if not hi > lo:  # constant depth: a black image instead of a division by zero
        hi = lo + 1.0
    save_image_grid(depth, path('depth'), (lo, hi), grid_size)
