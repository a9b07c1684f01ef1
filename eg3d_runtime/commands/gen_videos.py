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
import math
import os
import sys
import time

import numpy as np
import torch

from . import arguments, cameras, views
from .command import run_command
from .devices import default_device
from .engine import RenderSettings, Session
from .files import Outputs, atomic_open
from .fast import precision
from .network_path import network_path
from .memory import require
from .pickles import PickleLoadError, load_generator
from .rendering.footprint import frame_bytes
from .shapes import (BORDER_VALUE, MIN_RESOLUTION, DensityField, ShapeExportError, ShapeOptions,
                     TriplaneField, check_memory, export_field)
from .video_files import FORMATS, video_file

# The official focal lengths per --cfg; views.camera takes the FOV that gives them.
FOCALS = {'FFHQ': 4.2647, 'AFHQ': 4.2647, 'Shapenet': 1.7074, 'Head': 4.2647}
HEAD_PIVOT = (0, 0, 0)      # PanoHead's --cfg Head looks at the origin
WRAPS = 2   # keyframe copies on each side of the spline, as official
MAX_SAMPLE_MULT = 16
# The official orbit is centred on (3.14/2, 3.14/2), views.camera's on (pi/2, pi/2).
OFFSET = 3.14 / 2 - math.pi / 2


class VideoError(Exception):
    """A problem the user can fix, reported as one line."""


def fov_for_focal(focal):
    """The FOV in the official convention (cameras.fov_to_intrinsics) whose focal is `focal`."""
    return math.atan(1 / (focal * 1.414)) * 360 / 3.14159


def orbit_angles(frame, num_frames, cfg='FFHQ'):
    """(yaw, pitch) for views.camera at `frame` of `num_frames`: the official path, yaw
    0.35 sin and pitch -0.05 + 0.25 cos of 2*3.14*frame/num_frames; PanoHead's --cfg Head
    turns all the way round, yaw 2*3.14*frame/num_frames, pitch -0.05 + 0.5 sin."""
    t = 2 * 3.14 * frame / num_frames
    if cfg == 'Head':
        return OFFSET + t, OFFSET - 0.05 + 0.5 * math.sin(t)
    return OFFSET + 0.35 * math.sin(t), OFFSET - 0.05 + 0.25 * math.cos(t)


def keyframe_seeds(seeds, grid, num_keyframes=None, shuffle_seed=None):
    """Seeds [grid_h, grid_w, num_keyframes] laid out as official: the list repeated to fill,
    optionally shuffled, cell-major (each cell's keyframes consecutive)."""
    grid_w, grid_h = grid
    if num_keyframes is None:
        if len(seeds) % (grid_w * grid_h):
            raise VideoError(f'the number of seeds ({len(seeds)}) must be divisible by grid W*H '
                             f'({grid_w * grid_h})')
        num_keyframes = len(seeds) // (grid_w * grid_h)
    if num_keyframes < 1:
        raise VideoError('--num-keyframes must be at least 1')
    all_seeds = np.array([seeds[i % len(seeds)] for i in range(num_keyframes * grid_h * grid_w)],
                         dtype=np.int64)
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(all_seeds)
    return all_seeds.reshape(grid_h, grid_w, num_keyframes)


def interpolator(keyframe_ws):
    """keyframe_ws [K, ...] -> f(t) giving ws at keyframe position t (float32), a cubic spline
    through the keyframes repeated WRAPS times on both sides, so the loop closes smoothly."""
    k = len(keyframe_ws)
    x = np.arange(-k * WRAPS, k * (WRAPS + 1))
    y = np.tile(keyframe_ws, [2 * WRAPS + 1] + [1] * (keyframe_ws.ndim - 1))
    # imported here: the viewer imports this module (orbit capture), and scipy.interpolate was
    # a third of its start-up imports (2.4 of 7 s measured on 2 busy cores)
    import scipy.interpolate
    spline = scipy.interpolate.interp1d(x, y, kind='cubic', axis=0)
    return lambda t: spline(t).astype(np.float32)


def to_frame(frame, image_mode, count):
    """The first `count` pictures of an engine Frame -> [count, H, W, 3] uint8, depth as grey
    with near bright (the official -depth normalised per picture)."""
    if image_mode == 'image_depth':
        return torch.stack([views.depth_to_uint8(frame.image_depth, i) for i in range(count)]
                           ).unsqueeze(-1).expand(-1, -1, -1, 3)
    return torch.stack([views.image_to_uint8(getattr(frame, image_mode), i)
                        for i in range(count)])


def layout(pictures, grid):
    """[grid_h*grid_w, H, W, 3] in row-major cell order -> one numpy frame of the grid."""
    grid_w, grid_h = grid
    _, h, w, _ = pictures.shape
    return pictures.reshape(grid_h, grid_w, h, w, 3).permute(0, 2, 1, 3, 4).reshape(
        grid_h * h, grid_w * w, 3).cpu().numpy()


