"""eg3d-serve: the render server the viewer drives from another machine. No display, no OpenGL.

    python -m eg3d_runtime.serve                  # one client on stdin/stdout (what
                                                  # `visualizer.py --remote user@host` starts)
    python -m eg3d_runtime.serve --listen 7860    # clients over TCP on 127.0.0.1, with a token

Networks, runs and latents are opened only under the served folders: the working folder,
~/training-runs, the checkpoint cache and the bundled demo's folder, plus each --root.
Each TCP client gets its own session (its own renderer and network); a client that goes away
ends its session, and a stdio server ends with its SSH session.
"""
import argparse
import logging
import os
import secrets
import socket
import sys
import threading
from pathlib import Path

from .. import arguments

TOKEN_ENV = 'EG3D_SERVE_TOKEN'
log = logging.getLogger('eg3d.serve')


def listen_address(text):
    """An argparse type: '[HOST:]PORT' -> (host, port); HOST defaults to 127.0.0.1."""
    host, _, port = str(text).rpartition(':')
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise arguments.Refusal(text, 'expected [HOST:]PORT with PORT 0-65535')
    return host or '127.0.0.1', int(port)


def served_folder(text):
    """An argparse type: an existing folder (one the server may open files in)."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise arguments.Refusal(text, 'not a folder' if path.exists() else 'no such folder')
    return path


def cuda_there(options):
    if options.device == 'cuda':
        from ..devices import cuda_available
        if not cuda_available():
            raise arguments.Refusal('cuda', 'no CUDA device here; use --device cpu', '--device')


def build_parser():
    p = arguments.Parser(prog='eg3d-serve', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--listen', metavar='[HOST:]PORT', type=listen_address, default=None,
                   help='serve TCP clients on this port (0: a free one) instead of stdin/stdout; '
                        'HOST defaults to 127.0.0.1')
    p.add_argument('--token', default=None,
                   help=f'the token TCP clients must give (default: ${TOKEN_ENV}, else a random '
                        'one printed at start)')
    p.add_argument('--root', type=served_folder, action='append', default=[],
                   help='another folder whose networks, runs and latents clients may open')
    p.add_argument('--device', choices=['cpu', 'cuda'], default=None,
                   help='render device (default: cuda when available)')
    p.add_check(cuda_there)
    return p


class Server:
    """Makes a ClientSession per connection, each with its own renderer."""

    def __init__(self, device, roots, token=None):
        from ..remote.server import machine_info
        self.device, self.roots, self.token = device, roots, token
        self.info = machine_info(device)

    def session(self, reader, writer, token=None):
        from ..frames.frame_renderer import FrameRenderer
        from ..frames.render_args import RenderArgs
        from ..remote.server import ClientSession
        return ClientSession(reader, writer, lambda: FrameRenderer(self.device), RenderArgs,
                             self.roots, self.info, token=token)

    def serve_stdio(self):
        """One client on this process's stdin/stdout. fd 1 becomes stderr for everything else, so
        a stray print cannot corrupt the stream."""
        reader = os.fdopen(os.dup(0), 'rb')
        writer = os.fdopen(os.dup(1), 'wb')
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.session(reader, writer).run()

    def listen(self, host, port, ready=print):
        with socket.create_server((host, port)) as sock:
            port = sock.getsockname()[1]
            ready(f'eg3d-serve: {self.info["device"]} on {self.info["host"]}, listening on '
                  f'{host}:{port}, serving {self.roots}')
            ready(f'connect with: python visualizer.py --connect {host}:{port} '
                  f'--token {self.token}')
            while True:
                conn, peer = sock.accept()
                threading.Thread(target=self._serve_connection, args=(conn, peer), daemon=True,
                                 name=f'client-{peer[1]}').start()

    def _serve_connection(self, conn, peer):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info('client %s:%s connected', *peer[:2])
        with conn, conn.makefile('rb') as reader, conn.makefile('wb') as writer:
            try:
                self.session(reader, writer, token=self.token).run()
            except Exception:       # one client's failure must not end the server
                log.exception('client %s:%s', *peer[:2])
        log.info('client %s:%s left', *peer[:2])


def main(argv=None):
    options = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s', stream=sys.stderr)
    from ..devices import default_device
    from ..remote.roots import Roots, default_roots
    roots = Roots(default_roots() + options.root)
    device = options.device or default_device()
    if options.listen is None:
        Server(device, roots).serve_stdio()
        return 0
    token = options.token or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
    try:
        Server(device, roots, token).listen(*options.listen,
                                            ready=lambda line: print(line, flush=True))
    except OSError as e:
        print(f'error: --listen {":".join(map(str, options.listen))}: {e.strerror or e}',
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == '__main__':
    sys.exit(main())
