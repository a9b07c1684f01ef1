"""Pack images and camera labels into an EG3D training dataset (docs/eg3d-reference.md 7.6).

    python -m eg3d_runtime.dataset_tool --source DIR|ZIP|procedural --dest OUT.zip|OUTDIR \\
        [--resolution R|WxH] [--max-images N] [--transform center-crop|center-crop-wide] [--mirror]
        [--workers N]

Writes the official layout: `{idx//1000:05d}/img{idx:08d}.png` (uncompressed PNG, zip stored
uncompressed) and `dataset.json` with the labels re-keyed to the new names. Unlike the official
tool, labels are checked before anything is written (a source dataset.json must give every image
25 finite numbers), the destination appears only when complete (written under a temporary name,
renamed at the end), an existing dataset is replaced only with --force, and `--mirror` adds `<name>_mirror.png` copies with the mirrored camera, as
the official `mirror_dataset.py` does afterwards. `--source procedural` renders in `--workers`
processes (default: every available core) and gives the same images whatever their number.
"""
import os
import re
import sys
import time

from .. import arguments
from ..training.dataset_pack import (PROCEDURAL, PROCEDURAL_COUNT, PROCEDURAL_RESOLUTION,
                                     check_resolution)
from .ending import run_command


def parse_resolution(text):
    """An argparse type: 'R' or 'WxH' -> (W, H). Outputs must be square powers of two; only
    center-crop-wide takes H < W (the official letterbox: a W x H picture centred on a W x W
    canvas): check_resolution, once the transform is known."""
    m = re.fullmatch(r'(\d+)(?:[x,](\d+))?', str(text).strip())
    if not m:
        raise arguments.Refusal(text, 'must be R or WxH, like 256 or 512x256')
    w = int(m.group(1))
    return w, int(m.group(2) or w)


def build_parser():
    p = arguments.Parser(
        prog='python -m eg3d_runtime.dataset_tool',
        description='Pack images and 25-float camera labels into an EG3D dataset (zip or folder).')
    p.add_argument('--source', required=True, type=source_argument,
                   help=f'image folder, zip, or "{PROCEDURAL}" (rendered toy figures)')
    p.add_argument('--dest', required=True, type=dest_argument,
                   help='output .zip or folder (an existing dataset is replaced only with --force)')
    p.add_argument('--force', action='store_true', help='replace an existing dataset at --dest')
    p.add_argument('--resolution', type=parse_resolution,
                   help='output size R or WxH (square, power of two); '
                        f'{PROCEDURAL} defaults to {PROCEDURAL_RESOLUTION}')
    p.add_argument('--max-images', type=arguments.integer(0),
                   help=f'use the first N images ({PROCEDURAL}: N images, default '
                        f'{PROCEDURAL_COUNT})')
    p.add_argument('--transform', choices=['center-crop', 'center-crop-wide'])
    p.add_argument('--mirror', action='store_true',
                   help='add a mirrored copy of every image with the mirrored camera')
    p.add_argument('--workers', type=arguments.integer(1, 1024),
                   help=f'processes rendering {PROCEDURAL} images (default: the available '
                        'cores)')
    p.add_check(_resolution_fits)
    return p


def source_argument(text):
    """An argparse type: 'procedural', a folder or a .zip."""
    if text == PROCEDURAL:
        return text
    path = arguments.input_path(text)
    if not os.path.isdir(path) and not path.lower().endswith('.zip'):
        raise arguments.Refusal(text, f'must be a folder, a .zip or "{PROCEDURAL}"')
    return path


def dest_argument(text):
    """An argparse type: a .zip (a file that can be made) or a folder."""
    if str(text).lower().endswith('.zip'):
        return arguments.output_file('.zip')(text)
    if os.path.isfile(text):
        raise arguments.Refusal(text, 'is a file: give a .zip or a folder')
    return arguments.output_dir(text)


def _resolution_fits(args):
    if args.transform and args.resolution is None:
        raise ValueError(f'--transform {args.transform}: needs --resolution')
    if args.resolution is not None:
        check_resolution(args.resolution, args.transform)


def run(args):
    from concurrent.futures.process import BrokenProcessPool

    from ..memory import require
    from ..training.dataset_format import DatasetError
    from ..training.dataset_pack import convert, required_memory
    w, h = args.resolution or (PROCEDURAL_RESOLUTION, PROCEDURAL_RESOLUTION)
    require(required_memory(args.source, args.resolution, args.workers),
            f'--resolution {w}x{h}', 'use a smaller --resolution or fewer --workers')
    start = time.perf_counter()
    try:
        n = convert(args.source, args.dest, args.resolution, args.max_images, args.transform,
                    args.mirror, args.workers, args.force)
    except BrokenProcessPool as e:
        raise DatasetError(f'{args.source}: a rendering process died ({e}); nothing written') \
            from None
    seconds = time.perf_counter() - start
    print(f'{args.dest}: {n} images in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} images/s)')
    return 0


def main(argv=None):
    from ..training.dataset_format import DatasetError
    return run_command(run, build_parser().parse_args(argv), DatasetError,
                       'interrupted; nothing written')


if __name__ == '__main__':
    sys.exit(main())
