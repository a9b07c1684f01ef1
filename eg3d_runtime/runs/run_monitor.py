"""Watch a training run directory from a background thread: the GUI only reads the newest
RunState, so it never waits on the disk, however large the files or slow the filesystem.
Works on any run directory, ours or an official one, live, finished, crashed or deleted."""
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from eg3d_runtime import run_directory as rd

from . import run_reader

SETTLED_SECONDS = 2.0       # a snapshot unchanged this long is completely written
MAX_GRID_SIDE = 1024        # fakes grids (up to 7680 px) are shown downscaled
QUIET_SECONDS = 60          # a 'running' log silent this long: shown as quiet, writer checked
HOLDER_RECHECK_SECONDS = 5  # how often that check (a walk over /proc) is repeated


@dataclass(frozen=True)
class RunState:
    run_dir: Path
    exists: bool = False
    status: str = 'waiting'    # missing, running, interrupted, stopping, stopped, finished, crashed
    error: str | None = None
    stats: dict = field(default_factory=dict)      # stat name -> (kimg, values)
    metrics: dict = field(default_factory=dict)    # 'metric/result' -> (kimg, values)
    snapshots: tuple = ()               # (kimg, path, size, mtime), oldest first
    fakes: dict = field(default_factory=dict)      # 'rgb'/'raw'/'depth' -> [(kimg, path)]
    log_tail: tuple = ()
    kimg: float | None = None
    total_kimg: float | None = None
    eta_seconds: float | None = None
    last_update: float | None = None    # mtime of the newest stats.jsonl / log.txt
    bad_lines: int = 0
    fakes_image: tuple | None = None    # (path, uint8 [H, W, 3]) of the requested grid

    @property
    def settled_snapshots(self):
        """The snapshots that are completely written (safe to load)."""
        now = time.time()
        return [s for s in self.snapshots if now - s[3] >= SETTLED_SECONDS]

    def series(self, name):
        return self.stats.get(name) or self.metrics.get(name)


def progress(stats, options, status=None):
    """(kimg, total kimg, seconds remaining) from the log's last status line (else the stats
    series) and training_options.json."""
    kimg = spk = None
    if 'Progress/kimg' in stats:
        kimg = float(stats['Progress/kimg'][1][-1])
    if 'Timing/sec_per_kimg' in stats:
        values = stats['Timing/sec_per_kimg'][1]
        finite = values[np.isfinite(values)]
        spk = float(finite[-1]) if len(finite) else None
    if status is not None:
        kimg, spk = status
    total = (options or {}).get('total_kimg')
    total = float(total) if isinstance(total, (int, float)) and not isinstance(total, bool) \
        else None
    eta = max(total - kimg, 0.0) * spk if None not in (kimg, total, spk) else None
    return kimg, total, eta


def run_status(exists, lines):
    """(status, error) from the log: a traceback is a crash, then the last word of the run."""
    if not exists:
        return 'missing', 'the run directory no longer exists'
    error = run_reader.crash_message(lines)
    if error:
        return 'crashed', error
    ended = any(line.startswith(rd.EXIT_LINE) for line in lines)
    if any(line.startswith(rd.STOPPED_LINE) for line in lines):
        return ('stopped' if ended else 'stopping'), None     # the final snapshot comes first
    return ('finished' if ended else 'running'), None


def writer_gone(log_path, last_update, now):
    """True when a run whose log says 'running' has been quiet QUIET_SECONDS and no process
    on this machine has its log.txt open: killed (SIGKILL, power loss) before it could write
    its last word. Unknown (no /proc) and merely slow runs count as alive."""
    if last_update is None or now - last_update < QUIET_SECONDS:
        return False
    return run_reader.held_open(log_path) is False


def load_grid(path):
    """A fakes grid as uint8 RGB, downscaled to at most MAX_GRID_SIDE (None if unreadable)."""
    try:
        with Image.open(path) as image:
            image.draft('RGB', (MAX_GRID_SIDE, MAX_GRID_SIDE))
            image = image.convert('RGB')
            image.thumbnail((MAX_GRID_SIDE, MAX_GRID_SIDE))
            return np.asarray(image)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None                           # half-written or not an image: try again later


