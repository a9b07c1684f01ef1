"""The inversion quality check of issue 17: a picture the network made (seed 11, psi 0.7,
yaw +0.25, pitch -0.05, noise const) is inverted with its own camera by the eg3d-invert command,
then the tuned network at the pivot is compared with the original's renders at the target view
and at yaw -0.30, a view the inversion never saw. Prints PSNRs, wall time and the command's
user+sys CPU time (wall far above user+sys / cores means other work shared the CPUs).

    python tools/invert_quality.py [--network checkpoints/demo.pkl] [-- extra eg3d-invert args]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eg3d_runtime import views                              # noqa: E402
from eg3d_runtime.views import render_seed                  # noqa: E402
from eg3d_runtime.inversion.optimise import psnr            # noqa: E402
from eg3d_runtime.pickles import load_generator             # noqa: E402

SEED, PSI, YAW, PITCH, NOVEL_YAW = 11, 0.7, 0.25, -0.05, -0.30


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--network', default=str(REPO / 'checkpoints' / 'demo.pkl'))
    p.add_argument('--workdir', default=None, help='keep the files here (default: a temp dir)')
    p.add_argument('--novel-yaw', type=float, action='append', default=None,
                   help=f'unseen yaw to compare at (repeatable; default {NOVEL_YAW}; a '
                        'PanoHead network also has a back, e.g. 3.14)')
    p.add_argument('extra', nargs='*', help='more eg3d-invert options, after --')
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix='invert-quality-'))
    work.mkdir(parents=True, exist_ok=True)
    G = load_generator(args.network)
    novel_yaws = args.novel_yaw or [NOVEL_YAW]
    target = render_seed(G.session, SEED, YAW, PITCH, PSI).image
    novel = [render_seed(G.session, SEED, yaw, PITCH, PSI).image for yaw in novel_yaws]
    Image.fromarray(views.image_to_uint8(target).numpy(), 'RGB').save(work / 'photo.png')
    c = views.camera(G, YAW, PITCH)
    (work / 'camera.json').write_text(json.dumps(c[0].tolist()))
    command = [sys.executable, '-m', 'eg3d_runtime.invert', '--network', args.network,
               '--target', str(work / 'photo.png'), '--camera', str(work / 'camera.json'),
               '--outdir', str(work / 'out'), '--device', 'cpu', *args.extra]
    print(' '.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    tuned = load_generator(work / 'out' / 'inverted.pkl')
    ws = torch.from_numpy(np.load(work / 'out' / 'w.npy'))
    with torch.no_grad():
        at_target = tuned.synthesis(ws, c, noise_mode='const')['image']
        at_novel = [tuned.synthesis(ws, views.camera(G, yaw, PITCH), noise_mode='const')['image']
                    for yaw in novel_yaws]
    unseen = ', '.join(f'{psnr(a, b):.2f} dB at yaw {yaw}'
                       for a, b, yaw in zip(at_novel, novel, novel_yaws))
    print(f'network {args.network}: PSNR {psnr(at_target, target):.2f} dB at the target view, '
          f'{unseen}; wall {wall / 60:.1f} min, '
          f'user+sys {(usage.ru_utime + usage.ru_stime) / 60:.1f} CPU-min on '
          f'{os.cpu_count()} cores; files in {work / "out"}')


if __name__ == '__main__':
    main()
