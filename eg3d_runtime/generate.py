"""Render images (and depth maps) of an EG3D pickle for a list of seeds.

    python -m eg3d_runtime.generate --network PKL --seeds 0-3 --yaw 0.3 --psi 0.7 --outdir out

Camera and conditioning follow the official scripts: the mapping is conditioned on the frontal
camera, the image is rendered from an orbit at (yaw, pitch) around the network's pivot.
"""
import argparse
import os
import sys

import torch
from PIL import Image

from . import cameras, views
from .devices import default_device
from .fast import path as fastpath
from .fast import precision
from .network_path import network_path
from .pickles import PickleLoadError, load_generator


@torch.no_grad()
def render_seed(G, seed, yaw=0.0, pitch=0.0, psi=1.0, cutoff=14, nrr=None,
                fov=cameras.FFHQ_FOV_DEGREES, noise_mode='const', deterministic=False):
    ws = views.seed_ws(G, seed, psi, cutoff, fov)
    torch.manual_seed(seed)  # sample jitter and noise are reproducible per seed
    return G.synthesis(ws, views.camera(G, yaw, pitch, fov), neural_rendering_resolution=nrr, noise_mode=noise_mode,
                       deterministic=deterministic)


def build_parser():
    p = argparse.ArgumentParser(prog='python -m eg3d_runtime.generate', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--network', required=True,
                   help='network pickle, run directory (its latest snapshot) or released name')
    p.add_argument('--seeds', type=views.parse_seeds, default=[0], help='e.g. 0-3,7 (default 0)')
    p.add_argument('--yaw', type=float, default=0.0, help='camera yaw in radians (default 0)')
    p.add_argument('--pitch', type=float, default=0.0, help='camera pitch (default 0)')
    p.add_argument('--psi', type=float, default=1.0, help='truncation psi (default 1)')
    p.add_argument('--cutoff', type=int, default=14, help='truncation cutoff (default 14)')
    p.add_argument('--nrr', type=int, default=None,
                   help="neural rendering resolution (default: the pickle's)")
    p.add_argument('--fov', type=float, default=cameras.FFHQ_FOV_DEGREES,
                   help='field of view in degrees, official convention (default 18.837)')
    p.add_argument('--noise-mode', choices=['const', 'random', 'none'], default='const')
    p.add_argument('--deterministic', action='store_true',
                   help='no sample jitter (linspace depths, inverse-CDF importance samples)')
    p.add_argument('--outdir', default='out', help='output directory (default out)')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda when available)')
    precision.add_option(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = torch.device(args.device or default_device())
    try:
        G = load_generator(network_path(args.network), device=device)
    except PickleLoadError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(fastpath.use_precision(G, args.precision, device))
    try:
        os.makedirs(args.outdir, exist_ok=True)
    except OSError as e:
        print(f'error: {args.outdir}: cannot create the output directory ({e.strerror})',
              file=sys.stderr)
        return 1
    for seed in args.seeds:
        out = render_seed(G, seed, args.yaw, args.pitch, args.psi, args.cutoff, args.nrr, args.fov,
                          args.noise_mode, args.deterministic)
        path = os.path.join(args.outdir, f'seed{seed:04d}.png')
        Image.fromarray(views.image_to_uint8(out['image']).cpu().numpy(), 'RGB').save(path)
        Image.fromarray(views.depth_to_uint8(out['image_depth']).cpu().numpy(), 'L').save(
            os.path.join(args.outdir, f'seed{seed:04d}_depth.png'))
        print(f'wrote {path} (+ _depth.png)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
