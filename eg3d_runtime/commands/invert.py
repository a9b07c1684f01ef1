"""Invert a photo: find the latent of a picture in an EG3D network, pivotal-tune a copy of the
network around it, and write what the viewer and the other tools open.

    python -m eg3d_runtime.invert --network PKL --target IMG --camera CAM --outdir DIR
    python -m eg3d_runtime.invert --network PKL --target IMG --estimate-camera --outdir DIR

CAM: the 25 numbers of the dataset.json label convention (cam2world 4x4, then the normalised
intrinsics 3x3) as a .json list or a .npy array; without --camera, the picture's label in a
dataset.json beside it is used. Other picture sizes are centre-cropped and resized.

Writes DIR/inverted.pkl (the tuned generator, official pickle format), DIR/w.npy (float32
[1, num_ws, w_dim], the pivot to feed G.synthesis), DIR/camera.json (the camera used or
estimated), DIR/proj.png (the reconstruction at that camera) and DIR/orbit.mp4, all of them or
none; an earlier inversion in DIR is replaced only with --force. Loss without --lpips-weights:
pixel L2 + multi-scale SSIM.
"""
import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from . import arguments, views
from .command import run_command
from .devices import default_device
from .engine import RenderSettings, Session
from .fast import precision
from .files import Outputs
from .gen_videos import Renderer, write_video
from .gen_videos import build_parser as video_parser
from .inversion.losses import LpipsDistance, ReconstructionLoss
from .inversion.losses import describe as describe_loss
from .inversion.optimise import SYNTHESIS, latent_stats, project, tune
from .inversion.targets import InversionError, dataset_camera, load_camera, load_image
from .network_path import network_path
from .pickles import PickleLoadError, load_network_pkl, open_generator, save_network_pkl

MAX_STEPS = 1_000_000
MAX_VIDEO_FRAMES = 100_000


@dataclass
class Settings:
    w_plus: bool = False
    num_steps: int = 300
    pti_steps: int = 100
    seed: int = 0
    lpips: LpipsDistance | None = None    # loaded weights; None: pixel L2 + MS-SSIM


@dataclass
class Inversion:
    G: torch.nn.Module       # the tuned copy
    ws: torch.Tensor         # [1, num_ws, w_dim], the pivot
    c: torch.Tensor          # [1, 25], the camera given or estimated


def invert(G, target, camera, settings, on_step=None):
    """Latent then pivotal tuning for `target` [1, 3, R, R] in [-1, 1] seen from `camera`
    (c [1, 25], or None to estimate it). `on_step(Step)` sees every step; raising from it
    stops the inversion."""
    device = G.backbone.mapping.w_avg.device
    loss = ReconstructionLoss(target.to(device), settings.lpips)
    stats = latent_stats(G, settings.seed)
    ws, c = project(G, loss, None if camera is None else camera.to(device), settings.num_steps,
                    settings.w_plus, settings.seed, on_step=on_step, stats=stats)
    tuned = tune(G, ws, c, loss, settings.pti_steps, seed=settings.seed, on_step=on_step,
                 stats=stats) if settings.pti_steps else G
    return Inversion(tuned, ws, c)


def load_inputs(path, picture, device, warn=None):
    """(networks, target [1, 3, R, R]) for inverting `picture` in the network pickle at
    `path`; a network without D cannot be written back as a snapshot. G_ema is the process's
    one copy of that network (pickles.open_generator: the viewer's, when it shows it); the
    inversion only reads it (the tuning changes a copy). `warn(text)` hears of a picture smaller
    than the network's, which is upscaled."""
    try:
        G = open_generator(path, device)
        networks = load_network_pkl(path, device=device, keys=('D', 'augment_pipe'))
    except PickleLoadError as e:
        raise InversionError(e) from None
    if networks.get('D') is None:
        raise InversionError(f'{path}: has no discriminator D to write an official snapshot')
    return {**networks, 'G_ema': G}, load_image(picture, G.img_resolution, warn)


@torch.no_grad()
def reconstruction(session, ws, c):
    """The picture of the pivot at camera c, rendered by an engine session of the tuned
    network, as H x W x 3 uint8 (what proj.png holds)."""
    frame = session.frame(ws, c, RenderSettings(**SYNTHESIS))
    return views.image_to_uint8(frame.image).cpu().numpy()


def output_names(video_frames=0):
    """The files an inversion writes."""
    return ['w.npy', 'camera.json', 'proj.png', 'inverted.pkl'] + \
        (['orbit.mp4'] if video_frames > 0 else [])


def write_outputs(outdir, networks, result, video_frames=0, video_fps=30, force=False,
                  session=None):
    """Write DIR/w.npy, camera.json, proj.png, inverted.pkl (the tuned G as both G and G_ema,
    beside the original's D) and, for video_frames > 0, orbit.mp4, all of them or none
    (files.Outputs): an earlier inversion in DIR is replaced, whole, only with `force`, else
    OutputExists. A pivot that is not finite (the optimisation diverged) writes nothing.
    `session`: the engine session of result.G to render with (default: a new one, 'auto'
    precision). Returns the paths written."""
    if not torch.isfinite(result.ws).all():
        raise InversionError('the inversion diverged (its latent is not finite); nothing was '
                             'written')
    session = session or Session(result.G)
    outputs = Outputs(outdir, output_names(video_frames), force)
    with outputs:
        np.save(outputs.path('w.npy'), result.ws.detach().cpu().numpy().astype(np.float32))
        outputs.path('camera.json').write_text(json.dumps(result.c[0].tolist()) + '\n')
        Image.fromarray(reconstruction(session, result.ws, result.c), 'RGB').save(
            outputs.path('proj.png'))
        pkl = outputs.path('inverted.pkl')
        save_network_pkl(pkl, {
            'training_set_kwargs': networks.get('training_set_kwargs'), 'G': result.G,
            'D': networks.get('D'), 'G_ema': result.G,
            'augment_pipe': networks.get('augment_pipe')})
        if video_frames > 0:
            args = video_parser().parse_args(['--network', str(pkl), '--seeds', '0',
                                              '--outdir', outdir])   # gen_videos' defaults
            with torch.no_grad():
                frames = Renderer(session, args).orbit_ws(result.ws, video_frames)
                write_video(outputs.path('orbit.mp4'), frames, video_frames, 'mp4', video_fps)
    return [os.path.join(outdir, name) for name in outputs.names]


