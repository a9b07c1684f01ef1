"""EG3D visualizer: orbit any EG3D (or PanoHead) network pickle in real time.

    python visualizer.py [PKL ...] [--headless --screenshot out.png --frames 30] [--seed 3 ...]
    python visualizer.py --run RUN_DIR      # the Trainer tab on a run, showing its newest snapshot
    python visualizer.py --remote user@gpu-host ~/runs/x/network-snapshot-000400.pkl
                                            # render on a server over ssh (paths are the server's)
    python visualizer.py --connect HOST:PORT --token T   # a server started with eg3d-serve --listen

The first pickle is opened, the others are listed in the Pickle section. Esc closes the window.
A bad option is refused in one `error:` line before the window opens. With --headless,
--screenshot or --frames the exit status is 1, with the reason on stderr in one line, when the
view could not show what was asked (a network that does not load, a frame that fails); the
screenshot is then not written.
"""
import argparse
import logging
import os
import sys

from eg3d_runtime import arguments
from eg3d_runtime.frames.render_args import RENDER_TYPES
from eg3d_runtime.remote.client import TOKEN_ENV, RemoteError
from eg3d_runtime.remote.codec import DEFAULT_JPEG_QUALITY


def build_parser():
    p = arguments.Parser(prog='python visualizer.py', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('pkls', nargs='*',
                   help='network pickles, run directories or released names (checked here, or '
                        'by the server with --remote / --connect)')
    p.add_argument('--headless', action='store_true',
                   help='render offscreen (OSMesa), e.g. on a server; use with --screenshot')
    p.add_argument('--screenshot', type=arguments.output_file('.png'),
                   help='save the whole window to this PNG and exit')
    p.add_argument('--force', action='store_true', help='replace an existing --screenshot')
    p.add_argument('--frames', type=arguments.integer(1), default=None,
                   help='GUI frames to draw before the screenshot / before exiting')
    p.add_argument('--width', type=arguments.window_size, default=1600,
                   help='window width in pixels (default 1600)')
    p.add_argument('--height', type=arguments.window_size, default=900,
                   help='window height in pixels (default 900)')
    p.add_argument('--device', choices=['cpu', 'cuda'], default=None,
                   help='render device (default: cuda when available)')
    p.add_argument('--seed', type=arguments.seed, default=0)
    p.add_argument('--yaw', type=arguments.angle, default=0.0, help='camera yaw in radians')
    p.add_argument('--pitch', type=arguments.angle, default=0.0, help='camera pitch in radians')
    p.add_argument('--fov', type=arguments.fov, default=None, help='field of view in degrees')
    p.add_argument('--psi', type=arguments.psi, default=None, help='truncation psi (default 0.7)')
    p.add_argument('--nrr', type=arguments.nrr, default=None, help='neural rendering resolution')
    p.add_argument('--render-type', choices=list(RENDER_TYPES), default='image',
                   help='image_mask: PanoHead networks only')
    p.add_argument('--pose-cond', type=arguments.number(), default=None, metavar='DEGREES',
                   help="yaw of the conditioning camera as PanoHead's --pose_cond (90 = "
                        'frontal, the default)')
    p.add_argument('--no-background', action='store_true',
                   help="PanoHead: render without its background network")
    p.add_argument('--compare', action='store_true',
                   help='show the given pickles side by side (one pickle: at nrr 64 and 128)')
    p.add_argument('--run', default=None,
                   help='open the Trainer tab on this training run directory and follow its '
                        'latest snapshot in the view')
    p.add_argument('--capture-dir', type=arguments.output_dir, default=None,
                   help='where captures are saved')
    remote = p.add_argument_group('render on another machine (README "Remote GPU")')
    remote.add_argument('--remote', metavar='[USER@]HOST', default=None,
                        help='start eg3d-serve on HOST through ssh and render there; the pickles '
                             'and --run are then the server\'s paths or released names')
    remote.add_argument('--remote-python', default='python3',
                        help='the python on HOST that has this project installed (e.g. '
                             '~/eg3d/.venv/bin/python)')
    remote.add_argument('--remote-dir', default=None,
                        help='the folder on HOST to start the server in (its working folder is '
                             'one of the folders it serves)')
    remote.add_argument('--ssh', default='ssh',
                        help='the ssh command, with any options (e.g. "ssh -p 2222")')
    remote.add_argument('--connect', metavar='HOST:PORT', type=host_port, default=None,
                        help='use a server started with eg3d-serve --listen')
    remote.add_argument('--token', default=os.environ.get(TOKEN_ENV),
                        help=f'the token that server printed (default: ${TOKEN_ENV})')
    remote.add_argument('--jpeg-quality', type=arguments.integer(1, 100),
                        default=DEFAULT_JPEG_QUALITY,
                        help='JPEG quality of the frames a server sends (1-100; captures and '
                             'the difference view are lossless)')
    p.add_check(arguments.replaced_only_with_force('--screenshot'))
    p.add_check(check_remote)
    p.add_check(check_local_paths)
    return p


def host_port(text):
    """An argparse type: HOST:PORT of a listening eg3d-serve."""
    host, _, port = str(text).rpartition(':')
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise arguments.Refusal(text, 'expected HOST:PORT with PORT 1-65535')
    return text


def check_remote(options):
    if options.remote and options.connect:
        raise arguments.Refusal(options.connect, 'not with --remote (ssh starts the server; '
                                '--connect reaches one already listening)', '--connect')
    if (options.remote or options.connect) and options.device:
        raise arguments.Refusal(options.device, 'the server chooses its device (eg3d-serve '
                                '--device)', '--device')


def check_local_paths(options):
    """The pickles and --run name files here, unless a render server opens them (its paths)."""
    if options.remote or options.connect:
        return
    options.pkls = [arguments.network(text) for text in options.pkls]
    if options.run is not None:
        try:
            options.run = arguments.folder(options.run)
        except arguments.Refusal as e:
            raise arguments.Refusal(options.run, e.allowed, '--run') from None


def start_render_worker(options):
    """The render worker, already opening the first network and rendering a frame of it (its
    result dropped) while the GUI modules are imported and the window is made, so that these
    one-time costs overlap instead of adding up. With --remote / --connect: the worker of a
    render server, connected (raises RemoteError with the one line to show)."""
    if options.remote or options.connect:       # a render server: connect (ssh starts it) now
        from viz.remote_worker import RemoteLink, RemoteWorker, connector
        return RemoteWorker(RemoteLink(connector(options)), 'view', options.jpeg_quality)
    from eg3d_runtime.devices import default_device
    from eg3d_runtime.frames.frame_renderer import FrameRenderer
    from eg3d_runtime.frames.render_args import RenderArgs
    from eg3d_runtime.network_path import resolve_network
    from viz.render_worker import RenderWorker
    worker = RenderWorker(FrameRenderer(options.device or default_device()))
    first = resolve_network(options.pkls[0])[0] if options.pkls else None
    if first:
        worker.warm_up([RenderArgs(pkl=first)])
    return worker


def main(argv=None):
    options = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s')
    from gui_utils import platform
    problem = platform.display_problem(options.headless)
    if problem:
        print(f'error: {problem}', file=sys.stderr)
        return 1
    platform.configure(options.headless)
    try:
        worker = start_render_worker(options)
    except RemoteError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    from gui_utils.window import WindowError
    from viz.app import Visualizer
    bounded = options.headless or options.screenshot or options.frames is not None
    frames = options.frames if options.frames is not None else (1 if options.screenshot else None)
    try:
        viz = Visualizer(options, worker)
    except WindowError as e:
        worker.close()
        print(f'error: {e}', file=sys.stderr)
        return 1
    failure = viz.run(frames=frames, screenshot=options.screenshot)
    if failure and bounded:     # scripted: the exit status says whether the view was made
        print(f'error: {" ".join(failure.split())}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
