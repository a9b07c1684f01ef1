"""Resuming: which snapshot, how far the run had got, and the command that continues a run
directory (ours or official) from its training_options.json."""
import json
import os

from .. import configs
from ..network_path import network_path
from ..networks.panohead import is_panohead
from ..pickles import PickleLoadError
from ..run_directory import OPTIONS_FILE, latest_snapshot, snapshot_kimg
from .options import TrainError, command_line
from .training_options import recorded_values


def resolve_resume_path(text):
    """A pickle path, a run directory (its latest snapshot) or a released checkpoint name."""
    try:
        return network_path(text)
    except PickleLoadError as e:
        raise TrainError(f'--resume {e}') from None


def load_resume(c, restart):
    """{'path', 'networks', 'cur_nimg'} for the loop; cur_nimg from the snapshot's recorded
    progress (our snapshots) or its file name (official ones), 0 with --resume_restart."""
    from ..pickles import load_network_pkl
    path = c['resume_pkl']
    try:
        networks = load_network_pkl(path)
    except PickleLoadError as e:
        raise TrainError(f'--resume: {e}') from None
    if is_panohead(networks['G_ema'].rendering_kwargs):
        raise TrainError(f'--resume: {path}: a PanoHead network; this trainer trains EG3D '
                         'networks only (PanoHead networks can be viewed, exported and '
                         'inverted)')
    cur_nimg = 0
    if not restart:
        progress = networks.get('progress') or {}
        kimg = snapshot_kimg(path)
        if isinstance(progress.get('cur_nimg'), int):
            cur_nimg = progress['cur_nimg']
        elif kimg is not None:
            cur_nimg = round(kimg * 1000)
    return {'path': path, 'networks': networks, 'cur_nimg': cur_nimg}


def resume_args(run_dir):
    """Command-line arguments that continue `run_dir` (ours or official) from its latest
    snapshot, into the directory that holds it, with the options its training_options.json
    records."""
    options_path = os.path.join(run_dir, OPTIONS_FILE)
    try:
        with open(options_path, encoding='utf-8') as f:
            c = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{options_path}: cannot read training options ({e})') from None
    snapshot = latest_snapshot(run_dir)
    if snapshot is None:
        raise ValueError(f'{run_dir}: no network snapshot to resume from')
    try:
        values = recorded_values(c)
        cfg = _cfg_of(c['G_kwargs']['rendering_kwargs'])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f'{options_path}: {e}') from None
    return command_line(dict(values, outdir=os.path.dirname(os.path.abspath(run_dir)), cfg=cfg,
                             resume=snapshot))


def _cfg_of(rendering_kwargs):
    """The --cfg whose rendering options (configs.CFG_RENDERING) a run recorded."""
    for cfg, facts in configs.CFG_RENDERING.items():
        if all(rendering_kwargs.get(key) == value for key, value in facts.items()):
            return cfg
    raise ValueError('its rendering options are those of no --cfg')
