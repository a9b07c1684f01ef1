"""The training-run contract: what a run directory holds and what the trainer prints about it,
declared once for the side that writes (train.py, training/, metrics/) and every side that reads
(resume, the network argument, the Trainer tab).

Names, patterns and line formats are the official trainer's (docs/eg3d-reference.md 7.2), so
tools written for official runs work on ours and the other way round; the stop file, the end
lines and the 'Output directory:' line are this runtime's.
"""
import os
import re
from pathlib import Path

import numpy as np

OPTIONS_FILE = 'training_options.json'
LOG_FILE = 'log.txt'
STATS_FILE = 'stats.jsonl'
REALS_FILE = 'reals.png'
# Creating this file in a run directory asks its trainer for a clean stop (snapshot, then exit).
STOP_FILE = 'stop-request'
# The trainer's last words in log.txt: a stop it was asked for, then the end of every run that
# did not crash (a run stopped by request logs both; a crash ends with a traceback).
STOPPED_LINE = 'Stopped by request.'
EXIT_LINE = 'Exiting...'
# Console line announcing the run directory (a launcher reads it from the trainer's output).
OUTPUT_DIR_LABEL = 'Output directory:'

KIMG_PATTERN = r'(\d+(?:\.\d{3})?)'         # '000012', or '000012.400' (a fractional kimg)
SNAPSHOT_RE = re.compile(r'^network-snapshot-' + KIMG_PATTERN + r'\.pkl$')
METRIC_GLOB = 'metric-*.jsonl'
METRIC_RE = re.compile(r'^metric-(.+)\.jsonl$')
FAKES_SUFFIXES = {'rgb': '', 'raw': '_raw', 'depth': '_depth'}       # grid kind -> name suffix
FAKES_RE = re.compile(r'^fakes' + KIMG_PATTERN + '(' + '|'.join(FAKES_SUFFIXES.values())
                      + r')\.png$')
STATUS_RE = re.compile(r'^tick (\d+)\s+kimg ([\d.]+)\s+time .+?\s+sec/tick ([\d.]+)\s+'
                       r'sec/kimg ([\d.]+)')


# ---- network snapshots --------------------------------------------------------------------------

def snapshot_kimg_for(nimg, taken=()):
    """The kimg that names the snapshot (and fakes grids) of a run at `nimg` images: the
    official whole kimg, nimg // 1000, unless an earlier snapshot of the run (`taken`) has that
    name already (fractional --kimg/--tick: two ticks within one kimg, or the final snapshot
    just after one); then nimg / 1000, written with its fraction, so no snapshot replaces
    another."""
    whole = nimg // 1000
    return whole if whole not in taken else nimg / 1000


def _kimg_text(kimg):
    """12 -> '000012'; 12.4 -> '000012.400' (a kimg is a multiple of 0.001: an image)."""
    if isinstance(kimg, float) and not kimg.is_integer():
        return f'{int(kimg):06d}.{round(kimg * 1000) % 1000:03d}'
    return f'{int(kimg):06d}'


def _parse_kimg(text):
    return float(text) if '.' in text else int(text)


def snapshot_name(kimg):
    """'network-snapshot-KKKKKK.pkl' (KKKKKK: snapshot_kimg_for's kimg; with a fraction
    'network-snapshot-KKKKKK.FFF.pkl')."""
    return f'network-snapshot-{_kimg_text(kimg)}.pkl'


def snapshot_kimg(name):
    """The kimg in a snapshot's file name (any path): an int, a float for a fractional one, or
    None if it is not one."""
    match = SNAPSHOT_RE.match(os.path.basename(str(name)))
    return _parse_kimg(match.group(1)) if match else None


