"""Render orbit videos of an EG3D (or PanoHead) pickle, as the official gen_videos.py does.

    python -m eg3d_runtime.gen_videos --network PKL --seeds 0-3 --grid 2x2 --outdir out
    python -m eg3d_runtime.gen_videos --network PKL --seeds 0-3 --interpolate False --outdir out

--interpolate True (default) writes <outdir>/interpolation.mp4: the seeds' ws on a grid, joined by
a cubic spline over the keyframes, w_frames frames per keyframe. --interpolate False writes one
<outdir>/<seed>.mp4 per seed. The camera swings once around the network's pivot over the whole
video; the mapping is conditioned on the frontal camera (docs/eg3d-reference.md 5.4, 6.3).
--shapes True (with --interpolate True) also writes every frame's shape as the official does:
<outdir>/interpolation_<seed0>_<seed1>/<frame:04d>_shape.ply, and the camera poses to
<outdir>/interpolation_trajectory.npy (docs/eg3d-reference.md 6.2).
PanoHead's options: --cfg Head orbits all the way round the origin (yaw one full turn, pitch
-0.05 + 0.5 sin), --pose_cond conditions the mapping on that yaw in degrees (90 frontal)
(docs/panohead-reference.md 4).
"""
import argparse
import os
import sys

from .. import arguments
from ..shapes.options import MIN_RESOLUTION
from ..video import VideoError
from ..video.files import FORMATS
from ..video.orbit import FOCALS
from .ending import run_command

MAX_SAMPLE_MULT = 16


def shape_options(resolution):
    """The --shapes export options, checked (resolution, memory) before the network loads."""
    from ..shapes import ShapeExportError, check_memory
    from ..video.shapes import shape_options
    options = shape_options(resolution)
    try:
        options.check()
        check_memory(options)
    except (ValueError, ShapeExportError) as e:
        raise VideoError(f'--shape-res: {e}') from None
    return options