class Renderer:
    """The options a video is rendered with, applied to one engine session."""

    def __init__(self, session, args):
        self.session = session
        self.G = session.G
        self.args = args
        self.fov = fov_for_focal(FOCALS[args.cfg])
        self.pivot = HEAD_PIVOT if args.cfg == 'Head' else None      # else the network's
        self.cond_yaw = cameras.pose_cond_yaw(args.pose_cond)
        rk = self.G.rendering_kwargs
        self.settings = RenderSettings(
            nrr=args.nrr, noise_mode='const',
            depth_resolution=int(rk['depth_resolution'] * args.sample_mult),
            depth_resolution_importance=int(rk['depth_resolution_importance'] * args.sample_mult))

    def camera(self, frame, num_frames, count):
        yaw, pitch = orbit_angles(frame, num_frames, self.args.cfg)
        return views.camera(self.G, yaw, pitch, self.fov, self.pivot).repeat(count, 1)

    def frame(self, ws, c, planes=None):
        return self.session.frame(ws, c, self.settings, planes)

    def ws(self, seed):
        return views.seed_ws(self.G, int(seed), self.args.trunc, self.args.trunc_cutoff, self.fov,
                             self.cond_yaw)

    def interpolation(self, layout_seeds, shapes=None):
        """Frames of the keyframe interpolation: every frame new ws, so new tri-planes.
        `shapes(frame, ws, c)` is called with the last cell's ws and camera."""
        grid_h, grid_w, num_keyframes = layout_seeds.shape
        cells = grid_h * grid_w
        cache = {}
        keyframes = np.stack([np.stack([cache.setdefault(s, self.ws(s))[0].cpu().numpy()
                                        for s in row]) for row in layout_seeds.reshape(cells, -1)],
                             axis=1)                          # [K, cells, num_ws, w_dim]
        ws_at = interpolator(keyframes)
        device = self.G.backbone.mapping.w_avg.device
        n = num_keyframes * self.args.w_frames
        for i in range(n):
            ws = torch.from_numpy(ws_at(i / self.args.w_frames)).to(device)
            c = self.camera(i, n, cells)
            frame = self.frame(ws, c)
            if shapes:
                shapes(i, ws[-1:], c[-1:])
            yield layout(to_frame(frame, self.args.image_mode, cells), (grid_w, grid_h))

    def orbit(self, seed, num_frames, grid):
        """Frames of one seed's orbit. Every cell of a grid shows the same picture (as
        official), so it is rendered once and tiled."""
        return self.orbit_ws(self.ws(seed), num_frames, grid)

    def orbit_ws(self, ws, num_frames, grid=(1, 1)):
        """Frames of the orbit of one latent (also an inverted photo's pivot): one w, so the
        tri-planes are computed once."""
        planes = self.session.planes(ws, self.settings.noise_mode)
        for i in range(num_frames):
            frame = self.frame(ws, self.camera(i, num_frames, 1), planes)
            picture = to_frame(frame, self.args.image_mode, 1)[0]
            yield picture.repeat(grid[1], grid[0], 1).cpu().numpy()


class _VideoTrim(DensityField):
    """A field whose grid clears int(38 N/256) voxels at the top of the y axis, where the
    official gen_videos clears more than the int(30 N/256) of every other face (6.2)."""

    def __init__(self, field, resolution):
        self.field, self.box_warp, self.device = field, field.box_warp, field.device
        self.top = resolution - int(38 * resolution / 256)

    def grid_sigma(self, axis):
        sampler = self.field.grid_sigma(axis)

        def trimmed(I, J, K):
            return sampler(I, J, K).masked_fill((J >= self.top)[:, None, :, None], BORDER_VALUE)
        return trimmed


def shape_options(resolution):
    """The --shapes export options, checked (resolution, memory) before the network loads."""
    options = ShapeOptions(resolution=resolution, format='ply', voxel_units=True)
    try:
        options.check()
        check_memory(options)
    except (ValueError, ShapeExportError) as e:
        raise VideoError(f'--shape-res: {e}') from None
    return options


class ShapeWriter:
    """--shapes: each frame's shape as the official voxel-unit PLY at level 10, and at the end
    the camera poses. The official writes every grid cell to the same file name, so the last
    cell's shape is what it keeps; only that one is computed here. The cleared border is -1000
    (the official's is 0 here), which moves the vertices on the cut faces by under a voxel.
    Files go where `place(name)` says (files.Outputs.path)."""

    def __init__(self, session, place, layout_seeds, options):
        self.session, self.place, self.options = session, place, options
        self.cells = layout_seeds.shape[0] * layout_seeds.shape[1]
        self.dir, self.trajectory = self.names(layout_seeds)
        self.poses = []

    @staticmethod
    def names(layout_seeds):
        """The folder of the shapes and the file of the poses."""
        first = layout_seeds.reshape(-1)[:2]
        return 'interpolation_' + '_'.join(map(str, first)), 'interpolation_trajectory.npy'

    def __call__(self, frame, ws, c):
        self.poses += [c[0, :16].reshape(4, 4).cpu().numpy()] * self.cells
        field = _VideoTrim(TriplaneField(self.session, ws), self.options.resolution)
        export_field(field, self.place(f'{self.dir}/{frame:04d}_shape.ply'), self.options)

    def finish(self):
        """Write the poses of every frame and cell, [frames * cells, 4, 4], as official."""
        with atomic_open(self.place(self.trajectory), 'wb') as f:
            np.save(f, np.stack(self.poses))


def write_video(path, frames, num_frames, fmt, fps):
    """Write the frames to `path`, with a progress line on stderr; returns the frame rate."""
    start = time.perf_counter()
    rate = 0.0
    with video_file(path, fmt, fps) as write:
        for done, frame in enumerate(frames, 1):
            write(frame)
            rate = done / (time.perf_counter() - start)
            print(f'\r{os.path.basename(path)}: frame {done}/{num_frames}, {rate:.2f} frames/s',
                  end='', file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rate


def build_parser():
    p = arguments.Parser(prog='python -m eg3d_runtime.gen_videos', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--network', required=True, type=arguments.network,
                   help='network pickle, run directory (its latest snapshot) or released name')
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
    precision.add_option(p)
    return p


def plan(args):
    """[(file name, seed layout or seed, frame count)] for the videos to write."""
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


def run(args):
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
    renderer = Renderer(session, args)
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


@torch.no_grad()
def main(argv=None):
    return run_command(run, build_parser().parse_args(argv), VideoError,
                       'interrupted; no video was kept')


if __name__ == '__main__':
    sys.exit(main())
