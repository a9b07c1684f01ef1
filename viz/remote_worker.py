"""The render worker's interface (submit, poll, busy, status, wait_idle, close) over a render
server: the GUI stays local and never waits; frames arrive on the connection's reader thread.

RemoteLink owns the connection (open, reconnect, which machine renders); a RemoteWorker per
request stream (the view; the compare panels) sends every new request at once (pipelined): the
server renders the newest of each stream and a frame carries its request's id, so the viewer
knows which args it shows. A cut connection leaves the viewer's settings as they are:
`reconnect()` resends each stream's newest request."""
import itertools
import threading
from types import MappingProxyType

import numpy as np
import torch

from eg3d_runtime.frames.frame_renderer import NetworkInfo, RenderResult
from eg3d_runtime.remote import codec, values
from eg3d_runtime.remote.client import Connection, RemoteError, server_command, ssh_argv
from eg3d_runtime.remote.protocol import ProtocolError

from .render_worker import WaitsIdle


def connector(options):
    """The viewer's --remote / --connect options -> a function that opens a Connection."""
    if options.connect:
        host, _, port = options.connect.rpartition(':')
        return lambda: Connection.tcp(host or '127.0.0.1', int(port), options.token)
    command = server_command(options.remote_python, options.remote_dir)
    argv = ssh_argv(options.remote, command, options.ssh)
    return lambda: Connection.stdio(argv, label=options.remote)


def network_info(fields):
    """A frame's network facts (NetworkInfo without the generator, which stays on the server)."""
    if not isinstance(fields, dict):
        return None
    known = {k: v for k, v in fields.items() if k != 'rendering_kwargs'}
    info = values.from_json(NetworkInfo, known, 'network')
    kwargs = fields.get('rendering_kwargs')
    return info if not isinstance(kwargs, dict) else \
        NetworkInfo(**{**vars(info), 'rendering_kwargs': MappingProxyType(kwargs)})


def frame_result(args, message):
    """A frame message -> the RenderResult the viewer shows (the image decoded here, on the
    connection's thread, not the GUI's)."""
    f = message.fields
    if message.type == 'error':
        return RenderResult(args, error=str(f.get('message')))
    image = None
    if message.blob:
        image = torch.from_numpy(np.array(codec.decode_image(message.blob)))
    samples = f.get('samples')
    return RenderResult(
        args, 'preview' if f.get('quality') == 'preview' else 'full', image=image,
        error=f.get('error'), message=f.get('message'), load_failed=bool(f.get('load_failed')),
        timings=dict(f.get('timings') or {}), network=network_info(f.get('network')),
        nrr=f.get('nrr'), samples=tuple(samples) if samples else None,
        backbone_reused=bool(f.get('backbone_reused')), precision=f.get('precision'),
        layers=tuple((name, tuple(shape)) for name, shape in f.get('layers') or ()))


class RemoteLink:
    """The viewer's connection to its render server, shared by its workers."""

    def __init__(self, connect):
        self._connect = connect
        self.connection = None
        self.error = None                  # why there is no connection (one line)
        self._workers = {}                 # channel -> RemoteWorker
        if not self.reconnect():
            raise RemoteError(self.error)  # a first connection must work (wrong token...)

    def reconnect(self):
        """(Re)open the connection; each worker resends its newest request. False with `error`
        set."""
        if self.connection is not None:
            self.connection.close()
        self.connection = None
        try:
            connection = self._connect()
        except RemoteError as e:
            self.error = str(e)
            return False
        connection.on_frame = self._on_frame
        connection.on_status = self._on_status
        self.error, self.connection = None, connection
        for worker in list(self._workers.values()):
            worker.attach(connection)
        return True

    def add(self, worker):
        self._workers[worker.channel] = worker
        if self.connection is not None:
            worker.attach(self.connection)

    def remove(self, worker):
        if self._workers.get(worker.channel) is worker:
            del self._workers[worker.channel]

    @property
    def info(self):
        return self.connection.info if self.connection is not None else {}

    @property
    def disconnected(self):
        """Why the viewer has no server (one line), or None while connected."""
        if self.connection is None:
            return self.error or 'not connected'
        return self.connection.closed

    def describe(self):
        """'host: device (GPU), round trip 3 ms' for the window: which machine renders."""
        if self.disconnected:
            return f'disconnected: {self.disconnected}'
        info = self.connection.info
        gpu = f' ({info["gpu"]})' if info.get('gpu') else ''
        rtt = self.connection.rtt
        return f'{info.get("host")}: {info.get("device")}{gpu}' + \
            (f', round trip {rtt * 1e3:.0f} ms' if rtt is not None else '')

    def close(self):
        if self.connection is not None:
            self.connection.close()

    def _on_frame(self, message):
        worker = self._workers.get(message.fields.get('channel', 'view'))
        if worker is not None:
            worker.on_frame(message)

    def _on_status(self, text):
        for worker in list(self._workers.values()):
            worker.on_status(text)


