"""Benchmark: milliseconds per stage and per frame, the engine session beside the faithful
reference path, measured in the same run.

    python -m eg3d_runtime.bench                        # full-size ffhq network, default device
    python -m eg3d_runtime.bench --cfg afhq --device cpu --json out.json
    python -m eg3d_runtime.bench --network ffhq512-128.pkl --device cuda

Without --network a randomly initialised full-size network of the family is built
(`configs.build_generator`); random weights do not change the amount of work per frame.

Frames:
- new latent:    mapping + backbone + ray marching + super-resolution + texture-ready frame
- camera only:   cached tri-planes; ray marching + super-resolution + texture-ready frame
- preview:       a simulated drag with the adaptive preview (eg3d_runtime.preview): raw neural
                 rendering, no super-resolution, settings chosen to hold --preview-fps; the
                 faithful path is timed at the settings the controller settled on.
Stages are the session's own timings of its frames (Frame.timings); on CUDA, where the
per-camera part is one CUDA graph, ray marching and super-resolution are one 'render' stage.
"Texture-ready frame" = the image as an H x W x 3 uint8 tensor on the device (what the viewer
uploads). Times are the best of --reps runs (interference from other processes only ever
adds time; medians are in the JSON too); engine and faithful runs are interleaved.
"""
import argparse
import dataclasses
import json
import sys

from .. import arguments
from .ending import run_command


def march_setting(text):
    """An argparse type: 'nrr,coarse,fine' -> three integers, nrr within arguments.nrr's range
    and both sample counts at least 1."""
    parts = str(text).split(',')
    try:
        res, coarse, fine = (int(v) for v in parts)
    except ValueError:
        raise arguments.Refusal(text, 'must be nrr,coarse,fine like 64,48,48') from None
    if not 1 <= res <= arguments.MAX_NRR or coarse < 1 or fine < 1:
        raise arguments.Refusal(text, f'nrr must be from 1 to {arguments.MAX_NRR}, the sample '
                                      'counts at least 1')
    return res, coarse, fine


def build_parser():
    p = arguments.Parser(prog='python -m eg3d_runtime.bench', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    arguments.network_option(src)
    src.add_argument('--cfg', default='ffhq', choices=['ffhq', 'afhq', 'shapenet'],
                     help='family of the randomly initialised full-size network (default ffhq)')
    p.add_argument('--device', choices=['cpu', 'cuda'], default=None,
                   help='default: cuda when available')
    p.add_argument('--json', type=arguments.output_file('.json'),
                   help='also write the results to this JSON file')
    p.add_argument('--force', action='store_true', help='replace an existing --json file')
    arguments.precision_option(p)
    p.add_argument('--nrr', type=arguments.nrr, default=None,
                   help="neural rendering resolution (default: the pickle's, 128 for --cfg)")
    p.add_argument('--reps', type=arguments.integer(1, 10000), default=None,
                   help='repetitions (default 3 CPU, 20 CUDA)')
    p.add_argument('--threads', type=arguments.integer(1, 4096), default=None,
                   help='torch.set_num_threads')
    p.add_argument('--noise-mode', default='const', choices=['const', 'random', 'none'])
    p.add_argument('--preview-fps', type=arguments.number(0, 1000, lo_open=True), default=20.0,
                   help='preview target (default 20)')
    p.add_argument('--preview-frames', type=arguments.integer(1, 100000), default=None,
                   help='frames of the simulated drag (default 40 CPU, 200 CUDA)')
    p.add_argument('--empty-space-skipping', action='store_true',
                   help='preview with empty-space skipping')
    p.add_argument('--march', action='append', type=march_setting,
                   default=[(64, 48, 48), (64, 24, 24)],
                   help='extra ray-marching settings nrr,coarse,fine (repeatable)')
    p.add_argument('--no-faithful', action='store_true', help='skip the reference path')
    p.add_check(arguments.replaced_only_with_force('--json'))
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    import torch

    from ..devices import default_device
    from ..pickles import PickleLoadError
    device = torch.device(args.device or default_device())
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('error: --device cuda: CUDA is not available', file=sys.stderr)
        return 1
    args.reps = args.reps or (20 if device.type == 'cuda' else 3)
    args.preview_frames = args.preview_frames or (200 if device.type == 'cuda' else 40)
    return run_command(_run_and_report, args, PickleLoadError, 'interrupted')


def _run_and_report(args):
    from ..benchmark import BenchOptions, format_table, run
    from ..files import atomic_write
    fields = {f.name for f in dataclasses.fields(BenchOptions)}
    result, rows = run(BenchOptions(**{k: v for k, v in vars(args).items() if k in fields}))
    print(format_table(result, rows))
    if args.json:
        atomic_write(args.json, json.dumps(result, indent=2))
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