def list_snapshots(run_dir):
    """[(kimg, path, size, mtime)] of the network snapshots in `run_dir`, oldest first; none when
    the directory cannot be read."""
    found = []
    try:
        entries = list(Path(run_dir).iterdir())
    except OSError:
        return []
    for path in entries:
        kimg = snapshot_kimg(path.name)
        if kimg is None:
            continue
        try:
            st = path.stat()
        except OSError:       # deleted or replaced since the listing
            continue
        found.append((kimg, path, st.st_size, st.st_mtime))
    return sorted(found)


def latest_snapshot(run_dir):
    """Path of the snapshot with the highest kimg in `run_dir`, or None."""
    snapshots = list_snapshots(run_dir)
    return snapshots[-1][1] if snapshots else None


# ---- metrics and image grids --------------------------------------------------------------------

def metric_file(metric):
    """'metric-<name>.jsonl': one line per evaluation of `metric`."""
    return f'metric-{metric}.jsonl'


def metric_of_file(name):
    """The metric whose results a file (any path) holds, or None if it is not a metric file."""
    match = METRIC_RE.match(os.path.basename(str(name)))
    return match.group(1) if match else None


def fakes_name(kimg, kind='rgb'):
    """'fakesKKKKKK.png', '..._raw.png' or '..._depth.png' (KKKKKK = the snapshot's kimg, as
    in snapshot_name)."""
    return f'fakes{_kimg_text(kimg)}{FAKES_SUFFIXES[kind]}.png'


def fakes_kimg(name):
    """(kimg, kind) of a `fakes_name` (any path), or None if it is not one."""
    match = FAKES_RE.match(os.path.basename(str(name)))
    if match is None:
        return None
    kind = next(k for k, suffix in FAKES_SUFFIXES.items() if suffix == match.group(2))
    return _parse_kimg(match.group(1)), kind


# ---- lines of the console and log.txt -----------------------------------------------------------

def format_time(seconds):
    """'59s', '1m 01s', '1h 01m 01s', '2d 00h 00m' (seconds rounded to an integer first)."""
    s = int(np.rint(seconds))
    if s < 60:
        return f'{s}s'
    if s < 60 * 60:
        return f'{s // 60}m {s % 60:02}s'
    if s < 24 * 60 * 60:
        return f'{s // 3600}h {s // 60 % 60:02}m {s % 60:02}s'
    return f'{s // 86400}d {s // 3600 % 24:02}h {s // 60 % 60:02}m'


def status_line(tick, kimg, total_sec, sec_per_tick, sec_per_kimg, maintenance_sec,
                cpumem_gb, gpumem_gb, reserved_gb, augment_p):
    """The per-tick progress line of the official trainer, field widths included."""
    return ' '.join([
        f'tick {tick:<5d}',
        f'kimg {kimg:<8.1f}',
        f'time {format_time(total_sec):<12s}',
        f'sec/tick {sec_per_tick:<7.1f}',
        f'sec/kimg {sec_per_kimg:<7.2f}',
        f'maintenance {maintenance_sec:<6.1f}',
        f'cpumem {cpumem_gb:<6.2f}',
        f'gpumem {gpumem_gb:<6.2f}',
        f'reserved {reserved_gb:<6.2f}',
        f'augment {augment_p:.3f}',
    ])


def parse_status_line(line):
    """(tick, kimg, sec/tick, sec/kimg) of a `status_line` in log.txt, or None for other lines
    (the Trainer tab reads progress from it before stats.jsonl has the tick)."""
    match = STATUS_RE.match(line)
    if match is None:
        return None
    return (int(match.group(1)), float(match.group(2)), float(match.group(3)),
            float(match.group(4)))


def output_dir_line(run_dir):
    """'Output directory:    <run_dir>', aligned with the trainer's other option lines."""
    return f'{OUTPUT_DIR_LABEL:<21s}{run_dir}'


def parse_output_dir(line):
    """The run directory an `output_dir_line` names, or None for other lines."""
    path = line[len(OUTPUT_DIR_LABEL):].strip() if line.startswith(OUTPUT_DIR_LABEL) else ''
    return Path(path).expanduser() if path else None
