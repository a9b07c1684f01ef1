"""The Trainer tab's requests on the render server: the state of a run directory under the
roots (read by the same RunMonitor as locally) and Start / Stop / Resume of runs there.

A RunState travels as JSON plus one binary part: the curves as float64 arrays (sent only when
they changed since the version the viewer has) and the fakes grid the viewer asked for as a JPEG
(only when that file changed). Times are ages in seconds: the two machines' clocks may differ."""
import collections
import io
import shlex
import time
from pathlib import Path

import numpy as np
from PIL import Image

import checkpoints
from eg3d_runtime.runs import training_process as tp
from eg3d_runtime.runs.run_monitor import RunMonitor

from .protocol import ProtocolError
from .roots import PathRefused

MAX_MONITORS = 4
PATH_OPTIONS = ('outdir', 'data', 'resume')       # form fields that name files on the server


def _age(mtime, now):
    return None if mtime is None else max(now - mtime, 0.0)


class RunService:
    """One client's runs: a monitor per watched run directory, the trainers it started."""

    def __init__(self, roots):
        self.roots = roots
        self._monitors = collections.OrderedDict()    # run dir -> RunMonitor, newest use last
        self._processes = {}                          # job -> TrainingProcess

    def state(self, run_dir, fakes, have_series, have_grid):
        """(fields, blob) of the run's newest RunState."""
        folder = self.roots.resolve(run_dir)
        monitor = self._monitors.pop(folder, None) or RunMonitor(folder)
        self._monitors[folder] = monitor
        while len(self._monitors) > MAX_MONITORS:
            self._monitors.popitem(last=False)
        monitor.fakes_wanted = str(self.roots.resolve(fakes)) if fakes else None
        state = monitor.poll()
        now = time.time()
        fields = {
            'run_dir': str(state.run_dir), 'exists': state.exists, 'status': state.status,
            'error': state.error, 'kimg': state.kimg, 'total_kimg': state.total_kimg,
            'eta_seconds': state.eta_seconds, 'update_age': _age(state.last_update, now),
            'bad_lines': state.bad_lines, 'log_tail': list(state.log_tail),
            'snapshots': [[kimg, str(path), size, _age(mtime, now)]
                          for kimg, path, size, mtime in state.snapshots],
            'fakes': {kind: [[kimg, str(path)] for kimg, path in items]
                      for kind, items in state.fakes.items()}}
        parts = []
        offset = 0
        version = [len(state.stats), sum(len(x[0]) for x in state.stats.values()),
                   len(state.metrics), sum(len(x[0]) for x in state.metrics.values())]
        fields['series_version'] = version
        if version != have_series:
            series = {}
            for group in ('stats', 'metrics'):
                for name, (kimg, values) in getattr(state, group).items():
                    data = np.stack([np.asarray(kimg, np.float64),
                                     np.asarray(values, np.float64)]).tobytes()
                    series[name] = [group, offset, len(kimg)]
                    parts.append(data)
                    offset += len(data)
            fields['series'] = series
        if state.fakes_image is not None:
            path, image = state.fakes_image
            key = [str(path), image.shape[0], image.shape[1], float(image[::7, ::7].sum())]
            fields['grid'] = {'key': key}
            if key != have_grid:
                out = io.BytesIO()
                Image.fromarray(image).save(out, 'JPEG', quality=90)
                fields['grid'].update(offset=offset, length=out.tell())
                parts.append(out.getvalue())
        return fields, b''.join(parts)

    def act(self, action, fields):
        """Start, Stop or Resume on the server; the reply's fields."""
        if action == 'start':
            return self._start(fields)
        if action == 'poll':
            job = self._processes.get(fields.get('job'))
            if job is None:
                raise ProtocolError('train: no such job in this session')
            return {'run_dir': None if job.run_dir is None else str(job.run_dir),
                    'returncode': job.returncode, 'output_error': job.output_error()}
        run_dir = self.roots.resolve(_text(fields, 'run_dir'))
        if action == 'stop':
            for job in self._processes.values():
                if job.running and job.run_dir is not None and Path(job.run_dir) == run_dir:
                    job.stop()
                    break
            else:
                tp.request_stop(run_dir)
            return {'message': 'stop requested: the run writes a snapshot, then exits'}
        if action == 'resume':
            return self._launch([tp.resume_command(run_dir)])
        raise ProtocolError(f'train: action {action!r}; start, stop, resume or poll')

    def _start(self, fields):
        preset = _text(fields, 'preset')
        if preset not in tp.PRESETS:
            raise ProtocolError(f'train: preset {preset!r}; one of {list(tp.PRESETS)}')
        form = fields.get('form')
        if not isinstance(form, dict) or not all(isinstance(v, str) for v in form.values()):
            raise ProtocolError('train: form must be an object of strings')
        form = dict(form)
        demo = preset == 'demo' and not form.get('data')
        if demo:                       # the server's own demo dataset, built on first use
            form['data'] = str(tp.demo_data())
        for name in PATH_OPTIONS:
            value = form.get(name)
            released = name == 'resume' and checkpoints.resolve(value or '') is not None
            if value and not (demo and name == 'data') and not released:
                form[name] = str(self.roots.resolve(value))
        extra = fields.get('extra', '')
        if not isinstance(extra, str):
            raise ProtocolError('train: extra must be a string')
        try:
            words = shlex.split(extra)
        except ValueError as e:
            raise ProtocolError(f'train: extra options: {e}') from None
        if any(word.lstrip('-').split('=', 1)[0] in PATH_OPTIONS for word in words
               if word.startswith('--')):
            raise PathRefused('refused: give outdir, data and resume in their fields (the '
                              'server checks them against the folders it serves)')
        command = tp.train_command(form, extra)
        data = Path(form['data'])
        commands = [tp.dataset_command(data), command] if demo and not data.exists() \
            else [command]
        return self._launch(commands)

    def _launch(self, commands):
        try:
            job = tp.TrainingProcess(commands)
        except OSError as e:
            return {'message': f'cannot start the trainer on the server: {e}'}
        key = len(self._processes) + 1
        self._processes[key] = job
        return {'job': key, 'message': f'starting on the server: {" ".join(commands[-1][1:])}'}


def _text(fields, name):
    value = fields.get(name)
    if not isinstance(value, str):
        raise ProtocolError(f'train: field {name!r} must be a string')
    return value
