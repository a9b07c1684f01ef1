"""Trainer tab: open a run directory or start a run from a preset form, watch it (progress,
curves, fakes, log) and steer it (Stop, Resume); load any snapshot into the viewer, or follow
the newest one. The tab only reads the run directory (through a monitor thread) and sends stop
requests; the trainer is a separate process that outlives the window."""
import time
from pathlib import Path

from imgui_bundle import imgui

from eg3d_runtime.run_directory import format_time
from eg3d_runtime.runs import training_process as tp
from eg3d_runtime.runs.run_monitor import QUIET_SECONDS, MonitorThread
from eg3d_runtime.training.options import OPTION
from gui_utils import imgui_compat

from ..gui_helpers import button, error_text, label
from .remote_runs import RemoteMonitorThread, RemoteTraining
from .trainer_views import CurvesView, FakesView

FORM_FIRST = ('outdir', 'data')


class TrainerWidget:
    def __init__(self, viz, run_dir=None, follow_latest=False):
        self.viz = viz
        self.run_text = str(run_dir or '')
        self.monitor = None
        self.process = None               # the trainer started from this window, if any
        self.message = ''
        self.follow_latest = follow_latest
        self._followed = None
        self._watching = None                 # the process whose run dir is open
        self.curves = CurvesView()
        self.fakes = FakesView()
        self.extra = ''
        self.set_preset('demo')
        if run_dir:
            self.open_run(run_dir)

    # ---- actions (buttons, tests and the command line call these) ------------------------------
    @property
    def remote(self):
        """The render server's link when the runs are the server's, else None."""
        return self.viz.link

    def set_preset(self, name):
        self.preset = name
        if self.remote:         # the server's folders: it fills in its own demo dataset
            options = {'outdir': '~/training-runs', 'data': ''}
        else:
            options = {'outdir': str(Path.home() / 'training-runs'),
                       'data': str(tp.demo_data()) if name == 'demo' else ''}
        options.update({k: str(v) for k, v in tp.PRESETS[name].items()})
        self.form = options

    def open_run(self, run_dir):
        if self.monitor is not None:
            self.monitor.close()
        self.run_text = str(run_dir)
        self.monitor = RemoteMonitorThread(self.remote, run_dir) if self.remote else \
            MonitorThread(run_dir)
        self._followed = None
        self.fakes.index = None
        self.message = ''

    def start(self):
        """Launch the form's run in the background; the tab opens its run dir once announced."""
        if self.process is not None and self.process.running:
            return False
        if self.remote:
            self._remote_launch(action='start', preset=self.preset, form=self.form,
                                extra=self.extra)
            return True
        command = tp.train_command(self.form, self.extra)
        data = Path(self.form.get('data', ''))
        commands = [tp.dataset_command(data), command] \
            if self.preset == 'demo' and data == tp.demo_data() and not data.exists() \
            else [command]
        self._launch(commands)
        return True

    def resume(self):
        if self.remote:
            self._remote_launch(action='resume', run_dir=str(self.monitor.run_dir))
            return
        try:
            self._launch([tp.resume_command(self.monitor.run_dir)])
        except ValueError as e:
            self.message = str(e)

    def stop(self):
        try:
            if self.process is not None and self.process.running:
                self.process.stop()
            elif self.monitor is not None and self.remote:
                RemoteTraining(self.remote, action='stop', run_dir=str(self.monitor.run_dir))
            elif self.monitor is not None:
                tp.request_stop(self.monitor.run_dir)
            self.message = 'stop requested: the run writes a snapshot, then exits'
        except ValueError as e:
            self.message = str(e)

    def _remote_launch(self, **request):
        self.process = RemoteTraining(self.remote, **request)
        self.message = self.process.message

    def _launch(self, commands):
        try:
            self.process = tp.TrainingProcess(commands)
        except OSError as e:
            self.message = f'cannot start the trainer: {e}'
            return
        self.message = f'starting: {" ".join(commands[-1][1:])}'

    @property
    def state(self):
        return None if self.monitor is None else self.monitor.state

    def load_snapshot(self, path):
        self.viz.pickle_widget.load(str(path))

    def waiting_message(self):
        """What the empty viewport says while Follow latest waits for a snapshot to open."""
        if not self.follow_latest or self.monitor is None:
            return None
        if self.monitor.polls == 0:
            return f'Opening the latest snapshot of {self.monitor.run_dir}...'
        if self.state.snapshots:
            return f'{self.state.snapshots[-1][1].name} is being written: it opens when complete'
        return f'No snapshot in {self.monitor.run_dir} yet: the first one opens when it appears'

    # ---- per frame ---------------------------------------------------------------------------
    def _poll(self):
        proc = self.process
        if proc is not None and proc.run_dir is not None and self._watching is not proc:
            self._watching = proc                 # open the announced run dir once
            self.open_run(proc.run_dir)
        if proc is not None and not proc.running and not self.message.startswith('trainer '):
            self.message = 'trainer exited' if proc.returncode == 0 else \
                f'trainer exited with code {proc.returncode}: {proc.output_error()}'
        state = self.state
        if self.follow_latest and state is not None and state.settled_snapshots:
            newest = state.settled_snapshots[-1][1]
            if newest != self._followed:
                self._followed = newest
                self.load_snapshot(newest)

    def __call__(self, show=True):
        self._poll()
        if not show:
            return
        viz = self.viz
        label('Run dir', viz.label_w)
        imgui.set_next_item_width(-viz.button_w - viz.spacing)
        entered, self.run_text = imgui.input_text_with_hint(
            '##rundir', 'training run directory', self.run_text,
            imgui.InputTextFlags_.enter_returns_true)
        imgui.same_line()
        if (button('Open##run', width=-1) or entered) and self.run_text.strip():
            text = self.run_text.strip()          # a server's path: it expands ~ itself
            self.open_run(text if self.remote else Path(text).expanduser())
        self._status_rows()
        if imgui.collapsing_header('New run', 0 if self.monitor else
                                   imgui.TreeNodeFlags_.default_open):
            self._form()
        state = self.state
        if state is None:
            return
        width = imgui.get_content_region_avail().x
        if imgui.collapsing_header('Curves', imgui.TreeNodeFlags_.default_open):
            self.curves(state, width, viz.font_size * 10)
        if imgui.collapsing_header('Snapshots', imgui.TreeNodeFlags_.default_open):
            self._snapshots(state)
        if imgui.collapsing_header('Fakes', imgui.TreeNodeFlags_.default_open):
            self.fakes(state, self.monitor, width)
        if imgui.collapsing_header('Log'):
            self._log(state)

    def _status_rows(self):
        viz, state, proc = self.viz, self.state, self.process
        running = proc is not None and proc.running
        if state is not None:
            imgui.set_cursor_pos_x(viz.label_w)
            if state.kimg is not None and state.total_kimg:
                eta = f', {format_time(state.eta_seconds)} left' \
                    if state.eta_seconds is not None and state.status == 'running' else ''
                imgui.progress_bar(min(state.kimg / state.total_kimg, 1.0), imgui.ImVec2(-1, 0),
                                   f'{state.kimg:g} / {state.total_kimg:g} kimg{eta}')
                imgui.set_cursor_pos_x(viz.label_w)
            quiet = time.time() - (state.last_update or time.time())
            imgui.text(state.status + (' (started here)' if running else '')
                       + (f', no update for {format_time(quiet)}'
                          if state.status in ('running', 'interrupted')
                          and quiet > QUIET_SECONDS else '')
                       + (': no process on this machine is writing it'
                          if state.status == 'interrupted' else ''))
            if state.error:
                imgui.set_cursor_pos_x(viz.label_w)
                error_text(state.error)
        imgui.set_cursor_pos_x(viz.label_w)
        alive = (running and not proc.stop_requested) or (
            not running and state is not None and state.status == 'running' and state.exists)
        if button('Stop', enabled=alive, width=viz.button_w):
            self.stop()
        imgui.same_line()
        can_resume = not running and state is not None and bool(state.snapshots)
        if button('Resume', enabled=can_resume, width=viz.button_w):
            self.resume()
        if self.message:
            imgui.same_line()
            imgui.text_wrapped(self.message)

    def _form(self):
        viz = self.viz
        label('Preset', viz.label_w)
        imgui.set_next_item_width(-1)
        names = list(tp.PRESETS)
        changed, idx = imgui.combo('##preset', names.index(self.preset), names)
        if changed:
            self.set_preset(names[idx])
        for name in list(self.form):
            label(name, viz.label_w)
            imgui.set_next_item_width(-1)
            _, self.form[name] = imgui.input_text(f'##opt_{name}', self.form[name])
            imgui.set_item_tooltip(OPTION[name].help)
        label('more', viz.label_w)
        imgui.set_next_item_width(-1)
        _, self.extra = imgui.input_text_with_hint('##extra', '--aug=ada --mirror=True ...',
                                                   self.extra)
        imgui.set_cursor_pos_x(viz.label_w)
        if button('Start', enabled=self.process is None or not self.process.running,
                  width=viz.button_w):
            self.start()

    def _snapshots(self, state):
        _, self.follow_latest = imgui.checkbox('Follow latest', self.follow_latest)
        settled = {s[1] for s in state.settled_snapshots}
        current = self.viz.pickle_widget.pkl
        for _, path, size, _ in reversed(state.snapshots):
            ready = path in settled
            if button(f'Load##{path.name}', enabled=ready, width=self.viz.button_w):
                self.load_snapshot(path)
            imgui.same_line()
            loaded = current == str(path)
            imgui.text(f'{path.name}  {size / 2**20:.1f} MB' + ('  (on screen)' if loaded else '')
                       + ('' if ready else '  (being written)'))
        if not state.snapshots:
            imgui.text_disabled('no network-snapshot-*.pkl yet')

    def _log(self, state):
        imgui.begin_child('##logtail', imgui.ImVec2(-1, self.viz.font_size * 14),
                          imgui_compat.CHILD_BORDERS, imgui.WindowFlags_.horizontal_scrollbar)
        for line in state.log_tail[-200:]:
            imgui.text_unformatted(line)
        if imgui.get_scroll_y() >= imgui.get_scroll_max_y() - 1:
            imgui.set_scroll_here_y(1.0)
        imgui.end_child()

    def close(self):
        """Stop watching; a running trainer keeps going (it has its own session)."""
        if self.monitor is not None:
            self.monitor.close()
        self.fakes.delete()