class ProgressLine:
    """`stage: step i/n, loss x` rewritten in place on stderr, at most 10 times a second."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.stage, self.last = None, 0.0

    def __call__(self, step):
        now = time.monotonic()
        if step.stage != self.stage and self.stage is not None:
            self.stream.write('\n')
        if step.stage == self.stage and now - self.last < 0.1 and step.step != step.total:
            return
        self.stage, self.last = step.stage, now
        self.stream.write(f'\r{step.stage}: step {step.step}/{step.total}, loss {step.loss:.4f}')
        self.stream.flush()

    def close(self):
        if self.stage is not None:
            self.stream.write('\n')
            self.stream.flush()


def build_parser():
    p = arguments.Parser(prog='python -m eg3d_runtime.invert', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--network', required=True, type=arguments.network,
                   help='network pickle, run directory (its latest snapshot) or released name')
    p.add_argument('--target', required=True, type=arguments.input_file,
                   help='the picture to invert')
    p.add_argument('--camera', default=None, type=arguments.input_file,
                   help="the picture's camera: 25 numbers in a .json list or a .npy array")
    p.add_argument('--estimate-camera', action='store_true',
                   help='no camera: fit yaw, pitch and focal length, starting frontal')
    p.add_argument('--outdir', required=True, type=arguments.output_dir,
                   help='output directory')
    p.add_argument('--force', action='store_true', help='replace an earlier inversion in it')
    p.add_argument('--w-space', choices=['w', 'w+'], default='w',
                   help='one w for all layers, or one per layer (default w)')
    p.add_argument('--num-steps', type=arguments.integer(0, MAX_STEPS), default=300,
                   help='latent steps (default 300)')
    p.add_argument('--pti-steps', type=arguments.integer(0, MAX_STEPS), default=100,
                   help='pivotal tuning steps (default 100; 0: no tuning)')
    p.add_argument('--seed', type=arguments.seed, default=0, help='random seed (default 0)')
    p.add_argument('--lpips-weights', default=None, type=arguments.input_file,
                   help='TorchScript LPIPS network (StyleGAN2-ADA vgg16.pt) for a perceptual loss')
    p.add_argument('--video-frames', type=arguments.integer(0, MAX_VIDEO_FRAMES), default=120,
                   help='frames of DIR/orbit.mp4 (default 120; 0: no video)')
    p.add_argument('--device', type=arguments.device, default=None,
                   help='cpu or cuda (default: cuda when available)')
    precision.add_option(p)
    p.add_check(_camera_or_estimate)
    return p


def _camera_or_estimate(args):
    if args.camera and args.estimate_camera:
        raise arguments.Refusal(args.camera, 'give either --camera or --estimate-camera, not '
                                'both', '--camera')


def target_camera(args):
    """c [1, 25] from --camera or the dataset.json beside the target, or None to estimate."""
    if args.camera:
        return load_camera(args.camera)
    if args.estimate_camera:
        return None
    camera = dataset_camera(args.target)
    if camera is None:
        raise InversionError(f'{args.target}: no camera (give --camera CAM, put the picture '
                             'in a dataset.json, or use --estimate-camera)')
    return camera


def make_outdir(outdir):
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise InversionError(
            f'{outdir}: cannot create the output directory ({e.strerror})') from None
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise InversionError(f'{outdir}: the output directory is not writable')


def run(args):
    Outputs(args.outdir, output_names(args.video_frames), args.force).check()
    device = torch.device(args.device or default_device())
    try:
        path = network_path(args.network)
    except PickleLoadError as e:
        raise InversionError(e) from None
    networks, target = load_inputs(path, args.target, device,
                                   warn=lambda text: print(f'warning: {text}', file=sys.stderr))
    G = networks['G_ema']
    camera = target_camera(args)
    # loaded before any long work, so a bad file fails now
    lpips = LpipsDistance(args.lpips_weights, device) if args.lpips_weights else None
    settings = Settings(args.w_space == 'w+', args.num_steps, args.pti_steps, args.seed, lpips)
    print(describe_loss(args.lpips_weights))
    start = time.perf_counter()
    progress = ProgressLine()
    try:
        result = invert(G, target, camera, settings, on_step=progress)
    finally:
        progress.close()
    session = Session(result.G, device, args.precision)
    print(f'inverted in {time.perf_counter() - start:.0f} s; ' + session.describe())
    for written in write_outputs(args.outdir, networks, result, args.video_frames,
                                 force=args.force, session=session):
        print(f'wrote {written}')


def main(argv=None):
    return run_command(run, build_parser().parse_args(argv), InversionError,
                       'interrupted; nothing was written')


if __name__ == '__main__':
    sys.exit(main())
