"""Render images (and depth maps) of an EG3D or PanoHead pickle for a list of seeds.

    python -m eg3d_runtime.generate --network PKL --seeds 0-3 --yaw 0.3 --psi 0.7 --outdir out

Writes seedNNNN.png and seedNNNN_depth.png for every seed, all of them or none; images of an
earlier run are replaced only with --force.

Camera and conditioning follow the official scripts: the mapping is conditioned on the frontal
camera (or, with --pose-cond, on PanoHead's --pose_cond yaw), the image is rendered from an
orbit at (yaw, pitch) around the network's pivot. PanoHead networks also get their opacity
mask (seedNNNN_mask.png).
"""
import argparse
import sys

from .. import arguments
from ..configs import FFHQ_FOV_DEGREES
from .ending import run_command


def build_parser():
    p = arguments.Parser(prog='python -m eg3d_runtime.generate', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.network_option(p, required=True)
    p.add_argument('--seeds', type=arguments.seeds, default=[0], help='e.g. 0-3,7 (default 0)')
    p.add_argument('--yaw', type=arguments.angle, default=0.0,
                   help='camera yaw in radians (default 0)')
    p.add_argument('--pitch', type=arguments.angle, default=0.0, help='camera pitch (default 0)')
    p.add_argument('--psi', type=arguments.psi, default=1.0, help='truncation psi (default 1)')
    p.add_argument('--cutoff', type=arguments.cutoff, default=14,
                   help='truncation cutoff (default 14)')
    p.add_argument('--nrr', type=arguments.nrr, default=None,
                   help="neural rendering resolution (default: the pickle's)")
    p.add_argument('--fov', type=arguments.fov, default=FFHQ_FOV_DEGREES,
                   help=f'field of view in degrees, official convention (default {FFHQ_FOV_DEGREES})')
    p.add_argument('--pose-cond', '--pose_cond', dest='pose_cond', type=arguments.number(),
                   default=90.0, metavar='DEGREES',
                   help="yaw of the conditioning camera, as PanoHead's --pose_cond (default 90: "
                        'frontal)')
    p.add_argument('--noise-mode', choices=['const', 'random', 'none'], default='const')
    p.add_argument('--deterministic', action='store_true',
                   help='no sample jitter (linspace depths, inverse-CDF importance samples)')
    p.add_argument('--outdir', type=arguments.output_dir, default='out',
                   help='output directory (default out)')
    p.add_argument('--force', action='store_true', help='replace images of an earlier run')
    p.add_argument('--device', type=arguments.device, default=None,
                   help='cpu or cuda (default: cuda when available)')
    arguments.precision_option(p)
    return p


def output_names(seeds, mask=False):
    """The files of the seeds: image and depth (and a PanoHead network's opacity mask)."""
    kinds = ('', '_depth', '_mask') if mask else ('', '_depth')
    return [f'seed{seed:04d}{kind}.png' for seed in seeds for kind in kinds]


def run(args):
    """All the seeds' images, or none: written into a staging folder and moved into place
    together (files.Outputs)."""
    import torch
    from PIL import Image

    from .. import views
    from ..devices import default_device
    from ..engine import Session
    from ..files import Outputs
    from ..network_path import network_path
    from ..networks.panohead import is_panohead
    from ..pickles import load_generator
    from ..rendering.footprint import require_frame_memory
    outputs = Outputs(args.outdir, output_names(args.seeds), args.force)
    outputs.check()
    device = torch.device(args.device or default_device())
    G = load_generator(network_path(args.network), device=device)
    require_frame_memory(G, device, f'--nrr {args.nrr or G.neural_rendering_resolution}',
                         'use a smaller --nrr', nrr=args.nrr)
    panohead = is_panohead(G.rendering_kwargs)
    if panohead:                      # its opacity mask too: the set of outputs grows
        outputs = Outputs(args.outdir, output_names(args.seeds, mask=True), args.force)
        outputs.check()
    session = Session(G, device, args.precision)
    print(session.describe())
    with outputs:
        for seed in args.seeds:
            frame = views.render_seed(session, seed, args.yaw, args.pitch, args.psi,
                                      args.cutoff, args.nrr, args.fov, args.noise_mode,
                                      args.deterministic, args.pose_cond)
            Image.fromarray(views.image_to_uint8(frame.image).cpu().numpy(), 'RGB').save(
                outputs.path(f'seed{seed:04d}.png'))
            Image.fromarray(views.depth_to_uint8(frame.image_depth).cpu().numpy(), 'L').save(
                outputs.path(f'seed{seed:04d}_depth.png'))
            if panohead:
                Image.fromarray(views.mask_to_uint8(frame.image_mask).cpu().numpy(), 'L').save(
                    outputs.path(f'seed{seed:04d}_mask.png'))
            print(f'rendered seed {seed}')
    extra = '_depth.png, _mask.png' if panohead else '_depth.png'
    print(f'wrote {len(args.seeds)} images (+ {extra}) to {args.outdir}')
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..pickles import PickleLoadError
    return run_command(run, args, PickleLoadError,
                       'interrupted; no image was kept')


if __name__ == '__main__':
    sys.exit(main())
