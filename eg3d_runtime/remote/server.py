"""One client's session on the render server: it reads requests, renders only the newest (a
newer request abandons a full-quality frame in progress, as the viewer's RenderWorker does)
and encodes frame N on its own thread while frame N+1 renders.

The renderer is injected (`FrameSource`): the server speaks to the same frame renderer and
engine as the local viewer. Threads: the reader (this one, also answers pings and listings at
once), the renderer and the encoder; the session ends when the client goes."""
import hmac
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import checkpoints
from eg3d_runtime.network_path import locate_network
from eg3d_runtime.pickles import PickleLoadError
from eg3d_runtime.run_directory import latest_snapshot

from . import codec, values
from .protocol import VERSION, ConnectionClosed, MessageWriter, ProtocolError, read_message
from .jobs import Jobs
from .roots import PathRefused
from .runs import RunService

log = logging.getLogger('eg3d.serve')
PATH_FIELDS = ('pkl', 'ws_file')       # RenderArgs fields that name files on the server
LIST_SUFFIXES = ('.pkl', '.npy')
MAX_LISTING = 5000
MAX_PANELS = 4                         # compare panels in one request
CHANNELS = ('view', 'panels')          # independent request streams, each newest-wins


class FrameSource(Protocol):
    """What the server needs of a renderer (the viewer's FrameRenderer): a result with
    `host_image` (uint8 [H, W, 3] numpy or None), error, message, load_failed, aborted,
    timings, network, nrr, samples, backbone_reused, precision, layers."""
    def render(self, args, should_abort: Callable[[], bool],
               on_progress: Callable[[float], None]): ...


def machine_info(device):
    """What the viewer shows of the machine that renders."""
    import torch
    gpu = None
    if str(device).startswith('cuda'):
        try:
            gpu = torch.cuda.get_device_name(torch.device(device))
        except Exception:  # detection never raises
            gpu = None
    return {'host': socket.gethostname(), 'device': str(device), 'gpu': gpu}


@dataclass(frozen=True)
class _Request:
    """One render request: a single frame (panel None) or the compare panels, rendered in
    order (panel index, args); an abandoned panel abandons them all."""
    id: int
    channel: str
    items: tuple
    encoding: str
    quality: int

    @property
    def preview(self):
        return any(args.preview for _, args in self.items)


@dataclass(frozen=True)
class _Refused:
    """A frame that could not start (a path outside the roots, a download that failed): it has
    what _send_frame reads of a result."""
    error: str
    quality: str
    host_image: None = None
    message: None = None
    load_failed: bool = True
    timings: tuple = ()
    network: None = None
    nrr: None = None
    samples: None = None
    backbone_reused: bool = False
    precision: None = None
    layers: tuple = ()