class RunMonitor:
    """Reads a run directory incrementally; `poll()` does the I/O and returns a new RunState."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir).expanduser().resolve()    # paths as the viewer has them
        self.stats = run_reader.JsonlTail(self.run_dir / rd.STATS_FILE)
        self.metric_tails = {}
        self.fakes_wanted = None              # path of the grid to load, set by the GUI
        self._series = {}
        self._metrics = {}
        self._grid = None                     # (path, mtime, image)
        self._writer_check = (-HOLDER_RECHECK_SECONDS, False)   # (when, writer gone)

    def _poll_metrics(self):
        for path in self.run_dir.glob(rd.METRIC_GLOB):
            self.metric_tails.setdefault(path.name, run_reader.JsonlTail(path))
        changed = False
        for tail in self.metric_tails.values():
            changed |= tail.poll()
        if changed:
            self._metrics = {}
            for name, tail in sorted(self.metric_tails.items()):
                metric = rd.metric_of_file(name)
                for result, xy in run_reader.metric_series(tail.records).items():
                    self._metrics[f'{metric}/{result}' if result != metric else metric] = xy

    def _poll_grid(self):
        path = self.fakes_wanted
        if path is None:
            return None
        try:
            mtime = Path(path).stat().st_mtime
        except OSError:
            return None
        if self._grid is None or self._grid[:2] != (path, mtime):
            self._grid = (path, mtime, load_grid(path))
        image = self._grid[2]
        return None if image is None else (path, image)

    def _writer_gone(self, last_update):
        """writer_gone for this run, walking /proc at most every HOLDER_RECHECK_SECONDS."""
        now = time.time()
        when, gone = self._writer_check
        if now - when >= HOLDER_RECHECK_SECONDS:
            gone = writer_gone(self.run_dir / rd.LOG_FILE, last_update, now)
            self._writer_check = (now, gone)
        return gone

    def poll(self):
        exists = self.run_dir.is_dir()
        if self.stats.poll():
            self._series = run_reader.stat_series(self.stats.records)
        self._poll_metrics()
        lines = run_reader.read_tail(self.run_dir / rd.LOG_FILE)
        status, error = run_status(exists, lines)
        options = run_reader.read_json(self.run_dir / rd.OPTIONS_FILE)
        kimg, total, eta = progress(self._series, options, run_reader.last_status(lines))
        mtimes = []
        for name in (rd.STATS_FILE, rd.LOG_FILE):
            try:
                mtimes.append((self.run_dir / name).stat().st_mtime)
            except OSError:
                pass
        last_update = max(mtimes, default=None)
        if status == 'running' and self._writer_gone(last_update):
            status = 'interrupted'
        return RunState(
            run_dir=self.run_dir, exists=exists, status=status, error=error,
            stats=self._series, metrics=self._metrics,
            snapshots=tuple(rd.list_snapshots(self.run_dir)),
            fakes=run_reader.list_fakes(self.run_dir), log_tail=tuple(lines), kimg=kimg,
            total_kimg=total, eta_seconds=eta, last_update=last_update,
            bad_lines=self.stats.bad_lines + sum(t.bad_lines for t in self.metric_tails.values()),
            fakes_image=self._poll_grid())


class MonitorThread:
    """Polls a RunMonitor every `interval` seconds; `state` is always the newest RunState."""

    def __init__(self, run_dir, interval=0.5):
        self.monitor = RunMonitor(run_dir)
        self.state = RunState(self.monitor.run_dir)
        self.interval = interval
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name='run-monitor')
        self._thread.start()

    @property
    def run_dir(self):
        return self.monitor.run_dir

    def request_grid(self, path):
        self.monitor.fakes_wanted = path

    def _run(self):
        while not self._stop.is_set():
            try:
                self.state = self.monitor.poll()
            except Exception as e:    # never let one odd file end the watching
                self.state = RunState(self.run_dir, exists=self.run_dir.is_dir(),
                                      status='error', error=f'cannot read the run: {e}')
            self.polls += 1
            self._stop.wait(self.interval)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
