"""Start, stop and resume a training run as its own process (`python -m eg3d_runtime.train`).

The process gets a new session, so it keeps training when the viewer closes; its console
output goes to a file, which also tells us the run directory ('Output directory: ...').
Stopping is a request the trainer honours cleanly: it writes a snapshot, then exits.
No GUI imports.
"""
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from eg3d_runtime.files import cache_dir
from eg3d_runtime.run_directory import STOP_FILE, parse_output_dir
from eg3d_runtime.training.options import command_line

from .run_reader import read_tail

REPO = Path(__file__).resolve().parents[2]
TRAIN = [sys.executable, '-m', 'eg3d_runtime.train']


def demo_data():
    """Where the demo preset keeps its procedural dataset (built on first use)."""
    return cache_dir() / 'demo-data-64.zip'


# The seed recipes: values of train.py options (eg3d_runtime.training.options.OPTIONS, by name;
# docs/eg3d-reference.md 4.3); the form shows them for editing.
_FFHQ = {'cfg': 'ffhq', 'gpus': 8, 'batch': 32, 'gamma': 1, 'gen_pose_cond': True}
PRESETS = {
    # Curves every ~100 images (about a minute on a laptop CPU), a snapshot every 1 kimg (one
    # file name per kimg): the GAN that was the demo before the distilled checkpoints/demo.pkl.
    'demo': {'cfg': 'demo', 'gpus': 1, 'batch': 8, 'gamma': 1, 'kimg': 40, 'tick': 0.1,
             'snap': 10},
    # The recipe of checkpoints/demo.pkl in one run (README "Demo checkpoint"): the procedural
    # renderer distilled into G: volume, image, field and super-resolution stages, an estimated
    # 2 1/4 to 3 hours on 2 CPU cores.
    'demo distill': {'cfg': 'demo', 'distill': 64, 'gpus': 1, 'batch': 8, 'gamma': 1,
                     'cbase': 4096, 'cmax': 64, 'neural_rendering_resolution_initial': 64,
                     'glr': 0.01, 'decoder_lr_mul': 10, 'distill_volume_kimg': 10,
                     'distill_field_kimg': 4, 'distill_field_lr': 0.005,
                     'distill_sr_kimg': 16, 'distill_sr_lr': 0.003, 'distill_sr_edge_weight': 4,
                     'kimg': 31.2, 'tick': 0.4, 'snap': 5, 'workers': 1},
    'ffhq 64': dict(_FFHQ),
    'ffhq 64->128 fine-tune': dict(_FFHQ, neural_rendering_resolution_final=128,
                                   resume='ffhq512-64.pkl', kimg=2000),
    'afhq': {'cfg': 'afhq', 'gpus': 8, 'batch': 32, 'gamma': 5, 'gpc_reg_prob': 0.8,
             'aug': 'ada'},
    'shapenet': {'cfg': 'shapenet', 'gpus': 8, 'batch': 32, 'gamma': 0.3},
}


def train_command(options, extra=''):
    """argv of the trainer: `options` ({option name: value}, empty values left out) spelled as
    the option table spells them, then `extra`."""
    return TRAIN + command_line(options) + shlex.split(extra)


def dataset_command(dest):
    return [sys.executable, '-m', 'eg3d_runtime.dataset_tool', '--source', 'procedural',
            '--dest', str(dest), '--resolution', '64', '--max-images', '512']


def resume_command(run_dir):
    """argv that continues `run_dir` from its latest snapshot; ValueError (one line) if it can't."""
    try:
        from eg3d_runtime.training.resume import resume_args
    except ImportError as e:
        raise ValueError(f'cannot resume: the training module is not available ({e})') from None
    return TRAIN + list(resume_args(Path(run_dir)))


def request_stop(run_dir):
    """Ask the trainer writing `run_dir` to snapshot and exit (works for any process)."""
    try:
        (Path(run_dir) / STOP_FILE).touch()
    except OSError as e:
        raise ValueError(f'{run_dir}: cannot request a stop ({e.strerror})') from None


def find_output_dir(output_path, limit=1 << 20):
    """The run directory announced in the trainer's console output, or None (yet)."""
    try:
        with open(output_path, 'rb') as f:
            text = f.read(limit).decode('utf-8', 'replace')
    except OSError:
        return None
    return next(filter(None, map(parse_output_dir, text.splitlines())), None)


class TrainingProcess:
    """One launched trainer. `run_dir` appears once the trainer announces it, `returncode` once
    it exits; a watcher thread fills both so the GUI only reads attributes."""

    def __init__(self, commands, output_path=None, cwd=None):
        """commands: one argv, or several run one after another (all must succeed)."""
        commands = [commands] if isinstance(commands[0], str) else list(commands)
        self.command = commands[-1]
        if output_path is None:
            output_path = cache_dir() / 'training' / time.strftime('%Y%m%d-%H%M%S.out')
        self.output_path = Path(output_path)
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        self._cwd = cwd
        self._env = dict(os.environ, PYTHONUNBUFFERED='1',
                         PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                                  os.environ.get('PYTHONPATH')])))
        self.run_dir = None
        self.returncode = None
        self.stop_requested = False
        # The commands run one at a time from the watcher thread, so that stop() signals the one
        # running (a dataset build before the trainer stops too, leaving no half-written zip).
        self._lock = threading.Lock()
        self._later = commands[1:]
        self.proc = self._start(commands[0], 'wb')
        self._thread = threading.Thread(target=self._watch, daemon=True, name='trainer-watch')
        self._thread.start()

    def _start(self, argv, mode):
        with open(self.output_path, mode) as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self._cwd, env=self._env,
                                    start_new_session=True)

    def _watch(self):
        for argv in self._later:
            code = self.proc.wait()
            with self._lock:
                if code != 0 or self.stop_requested:
                    self.returncode = code
                    return
                self.proc = self._start(argv, 'ab')
        while self.run_dir is None and self.proc.poll() is None:
            self.run_dir = find_output_dir(self.output_path)
            time.sleep(0.2)
        if self.run_dir is None:
            self.run_dir = find_output_dir(self.output_path)
        self.returncode = self.proc.wait()

    @property
    def running(self):
        return self.returncode is None

    def output_error(self):
        """The last line of the console output (why a launch failed), or ''."""
        lines = [line for line in read_tail(self.output_path, 8192, 40) if line.strip()]
        return lines[-1].strip() if lines else ''

    def stop(self):
        """Clean stop: the stop-request file, then SIGTERM to the command running (the trainer
        treats both alike and removes the file when it exits; a dataset build stops and writes
        nothing, and the trainer after it does not start)."""
        with self._lock:
            self.stop_requested = True
            try:
                if self.run_dir is not None:
                    request_stop(self.run_dir)
            finally:
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=None):
        self._thread.join(timeout)
        return self.returncode
