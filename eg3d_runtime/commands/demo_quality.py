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
import sys

from .. import arguments
from ..training.demo_quality import REFERENCE_RESOLUTION
from .ending import run_command


def build_parser():
    p = arguments.Parser(prog='python -m eg3d_runtime.demo_quality', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    arguments.network_option(source)
    source.add_argument('--figures', action='store_true',
                        help='measure the procedural toy figures a distilled demo learns '
                             f'(seed k = figure k, {REFERENCE_RESOLUTION}x{REFERENCE_RESOLUTION})')
    p.add_argument('--grid', type=arguments.output_file('.png'),
                   help='write the 8 x 3 images to this PNG')
    p.add_argument('--force', action='store_true', help='replace an existing --grid file')
    p.add_check(arguments.replaced_only_with_force('--grid'))
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..pickles import PickleLoadError
    return run_command(_report, args, PickleLoadError, 'interrupted')


def _report(args):
    import torch

    from ..engine import Session
    from ..network_path import network_path
    from ..pickles import load_generator
    from ..training.demo_quality import SEEDS, YAWS, measure, render_figures, render_views
    from ..training.run_files import save_image_grid
    with torch.no_grad():
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
