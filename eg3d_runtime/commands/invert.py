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
import sys
import time

from .. import arguments, progress
from .ending import run_command

MAX_STEPS = 1_000_000
MAX_VIDEO_FRAMES = 100_000


class StepProgress:
    """The inversion's steps as one bar per stage (w, then tuning) with the loss
    (eg3d_runtime.progress)."""

    def __init__(self):
        self.stage = self.bar = None

    def __call__(self, step):
        if step.stage != self.stage:
            self.close()
            self.stage, self.bar = step.stage, progress.bar(step.stage, step.total, unit='step')
        self.bar.set_postfix_str(f'loss {step.loss:.4f}', refresh=False)
        progress.advance(self.bar, step.step)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def build_parser():
    p = arguments.Parser(prog='python -m eg3d_runtime.invert', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.network_option(p, required=True)
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
    arguments.precision_option(p)
    p.add_check(_camera_or_estimate)
    return p


def _camera_or_estimate(args):
    if args.camera and args.estimate_camera:
        raise arguments.Refusal(args.camera, 'give either --camera or --estimate-camera, not '
                                'both', '--camera')


def target_camera(args):
    """c [1, 25] from --camera or the dataset.json beside the target, or None to estimate."""
    from ..inversion.targets import InversionError, dataset_camera, load_camera
    if args.camera:
        return load_camera(args.camera)
    if args.estimate_camera:
        return None
    camera = dataset_camera(args.target)
    if camera is None:
        raise InversionError(f'{args.target}: no camera (give --camera CAM, put the picture '
                             'in a dataset.json, or use --estimate-camera)')
    return camera


def run(args):
    import torch

    from ..devices import default_device
    from ..engine import Session
    from ..files import Outputs
    from ..inversion.invert import Settings, invert, load_inputs
    from ..inversion.losses import LpipsDistance
    from ..inversion.losses import describe as describe_loss
    from ..inversion.outputs import output_names, write_outputs
    from ..inversion.targets import InversionError
    from ..network_path import network_path
    from ..pickles import PickleLoadError
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
    steps = StepProgress()
    try:
        result = invert(G, target, camera, settings, on_step=steps)
    finally:
        steps.close()
    session = Session(result.G, device, args.precision)
    print(f'inverted in {time.perf_counter() - start:.0f} s; ' + session.describe())
    for written in write_outputs(args.outdir, networks, result, args.video_frames,
                                 force=args.force, session=session):
        print(f'wrote {written}')


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..inversion.targets import InversionError
    return run_command(run, args, InversionError,
                       'interrupted; nothing was written')


if __name__ == '__main__':
    sys.exit(main())
