"""The demo network's quality numbers (issue 15), so candidate demo checkpoints are compared by
the same measure: 8 seeds x 3 yaws (-0.5, 0, +0.5), psi 0.7, the pickle's own resolutions.

    python -m eg3d_runtime.demo_quality --network checkpoints/demo.pkl --grid demo-grid.png
    python -m eg3d_runtime.demo_quality --figures      # the toy figures it should reproduce

- seed diversity: mean absolute difference (0-255) of the frontal images over all seed pairs;
- view change: mean absolute difference of each seed's yaw -0.5 and +0.5 images;
- sharpness: mean squared 4-neighbour Laplacian of the grey (luma) image, over all 24 images.
`--grid` writes the 24 images as one PNG: a column per seed, a row per yaw.
"""
import argparse
import itertools
import sys

import numpy as np
import torch

from . import arguments, procedural, views
from .command import run_command
from .engine import Session
from .generate import render_seed
from .network_path import network_path
from .pickles import PickleLoadError, load_generator
from .training import distill
from .training.run_files import save_image_grid

SEEDS = tuple(range(8))
YAWS = (-0.5, 0.0, 0.5)
PSI = 0.7
LUMA = np.array([0.299, 0.587, 0.114])
REFERENCE_RESOLUTION = 128     # the distilled demo's output resolution


def seed_diversity(images):
    """Mean absolute difference over all pairs of uint8 images [N, H, W, 3] (0-255)."""
    images = np.asarray(images, dtype=np.float64)
    return float(np.mean([np.abs(a - b).mean() for a, b in itertools.combinations(images, 2)]))


def view_change(left, right):
    """Mean absolute difference of paired uint8 images [N, H, W, 3] (0-255)."""
    return float(np.abs(np.asarray(left, np.float64) - np.asarray(right, np.float64)).mean())


def sharpness(images):
    """Mean squared 4-neighbour Laplacian of the luma of uint8 images [N, H, W, 3], over the
    interior pixels."""
    grey = np.asarray(images, dtype=np.float64) @ LUMA
    laplacian = (grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
                 - 4 * grey[:, 1:-1, 1:-1])
    return float(np.mean(laplacian ** 2))


def render_views(session):
    """uint8 images [len(YAWS), len(SEEDS), H, W, 3] of the network of an engine session."""
    return np.stack([np.stack([views.image_to_uint8(render_seed(session, seed, yaw, psi=PSI).image)
                               .cpu().numpy() for seed in SEEDS]) for yaw in YAWS])


def render_figures(resolution=REFERENCE_RESOLUTION):
    """render_views' images of what a distilled demo learns: toy figure k (`train --distill`)
    for seed k, from the data camera at each yaw."""
    return np.stack([np.stack([procedural.render_label(distill.figure(seed),
                                                       procedural.orbit_label(yaw), resolution)
                               for seed in SEEDS]) for yaw in YAWS])


def measure(images):
    """{'seed diversity', 'view change', 'sharpness'} of render_views' images."""
    front, left, right = images[YAWS.index(0.0)], images[YAWS.index(-0.5)], images[YAWS.index(0.5)]
    return {'seed diversity': seed_diversity(front), 'view change': view_change(left, right),
            'sharpness': sharpness(images.reshape(-1, *images.shape[2:]))}


def build_parser():
    p = arguments.Parser(prog='python -m eg3d_runtime.demo_quality', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument('--network', type=arguments.network,
                        help='network pickle, run directory (its latest snapshot) or released name')
    source.add_argument('--figures', action='store_true',
                        help='measure the procedural toy figures a distilled demo learns '
                             f'(seed k = figure k, {REFERENCE_RESOLUTION}x{REFERENCE_RESOLUTION})')
    p.add_argument('--grid', type=arguments.output_file('.png'),
                   help='write the 8 x 3 images to this PNG')
    p.add_argument('--force', action='store_true', help='replace an existing --grid file')
    p.add_check(arguments.replaced_only_with_force('--grid'))
    return p


def main(argv=None):
    return run_command(_report, build_parser().parse_args(argv), PickleLoadError, 'interrupted')


@torch.no_grad()
def _report(args):
    if args.figures:
        images = render_figures()
    else:
        images = render_views(Session(load_generator(network_path(args.network))))
    for name, value in measure(images).items():
        print(f'{name}: {value:.1f}')
    if args.grid:
        save_image_grid(images.reshape(-1, *images.shape[2:]).transpose(0, 3, 1, 2),
                        args.grid, (0, 255), (len(SEEDS), len(YAWS)))
        print(f'wrote {args.grid}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