class ClientSession:
    """Serves one client until it goes away; `run()` blocks. `token`: required in the hello
    (TCP); None for stdio, where SSH authenticated the user."""

    def __init__(self, reader, writer, new_renderer: Callable[[], FrameSource], args_type, roots,
                 info, token=None):
        self._reader = reader
        self._out = MessageWriter(writer)
        self._new_renderer = new_renderer
        self._renderers = {}                  # network -> its renderer
        self._in_use = {channel: set() for channel in CHANNELS}
        self._args_type = args_type
        self.roots = roots
        self.info = info
        self._token = token
        self._lock = threading.Condition()
        # Per channel ('view', 'panels': the viewer's main view and its compare panels), in
        # arrival order: the newest request not yet rendered, the newest frames not yet sent.
        self._pending = {}
        self._current = None
        self._to_encode = {}
        self._encoding = False                # the encoder is sending frames
        self._last_full = None               # (id, host image, result): newest full view frame
        self._jobs = Jobs(self._send, roots, info.get('device', 'cpu'), self._newest_frame,
                          self._locate)          # mesh exports, inversions
        self._runs = RunService(roots)        # the Trainer tab's run directories and trainers
        self._runs_lock = threading.Lock()
        self._stop = False
        self._status_sent = 0.0

    # ---- the reader ---------------------------------------------------------------------------
    def run(self):
        try:
            if not self._handshake():
                return
            threads = [threading.Thread(target=target, daemon=True, name=name)
                       for target, name in ((self._render_loop, 'serve-render'),
                                            (self._encode_loop, 'serve-encode'))]
            for thread in threads:
                thread.start()
            try:
                self._read_loop()
            finally:
                with self._lock:
                    self._stop = True
                    self._lock.notify_all()
                self._jobs.cancel_all()          # the client went: stop its jobs
                for thread in threads:
                    thread.join(timeout=30)
        finally:
            self._out.close()

    def _handshake(self):
        try:
            hello = read_message(self._reader)
            if hello.type != 'hello':
                raise ProtocolError(f'expected hello, got {hello.type!r}')
            version = hello.get('version', int)
            token = hello.get('token', str, '')
        except ConnectionClosed:
            return False
        except ProtocolError as e:
            self._refuse(str(e))
            return False
        if version != VERSION:
            self._refuse(f'the viewer speaks protocol {version}, this server {VERSION}; '
                         f'update both to the same release')
            return False
        if self._token is not None and not hmac.compare_digest(token.encode(),
                                                               self._token.encode()):
            log.warning('refused a client with a wrong token')
            self._refuse('wrong token: pass the token eg3d-serve printed at start '
                         '(--token or EG3D_SERVE_TOKEN)')
            return False
        self._out.send('welcome', version=VERSION, cwd=os.getcwd(),
                       roots=[str(r) for r in self.roots.folders], **self.info)
        return True

    def _refuse(self, text):
        try:
            self._out.send('error', message=text, fatal=True)
        except ConnectionClosed:
            pass

    def _read_loop(self):
        while True:
            try:
                message = read_message(self._reader)
            except ConnectionClosed:
                return
            except ProtocolError as e:
                log.warning('closing a connection: %s', e)
                self._refuse(str(e))
                return
            try:
                self._handle(message)
            except ProtocolError as e:
                self._send('error', message=str(e), id=message.fields.get('id')
                           if isinstance(message.fields.get('id'), int) else None)
            if self._out.closed:
                return

    def _handle(self, message):
        kind = message.type
        if kind == 'render':
            encoding = message.get('encoding', str, 'jpeg')
            if encoding not in codec.ENCODINGS:
                raise ProtocolError(f'render: encoding {encoding!r}; one of {codec.ENCODINGS}')
            quality = message.get('quality', int, codec.DEFAULT_JPEG_QUALITY)
            if not 1 <= quality <= 100:
                raise ProtocolError(f'render: quality {quality}; 1 to 100')
            batch = message.get('batch', list, [])
            if batch:           # compare panels: [[panel index, args], ...]
                if len(batch) > MAX_PANELS or not all(
                        isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
                        and not isinstance(item[0], bool) for item in batch):
                    raise ProtocolError(f'render: batch must be up to {MAX_PANELS} '
                                        f'[panel, args] pairs')
                items = tuple((idx, values.from_json(self._args_type, args, f'panel {idx}'))
                              for idx, args in batch)
            else:
                items = ((None, values.from_json(self._args_type, message.get('args', dict))),)
            channel = message.get('channel', str, 'view')
            if channel not in CHANNELS:
                raise ProtocolError(f'render: channel {channel!r}; one of {CHANNELS}')
            request = _Request(message.get('id', int), channel, items, encoding, quality)
            with self._lock:
                self._pending.pop(channel, None)
                self._pending[channel] = request
                self._lock.notify_all()
        elif kind == 'ping':
            self._send('pong', t=message.get('t', float, 0.0))
        elif kind == 'list':
            self._send('listing', id=message.get('id', int, 0),
                       **self._listing(message.get('path', str)))
        elif kind in ('run_state', 'train'):         # disk work: off the reader thread
            message.get('id', int)
            threading.Thread(target=self._run_request, args=(message,), daemon=True,
                             name=kind).start()
        elif kind == 'mesh':
            self._jobs.start_mesh(message)
        elif kind == 'invert':
            self._jobs.start_invert(message)
        elif kind == 'cancel':
            self._jobs.cancel(message.get('job', int))
        elif kind == 'refetch':
            self._refetch(message.get('id', int, 0), message.get('frame', int),
                          message.get('encoding', str, 'png'))
        else:
            raise ProtocolError(f'unknown message type {kind!r}')

    def _send(self, type_, blob=b'', **fields):
        try:
            self._out.send(type_, blob, **fields)
        except ConnectionClosed:
            with self._lock:
                self._stop = True
                self._lock.notify_all()

    def _listing(self, text):
        """A server folder for the viewer's file browser (only under the roots)."""
        try:
            folder = self.roots.resolve(text)
            entries = sorted((e for e in folder.iterdir() if not e.name.startswith('.')),
                             key=lambda e: e.name)[:MAX_LISTING]
            return {'path': str(folder),
                    'folders': [e.name for e in entries if e.is_dir()],
                    'files': [e.name for e in entries
                              if e.is_file() and e.suffix.lower() in LIST_SUFFIXES],
                    'is_run': latest_snapshot(folder) is not None}
        except PathRefused as e:
            return {'path': text, 'error': str(e)}
        except OSError as e:
            return {'path': text, 'error': f'cannot list: {e.strerror or e}'}

    def _refetch(self, id_, frame, encoding):
        """The newest full-quality view frame again, in another encoding (a capture's PNG)."""
        if encoding not in codec.ENCODINGS:
            raise ProtocolError(f'refetch: encoding {encoding!r}; one of {codec.ENCODINGS}')
        with self._lock:
            last = self._last_full
        if last is None or last[0] != frame:
            self._send('error', id=id_, message='that frame is no longer on the server; '
                                                'wait for the next one')
            return
        self._send('frame', codec.encode_image(last[1], encoding), id=id_, frame=frame,
                   encoding=encoding, quality='full')

    def _newest_frame(self):
        with self._lock:
            return self._last_full

    # ---- the Trainer tab -----------------------------------------------------------------------
    def _run_request(self, message):
        id_ = message.fields['id']
        try:
            with self._runs_lock:
                if message.type == 'run_state':
                    fields, blob = self._runs.state(
                        message.get('run_dir', str), message.get('fakes', str, ''),
                        message.fields.get('have_series'), message.fields.get('have_grid'))
                else:
                    fields, blob = self._runs.act(message.get('action', str),
                                                  message.fields), b''
        except (PathRefused, ProtocolError, ValueError, OSError) as e:
            fields, blob = {'error': str(e).splitlines()[0] if str(e) else repr(e)}, b''
        except Exception as e:  # the session goes on
            log.exception('%s', message.type)
            fields, blob = {'error': f'{message.type} failed: {type(e).__name__}: {e}'}, b''
        self._send(message.type, blob, **{**fields, 'id': id_})

    # ---- rendering ----------------------------------------------------------------------------
    def _should_abort(self):
        current = self._current
        return self._stop or (current is not None and current.channel in self._pending
                              and not current.preview)

    def _on_progress(self, text):
        now = time.monotonic()
        if now - self._status_sent > 0.1:
            self._status_sent = now
            self._send('status', text=text)

    def _next(self, queue):
        """The entry of the oldest channel in `queue` (a dict by channel, in arrival order),
        waited for under the held lock; None once the session stops."""
        while not queue and not self._stop:
            self._lock.wait()
        return None if self._stop else queue.pop(next(iter(queue)))

    def _render_loop(self):
        while True:
            with self._lock:
                request = self._next(self._pending)
                if request is None:
                    return
                self._current = request
            frames = self._render(request)
            with self._lock:
                self._current = None
                if frames is None:
                    continue
                # Nothing else to render: send it from here, one thread hop less. Otherwise
                # the encoder sends it while the next request renders.
                direct = not self._pending and not self._to_encode and not self._encoding
                if not direct:
                    self._to_encode.pop(request.channel, None)
                    self._to_encode[request.channel] = (request, frames)     # newest wins
                    self._lock.notify_all()
            if direct:
                self._send_frames(request, frames)

    def _render(self, request):
        """[(panel, args, result, milliseconds of the render call)] of a request, or None when a
        newer one abandoned it."""
        frames = []
        quality = 'preview' if request.preview else 'full'
        resolved = []
        for panel, args in request.items:
            try:
                resolved.append((panel, self._server_args(args), None))
            except (PathRefused, PickleLoadError, checkpoints.DownloadError) as e:
                resolved.append((panel, args, _Refused(str(e), quality)))
        self._keep_renderers(replace(request, items=tuple((p, a) for p, a, _ in resolved)))
        for panel, args, refused in resolved:
            if refused is not None:
                frames.append((panel, args, refused, 0.0))
                continue
            name = (args.pkl or '').rsplit('/', 1)[-1]
            t0 = time.perf_counter()
            # render() reports its progress before it returns, while `name` is this panel's.
            result = self._renderer(args.pkl).render(
                args, should_abort=self._should_abort,
                on_progress=lambda f: self._on_progress(
                    f'Loading {name}... {f * 100:.0f}%'))  # noqa: B023
            if result.aborted:
                return None
            frames.append((panel, args, result, (time.perf_counter() - t0) * 1e3))
        return frames

    def _renderer(self, pkl):
        """The renderer that keeps `pkl` loaded (its network stays between frames)."""
        if pkl not in self._renderers:
            self._renderers[pkl] = self._new_renderer()
        return self._renderers[pkl]

    def _keep_renderers(self, request):
        """Keep the networks of the newest view and of the newest compare panels (each keeps
        its own, as the local viewer's workers do); free the others."""
        self._in_use[request.channel] = {args.pkl for _, args in request.items}
        wanted = set().union(*self._in_use.values())
        for pkl in [p for p in self._renderers if p not in wanted]:
            del self._renderers[pkl]

    def _server_args(self, args):
        """The client's RenderArgs with every path resolved under the roots; a released name
        is downloaded into the checkpoint cache (on this machine)."""
        changes = {}
        for name in PATH_FIELDS:
            text = getattr(args, name, None)
            if text:
                changes[name] = self._locate(text) if name == 'pkl' else \
                    str(self.roots.resolve(text))
        return replace(args, **changes) if changes else args

    def _locate(self, text):
        if checkpoints.resolve(text) is not None and not os.path.exists(text):
            path, ckpt = locate_network(text)
            if ckpt is not None:
                path = str(checkpoints.download(ckpt.name, on_progress=lambda done, total:
                                                self._on_progress(
                                                    f'Downloading {ckpt.name} on the server... '
                                                    f'{100 * done / max(total or 1, 1):.0f}%')))
            return str(self.roots.resolve(path))
        path, _ = locate_network(str(self.roots.resolve(text)))
        return str(self.roots.resolve(path))       # a run's snapshot may be a symlink out

    # ---- encoding -----------------------------------------------------------------------------
    def _encode_loop(self):
        while True:
            with self._lock:
                entry = self._next(self._to_encode)
                if entry is None:
                    return
                request, frames = entry
                self._encoding = True
            try:
                self._send_frames(request, frames)
            finally:
                self._encoding = False

    def _send_frames(self, request, frames):
        for panel, args, result, render_ms in frames:
            try:
                self._send_frame(request, panel, len(frames), args, result, render_ms)
            except Exception as e:  # a frame that cannot be sent must not end the session
                log.exception('frame %s', request.id)
                self._send('frame', id=request.id, channel=request.channel, panel=panel,
                           count=len(frames), quality=result.quality,
                           error=f'the server could not send this frame ({e})')

    def _send_frame(self, request, panel, count, args, result, render_ms):
        t0 = time.perf_counter()
        image = result.host_image
        blob = b''
        if image is not None:
            blob = codec.encode_image(image, request.encoding, request.quality)
            if result.quality == 'full' and request.channel == 'view':
                with self._lock:
                    self._last_full = (request.id, image, result)
        network = result.network
        self._send(
            'frame', blob, id=request.id, channel=request.channel, panel=panel, count=count,
            quality=result.quality,
            encoding=request.encoding,
            error=result.error, message=result.message, load_failed=result.load_failed,
            timings={**dict(result.timings), 'encode': (time.perf_counter() - t0) * 1e3,
                     'render_call': render_ms} if result.timings else {},
            network=None if network is None else values.to_json(network),
            nrr=result.nrr, samples=list(result.samples) if result.samples else None,
            backbone_reused=result.backbone_reused, precision=result.precision,
            layers=[[name, list(shape)] for name, shape in result.layers], pkl=args.pkl)