class RemoteWorker(WaitsIdle):
    """One request stream. Requests are RenderArgs, or (with `batch_type`) batches whose
    `items` are (panel, RenderArgs): their frames come back as one batch_type(results)."""

    def __init__(self, link, channel='view', quality=codec.DEFAULT_JPEG_QUALITY,
                 batch_type=None):
        self.link, self.channel = link, channel
        self.quality = quality
        self._lossless = False             # PNG frames (recordings, the difference view)
        self._batch_type = batch_type
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sent = {}                    # request id -> request, until its frame comes
        self._panels = {}                  # request id -> {panel: result} arrived so far
        self._waiting_for = 0              # the newest request id
        self._done = 0                     # the newest id answered
        self._last_submitted = None
        self._result = None
        self._status = None
        self._full = None                  # (result, id) of the newest full-quality frame
        self._connection = None
        link.add(self)

    @property
    def lossless(self):
        return self._lossless

    @lossless.setter
    def lossless(self, on):
        """PNG instead of JPEG from the next request on (the newest one is sent again)."""
        with self._lock:
            if on != self._lossless:
                self._lossless, self._last_submitted = on, None

    def attach(self, connection):
        """A new connection: forget the old one's requests and send the newest again."""
        with self._lock:
            self._connection = connection
            request, self._last_submitted = self._last_submitted, None
            self._sent.clear()
            self._panels.clear()
            self._done = self._waiting_for
            self._full = None
        if request is not None:
            self.submit(request)

    # ---- RenderWorker's interface -------------------------------------------------------------
    def submit(self, request):
        with self._lock:
            if request == self._last_submitted:
                return False
            self._last_submitted = request
            connection = self._connection
            if connection is None or connection.closed:
                return True
            id_ = next(self._ids)
            self._sent[id_] = request
            self._waiting_for = id_
        if self._batch_type is not None:
            body = {'batch': [[idx, values.to_json(args)] for idx, args in request.items]}
        else:
            body = {'args': values.to_json(request)}
        connection.send('render', id=id_, channel=self.channel, quality=self.quality,
                        encoding='png' if self._lossless else 'jpeg', **body)
        return True

    def poll(self):
        with self._lock:
            result, self._result = self._result, None
            return result

    @property
    def busy(self):
        connection = self._connection
        return connection is not None and not connection.closed and \
            self._done < self._waiting_for

    @property
    def status(self):
        return self._status if self.busy else None

    def close(self):
        self.link.remove(self)

    def server_frame(self, result):
        """(connection, id) of a full-quality view frame the server still holds (the newest),
        for what it does with that frame: a PNG copy, a mesh export."""
        with self._lock:
            full, connection = self._full, self._connection
        if full is None or full[0] is not result or connection is None or connection.closed:
            raise RemoteError('that frame is no longer on the server; wait for the next one')
        return connection, full[1]

    def lossless_image(self, result):
        """The exact pixels of a full-quality frame on screen (fetched again from the server as
        PNG: the view's frames are JPEG). Blocks for a round trip: not on the GUI thread."""
        connection, frame = self.server_frame(result)
        reply = connection.call('refetch', encoding='png', frame=frame)
        if reply.type == 'error':
            raise RemoteError(str(reply.fields.get('message')))
        return codec.decode_image(reply.blob)

    # ---- the connection's thread --------------------------------------------------------------
    def on_frame(self, message):
        id_ = message.fields.get('id')
        with self._lock:
            request = self._sent.get(id_)
        if request is None:
            return                         # a frame of an earlier connection or request
        try:
            if self._batch_type is None:
                result = frame_result(request, message)
            else:
                result = self._batch_frame(request, id_, message)
                if result is None:
                    return                 # more panels to come
        except ProtocolError as e:
            result = RenderResult(request, error=str(e)) if self._batch_type is None else \
                self._batch_type(MappingProxyType({}))
        with self._lock:
            for old in [k for k in self._sent if k <= id_]:
                del self._sent[old]
            self._result = result
            self._done = max(self._done, id_)
            self._status = None
            if self._batch_type is None and result.quality == 'full':
                self._full = (result, id_)

    def _batch_frame(self, request, id_, message):
        panel, count = message.fields.get('panel'), message.fields.get('count')
        args = dict(request.items).get(panel)
        if args is None or not isinstance(count, int):
            raise ProtocolError(f'a frame for panel {panel!r} of a {len(request.items)}-panel '
                                f'request')
        arrived = self._panels.setdefault(id_, {})
        arrived[panel] = frame_result(args, message)
        if len(arrived) < count:
            return None
        del self._panels[id_]
        return self._batch_type(MappingProxyType(arrived))

    def on_status(self, text):
        self._status = text
