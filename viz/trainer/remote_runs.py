"""The Trainer tab on a render server's runs: MonitorThread's and TrainingProcess's interfaces
over the connection, so the tab draws the same curves, fakes, log and snapshots, and Start,
Stop and Resume act on the server. Everything waits on its own thread, never the GUI's."""
import threading
import time
from pathlib import PurePosixPath

import numpy as np

from eg3d_runtime.remote import codec
from eg3d_runtime.remote.client import RemoteError
from eg3d_runtime.runs.run_monitor import RunState


def _call(link, type_, **fields):
    """A request to the server; its reply's fields and blob. Raises RemoteError."""
    if link.disconnected:
        raise RemoteError(f'disconnected: {link.disconnected}')
    reply = link.connection.call(type_, **fields)
    if reply.fields.get('error'):
        raise RemoteError(str(reply.fields['error']))
    return reply.fields, reply.blob


class RemoteMonitorThread:
    """Polls a run directory on the server every `interval` seconds; `state` is the newest."""

    def __init__(self, link, run_dir, interval=0.5):
        self.link = link
        self._run_dir = PurePosixPath(str(run_dir))
        self.state = RunState(self._run_dir)
        self.interval = interval
        self.polls = 0
        self._fakes = None
        self._series = None            # (version, stats, metrics)
        self._grid = None              # (key, image)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name='remote-run')
        self._thread.start()

    @property
    def run_dir(self):
        return self._run_dir

    def request_grid(self, path):
        self._fakes = path

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.state = self._poll()
            except RemoteError as e:
                self.state = RunState(self._run_dir, status='error', error=str(e))
            self.polls += 1
            self._stop.wait(self.interval)

    def _poll(self):
        f, blob = _call(self.link, 'run_state', run_dir=str(self._run_dir),
                        fakes=str(self._fakes or ''),
                        have_series=self._series[0] if self._series else None,
                        have_grid=self._grid[0] if self._grid else None)
        if 'series' in f:
            groups = {'stats': {}, 'metrics': {}}
            for name, (group, offset, n) in f['series'].items():
                xy = np.frombuffer(blob, np.float64, 2 * n, offset).reshape(2, n)
                groups[group][name] = (xy[0], xy[1])
            self._series = (f['series_version'], groups['stats'], groups['metrics'])
        grid = f.get('grid')
        if grid and 'offset' in grid:
            image = codec.decode_image(blob[grid['offset']:grid['offset'] + grid['length']])
            self._grid = (grid['key'], image)
        fakes_image = None
        if grid and self._grid and self._grid[0] == grid['key']:
            fakes_image = (PurePosixPath(grid['key'][0]), self._grid[1])
        now = time.time()
        age = f.get('update_age')
        return RunState(
            run_dir=PurePosixPath(f['run_dir']), exists=bool(f['exists']), status=f['status'],
            error=f.get('error'), stats=self._series[1] if self._series else {},
            metrics=self._series[2] if self._series else {},
            snapshots=tuple((kimg, PurePosixPath(path), size, now - (a or 0))
                            for kimg, path, size, a in f['snapshots']),
            fakes={kind: [(kimg, PurePosixPath(path)) for kimg, path in items]
                   for kind, items in f['fakes'].items()},
            log_tail=tuple(f['log_tail']), kimg=f.get('kimg'), total_kimg=f.get('total_kimg'),
            eta_seconds=f.get('eta_seconds'), last_update=None if age is None else now - age,
            bad_lines=f.get('bad_lines', 0), fakes_image=fakes_image)


class RemoteTraining:
    """A trainer started on the server (Start or Resume): TrainingProcess's attributes, filled
    by a thread that asks the server."""

    def __init__(self, link, **request):
        self.link = link
        self.run_dir = None
        self.returncode = None
        self.stop_requested = False
        self.message = 'starting on the server...'
        self._error = ''
        self._stop = threading.Event()
        threading.Thread(target=self._run, args=(request,), daemon=True,
                         name='remote-trainer').start()

    @property
    def running(self):
        return self.returncode is None

    def output_error(self):
        return self._error

    def stop(self):
        self.stop_requested = True
        if self.run_dir is not None:
            threading.Thread(target=self._request_stop, daemon=True).start()

    def _request_stop(self):
        try:
            _call(self.link, 'train', action='stop', run_dir=str(self.run_dir))
        except RemoteError as e:
            self.message = str(e)

    def _run(self, request):
        try:
            f, _ = _call(self.link, 'train', **request)
            self.message = f.get('message', '')
            job = f.get('job')
            if job is None:                       # the server could not start it
                self._error, self.returncode = self.message, 1
                return
            while self.returncode is None:
                f, _ = _call(self.link, 'train', action='poll', job=job)
                if f.get('run_dir'):
                    self.run_dir = PurePosixPath(f['run_dir'])
                self._error = f.get('output_error') or ''
                if f.get('returncode') is not None:
                    self.returncode = f['returncode']
                time.sleep(1.0)
        except RemoteError as e:
            self._error, self.returncode = str(e), 1
