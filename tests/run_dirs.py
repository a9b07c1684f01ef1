"""Run directories for the Trainer tab tests: a fabricated official-format run, and a fake
trainer script that writes one live (standing in for eg3d_runtime.train where noted)."""
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

LOSS_G = [1.5, float('nan'), 0.75]          # tick 1 has no G loss value yet: NaN
KIMG = [0.0, 4.0, 8.0]


def stats_line(tick, kimg, loss_g, extra=None):
    stats = {'Loss/G/loss': {'num': 0 if loss_g != loss_g else 8, 'mean': loss_g, 'std': 0.1},
             'Loss/D/loss': {'num': 8, 'mean': 1.25 - 0.1 * tick, 'std': 0.2},
             'Loss/r1_penalty': {'num': 2, 'mean': float('inf') if tick == 2 else 0.5, 'std': 0},
             'Progress/tick': {'num': 1, 'mean': tick, 'std': 0},
             'Progress/kimg': {'num': 1, 'mean': kimg, 'std': 0},
             'Timing/sec_per_kimg': {'num': 1, 'mean': 30.0, 'std': 0},
             'Progress/augment': {'num': 1, 'mean': 0.0, 'std': 0}}
    stats.update(extra or {})
    return json.dumps(dict(stats, timestamp=1700000000.0 + tick))   # NaN/Infinity literals


def official_run(root, snapshot_pkl=None):
    """An official-style run directory: 3 ticks (NaN and Infinity inside), a metric, fakes, a
    log, the options and, with `snapshot_pkl`, a network snapshot at 4 kimg."""
    run = Path(root) / '00000-ffhq-ffhq-gpus8-batch32-gamma1'
    run.mkdir(parents=True)
    (run / 'stats.jsonl').write_text(''.join(
        stats_line(t, k, g) + '\n' for t, (k, g) in enumerate(zip(KIMG, LOSS_G))))
    (run / 'metric-fid50k_full.jsonl').write_text(json.dumps({
        'results': {'fid50k_full': 41.5}, 'metric': 'fid50k_full', 'total_time': 60.0,
        'total_time_str': '1m 00s', 'num_gpus': 8,
        'snapshot_pkl': 'network-snapshot-000004.pkl', 'timestamp': 1700000001.0}) + '\n')
    (run / 'training_options.json').write_text(json.dumps({'total_kimg': 25000,
                                                           'run_dir': str(run)}, indent=2))
    (run / 'log.txt').write_text('Loading training set...\nTraining for 25000 kimg...\n\n'
                                 'tick 0     kimg 0.0      time 1m 02s\n')
    for kimg, shade in ((0, 60), (4, 200)):
        Image.fromarray(np.full((32, 48, 3), shade, np.uint8)).save(run / f'fakes{kimg:06d}.png')
    if snapshot_pkl is not None:
        shutil.copy(snapshot_pkl, run / 'network-snapshot-000004.pkl')
    return run


# Stand-in for `python -m eg3d_runtime.train`: announces its run dir, writes a tick every
# 0.05 s, a snapshot (a copy of the pickle given as FAKE_SNAPSHOT) every 20 ticks; on SIGTERM or
# a stop-request file it writes a snapshot, logs "Stopped by request." and exits 0.
FAKE_TRAINER = r'''
import os, shutil, signal, sys, time, json
from pathlib import Path
args = dict(a[2:].split('=', 1) for a in sys.argv[1:] if a.startswith('--') and '=' in a)
run = Path(args['outdir']) / '00000-fake'
run.mkdir(parents=True)
print('Output directory:', run, flush=True)
(run / 'training_options.json').write_text(json.dumps({'total_kimg': 1000}))
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
log = open(run / 'log.txt', 'a')
def snapshot(kimg):
    tmp = run / 'snapshot.tmp'
    shutil.copy(os.environ['FAKE_SNAPSHOT'], tmp)
    os.replace(tmp, run / f'network-snapshot-{kimg:06d}.pkl')
tick = 0
while True:
    with open(run / 'stats.jsonl', 'a') as f:
        f.write(json.dumps({'Loss/G/loss': {'num': 1, 'mean': 1.0 / (tick + 1), 'std': 0},
                            'Progress/kimg': {'num': 1, 'mean': tick * 0.5, 'std': 0},
                            'timestamp': time.time()}) + '\n')
    log.write(f'tick {tick}\n'); log.flush()
    if stop or (run / 'stop-request').exists():
        snapshot(tick)
        log.write('Stopped by request.\nExiting...\n'); log.close()
        sys.exit(0)
    if tick % 20 == 0:
        snapshot(tick)
    tick += 1
    time.sleep(0.05)
'''
