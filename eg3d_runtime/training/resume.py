"""Resuming: which snapshot, how far the run had got, and the command that continues a run
directory (ours or official) from its training_options.json."""
import json
import os
import re

from ..network_path import network_path
from ..pickles import PickleLoadError
from ..run_directory import OPTIONS_FILE, latest_snapshot, snapshot_kimg
from .options import TrainError


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
    cur_nimg = 0
    if not restart:
        progress = networks.get('progress') or {}
        kimg = snapshot_kimg(path)
        if isinstance(progress.get('cur_nimg'), int):
            cur_nimg = progress['cur_nimg']
        elif kimg is not None:
            cur_nimg = kimg * 1000
    return {'path': path, 'networks': networks, 'cur_nimg': cur_nimg}


def resume_args(run_dir):
    """Command-line arguments that continue `run_dir` (ours or official) from its latest
    snapshot, rebuilt from its training_options.json."""
    options_path = os.path.join(run_dir, OPTIONS_FILE)
    try:
        with open(options_path, encoding='utf-8') as f:
            c = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{options_path}: cannot read training options ({e})') from None
    snapshot = latest_snapshot(run_dir)
    if snapshot is None:
        raise ValueError(f'{run_dir}: no network snapshot to resume from')
    match = re.match(r'\d+-(ffhq|afhq|shapenet|demo)-', os.path.basename(os.path.normpath(run_dir)))
    try:
        g, d, loss = c['G_kwargs'], c['D_kwargs'], c['loss_kwargs']
        rk = g['rendering_kwargs']
        cfg = match.group(1) if match else _cfg_from_rendering(rk)
        args = {
            'outdir': os.path.dirname(os.path.abspath(run_dir)), 'cfg': cfg,
            'data': c['training_set_kwargs']['path'], 'gpus': c['num_gpus'],
            'batch': c['batch_size'], 'gamma': loss['r1_gamma'],
            'cond': c['training_set_kwargs'].get('use_labels', True),
            'mirror': c['training_set_kwargs'].get('xflip', False),
            'resume': snapshot, 'batch-gpu': c['batch_gpu'],
            'cbase': g['channel_base'], 'cmax': g['channel_max'],
            'glr': c['G_opt_kwargs']['lr'], 'dlr': c['D_opt_kwargs']['lr'],
            'map-depth': g['mapping_kwargs'].get('num_layers', 2),
            'mbstd-group': d['epilogue_kwargs'].get('mbstd_group_size', 4),
            'freezed': d['block_kwargs'].get('freeze_layers', 0),
            'metrics': ','.join(c.get('metrics', [])) or 'none',
            'kimg': c['total_kimg'], 'tick': c['kimg_per_tick'],
            'snap': c['network_snapshot_ticks'], 'seed': c['random_seed'],
            'workers': c['data_loader_kwargs'].get('num_workers', 3),
            'neural_rendering_resolution_initial': loss['neural_rendering_resolution_initial'],
            'neural_rendering_resolution_fade_kimg': loss['neural_rendering_resolution_fade_kimg'],
            'blur_fade_kimg': loss['blur_fade_kimg'] * 32 / c['batch_size'],
            'gen_pose_cond': not rk['c_gen_conditioning_zero'],
            'c-scale': rk['c_scale'], 'gpc_reg_fade_kimg': loss['gpc_reg_fade_kimg'],
            'disc_c_noise': d.get('disc_c_noise', 0),
            'sr_noise_mode': rk['superresolution_noise_mode'],
            'sr_num_fp16_res': g['sr_num_fp16_res'], 'g_num_fp16_res': g['num_fp16_res'],
            'd_num_fp16_res': d['num_fp16_res'],
            'style_mixing_prob': loss.get('style_mixing_prob', 0),
            'density_reg': rk['density_reg'], 'density_reg_p_dist': rk['density_reg_p_dist'],
            'density_reg_every': c.get('G_reg_interval') or 4, 'reg_type': rk['reg_type'],
            'decoder_lr_mul': rk['decoder_lr_mul'],
        }
        if c.get('inception_path'):
            args['inception'] = c['inception_path']
        if c.get('image_grid_size'):
            args['grid'] = 'x'.join(str(v) for v in c['image_grid_size'])
        if loss.get('neural_rendering_resolution_final') is not None:
            args['neural_rendering_resolution_final'] = loss['neural_rendering_resolution_final']
        if rk.get('gpc_reg_prob') is not None:
            args['gpc_reg_prob'] = rk['gpc_reg_prob']
        if 'distill' in c:   # renders its own images (training/distill.py)
            del args['data']
            args.update(distill=c['training_set_kwargs']['figures'],
                        distill_resolution=c['training_set_kwargs']['resolution'],
                        distill_supersample=c['training_set_kwargs'].get('supersample', 2),
                        distill_adv=c['distill']['adversarial_weight'],
                        distill_volume_kimg=c['distill'].get('volume_kimg', 0),
                        distill_field_kimg=c['distill'].get('field_kimg', 0),
                        distill_sr_kimg=c['distill'].get('sr_kimg', 0),
                        distill_sr_edge_weight=c['distill'].get('sr_edge_weight', 0))
            for stage in ('field', 'sr'):
                if c['distill'].get(f'{stage}_lr') is not None:
                    args[f'distill_{stage}_lr'] = c['distill'][f'{stage}_lr']
        if c.get('augment_kwargs'):
            args['aug'] = 'ada' if 'ada_target' in c else 'fixed'
            args['target' if 'ada_target' in c else 'p'] = c.get('ada_target', c.get('augment_p'))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f'{options_path}: missing or malformed entry {e}') from None
    return [f'--{k}={v}' for k, v in args.items()]


def _cfg_from_rendering(rk):
    if rk.get('white_back') and rk.get('ray_start') != 2.25:
        return 'shapenet'
    if rk.get('image_resolution') == 64:
        return 'demo'
    return 'afhq' if rk.get('avg_camera_pivot') == [0, 0, -0.06] else 'ffhq'