def build_parser():
    p = arguments.Parser(prog='python -m eg3d_runtime.gen_videos', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.network_option(p, required=True)
    p.add_argument('--seeds', type=arguments.seeds, required=True, help='e.g. 0-3,7')
    p.add_argument('--shuffle-seed', type=arguments.seed, default=None,
                   help='shuffle the keyframe order')
    p.add_argument('--grid', type=arguments.grid, default=(1, 1), help='WxH (default 1x1)')
    p.add_argument('--num-keyframes', '--num_keyframes', type=arguments.integer(1), default=None,
                   help='keyframes per cell (default: number of seeds / (W*H))')
    p.add_argument('--w-frames', '--w_frames', type=arguments.integer(1), default=120,
                   help='frames per keyframe (default 120)')
    p.add_argument('--trunc', type=arguments.psi, default=1.0, help='truncation psi (default 1)')
    p.add_argument('--trunc-cutoff', '--trunc_cutoff', type=arguments.cutoff, default=14,
                   help='truncation cutoff (default 14)')
    p.add_argument('--outdir', required=True, type=arguments.output_dir,
                   help='output directory')
    p.add_argument('--force', action='store_true', help='replace the videos of an earlier run')
    p.add_argument('--cfg', choices=sorted(FOCALS), default='FFHQ',
                   help='camera focal of the dataset (default FFHQ); Head: PanoHead\'s full '
                        'orbit around the origin')
    p.add_argument('--pose_cond', '--pose-cond', dest='pose_cond', type=arguments.number(),
                   default=90.0, metavar='DEGREES',
                   help="yaw of the conditioning camera, as PanoHead's --pose_cond (default 90: "
                        'frontal)')
    p.add_argument('--image_mode', '--image-mode', dest='image_mode', default='image',
                   choices=['image', 'image_depth', 'image_raw'], help='(default image)')
    p.add_argument('--sample_mult', '--sample-mult', dest='sample_mult',
                   type=arguments.number(0, MAX_SAMPLE_MULT, lo_open=True), default=2,
                   help='multiplies both depth sample counts (default 2)')
    p.add_argument('--nrr', type=arguments.nrr, default=None,
                   help="neural rendering resolution (default: the pickle's)")
    p.add_argument('--shapes', type=arguments.boolean, default=False, metavar='True|False',
                   help='also write each frame\'s shape (PLY) and the camera poses (default False)')
    p.add_argument('--shape-res', '--shape_res', type=arguments.integer(MIN_RESOLUTION),
                   default=512, help='shape grid points per axis (default 512, as official)')
    p.add_argument('--interpolate', type=arguments.boolean, default=True, metavar='True|False',
                   help='True: one interpolation video; False: one orbit video per seed')
    p.add_argument('--fps', type=arguments.fps, default=60,
                   help='frames per second (default 60)')
    p.add_argument('--format', choices=FORMATS, default='mp4', help='(default mp4)')
    p.add_argument('--device', type=arguments.device, default=None,
                   help='cpu or cuda (default: cuda when available)')
    arguments.precision_option(p)
    return p


def plan(args):
    """[(file name, seed layout or seed, frame count)] for the videos to write."""
    from ..video.keyframes import keyframe_seeds
    if args.interpolate:
        layout_seeds = keyframe_seeds(args.seeds, args.grid, args.num_keyframes, args.shuffle_seed)
        return [('interpolation', layout_seeds, layout_seeds.shape[2] * args.w_frames)]
    # Official: each seed is its own one-seed 'interpolation' on the grid.
    if args.num_keyframes is None and args.grid != (1, 1):
        raise VideoError('--interpolate False renders each seed alone on the grid, so a grid needs '
                         '--num-keyframes (as official)')
    num_keyframes = keyframe_seeds([0], args.grid, args.num_keyframes).shape[2]
    return [(str(seed), seed, num_keyframes * args.w_frames) for seed in args.seeds]


def required_memory(G, args, videos, side):
    """A generous estimate of the bytes the videos need beyond the loaded network: the frames
    rendered at once (every cell of an interpolation; an orbit renders one and tiles it), a
    frame of the grid a few times over (layout, encoder) and the keyframes' spline, which holds
    the ws of every keyframe 2 * WRAPS + 1 times and more while it is built."""
    from ..rendering.footprint import frame_bytes
    from ..video.keyframes import WRAPS
    cells = args.grid[0] * args.grid[1]
    render = frame_bytes(G, args.nrr, cells if args.interpolate else 1, args.sample_mult)
    frame = 4 * 3 * side * side * cells
    keyframes = 0
    if args.interpolate:
        ws_bytes = G.backbone.mapping.num_ws * G.w_dim * 4
        keyframes = videos[0][1].size * ws_bytes * (2 * WRAPS + 1 + 3)
    return render + frame + keyframes


def check_sizes(G, args, videos, side):
    """Refuse now, in one line, what would not fit: depth samples, an odd H.264 frame, memory."""
    from ..memory import require
    rk = G.rendering_kwargs
    fewest = min(rk['depth_resolution'], rk['depth_resolution_importance'])
    if int(fewest * args.sample_mult) < 1:
        raise VideoError(f'--sample_mult {args.sample_mult:g}: leaves no depth samples of the '
                         f'{fewest} of this network (at least {1 / fewest:g})')
    width, height = side * args.grid[0], side * args.grid[1]
    if args.format == 'mp4' and (width % 2 or height % 2):
        raise VideoError(f'H.264 needs an even frame size, not {width}x{height} '
                         '(change --nrr or --grid, or use --format webp)')
    grid = 'x'.join(map(str, args.grid))
    require(required_memory(G, args, videos, side),
            f'--grid {grid} of {side}px frames, {videos[0][1].size if args.interpolate else 1} '
            f'keyframes', 'use fewer seeds, a smaller --grid or --nrr', args.device or 'cpu')


def video_settings(args):
    """The library's VideoSettings of a parsed command line."""
    from ..video.renderer import VideoSettings
    return VideoSettings(cfg=args.cfg, pose_cond=args.pose_cond, image_mode=args.image_mode,
                         sample_mult=args.sample_mult, nrr=args.nrr, trunc=args.trunc,
                         trunc_cutoff=args.trunc_cutoff, w_frames=args.w_frames)


def run(args):
    import torch

    from ..devices import default_device
    from ..engine import Session
    from ..files import Outputs
    from ..network_path import network_path
    from ..pickles import PickleLoadError, load_generator
    from ..shapes import ShapeExportError
    from ..video.files import write_video
    from ..video.renderer import Renderer
    from ..video.shapes import ShapeWriter
    if args.trunc_cutoff == 0:   # as official: no cutoff means no truncation
        args.trunc = 1.0
    if args.trunc == 1.0:
        args.trunc_cutoff = 14
    videos = plan(args)
    options = None
    if args.shapes and not args.interpolate:
        print('note: --shapes applies to --interpolate True only (as official); no shapes written',
              file=sys.stderr)
    elif args.shapes:
        options = shape_options(args.shape_res)
    names = [f'{name}.{args.format}' for name, _seeds, _frames in videos]
    if options:
        names += ShapeWriter.names(videos[0][1])
    outputs = Outputs(args.outdir, names, args.force)
    outputs.check()
    device = torch.device(args.device or default_device())
    try:
        G = load_generator(network_path(args.network), device=device)
    except PickleLoadError as e:
        raise VideoError(e) from None
    session = Session(G, device, args.precision)
    print(session.describe())
    side = (G.img_resolution if args.image_mode == 'image'
            else args.nrr or G.neural_rendering_resolution)
    check_sizes(G, args, videos, side)
    renderer = Renderer(session, video_settings(args))
    torch.manual_seed(0)   # the ray sampler's jitter is reproducible per run
    with outputs:
        for name, seeds, num_frames in videos:
            shapes = options and ShapeWriter(session, outputs.path, seeds, options)
            frames = (renderer.interpolation(seeds, shapes) if args.interpolate
                      else renderer.orbit(seeds, num_frames, args.grid))
            file = f'{name}.{args.format}'
            try:
                rate = write_video(outputs.path(file), frames, num_frames, args.format, args.fps)
                if shapes:
                    shapes.finish()
            except ShapeExportError as e:
                raise VideoError(e) from None
            except OSError as e:
                raise VideoError(f'{os.path.join(args.outdir, file)}: cannot write '
                                 f'({e.strerror or e})') from None
            print(f'rendered {file} ({num_frames} frames, {rate:.2f} frames/s)')
    print(f"wrote {', '.join(os.path.join(args.outdir, n) for n in names)}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    import torch
    with torch.no_grad():
        return run_command(run, args, VideoError, 'interrupted; no video was kept')


if __name__ == '__main__':
    sys.exit(main())
