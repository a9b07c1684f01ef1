"""The client end of a render-server connection: start the server through ssh (or any command:
the same stdio path), or reach one on TCP with its token; then send requests without waiting
and receive frames, listings and pongs on a reader thread.

Requests are pipelined: the viewer sends each new RenderArgs at once and the server renders the
newest, so camera moves arrive at the server's render rate, not one per round trip."""
import collections
import itertools
import logging
import os
import shlex
import socket
import subprocess
import threading
import time

from .protocol import VERSION, ConnectionClosed, MessageWriter, ProtocolError, read_message

log = logging.getLogger('eg3d.remote')
PING_SECONDS = 1.0
TOKEN_ENV = 'EG3D_SERVE_TOKEN'


class RemoteError(Exception):
    """Connecting failed or was refused; the message is one line for the user."""


def server_command(python='python3', folder=None, roots=()):
    """The shell command ssh runs on the server (a `~/` folder stays expandable there)."""
    def quote(path):
        path = str(path)
        return '~/' + shlex.quote(path[2:]) if path.startswith('~/') else shlex.quote(path)
    serve = f'{quote(python) if "/" in python else shlex.quote(python)} -m eg3d_runtime.serve'
    serve += ''.join(f' --root {quote(r)}' for r in roots)
    return f'cd {quote(folder)} && exec {serve}' if folder else f'exec {serve}'


def ssh_argv(target, command, ssh='ssh'):
    """ssh with no terminal and no password prompt on stdin (which carries the protocol)."""
    return shlex.split(ssh) + ['-T', '-o', 'BatchMode=yes', '--', target, command]


class LaggedReader:
    """A stream whose bytes come out `delay` seconds after they arrived: the benchmark's stand-in
    for a slow network (round-trip delay injected in the transport)."""

    def __init__(self, stream, delay):
        self._stream, self._delay = stream, delay
        self._chunks = collections.deque()
        self._ready = threading.Condition()
        self._buffer = b''
        self._eof = False
        threading.Thread(target=self._pump, daemon=True, name='lag').start()

    def _pump(self):
        while True:
            chunk = self._stream.read1(1 << 16) if hasattr(self._stream, 'read1') else \
                self._stream.read(1 << 16)
            with self._ready:
                self._chunks.append((time.monotonic() + self._delay, chunk))
                self._ready.notify()
            if not chunk:
                return

    def read(self, n):
        while not self._buffer and not self._eof:
            with self._ready:
                while not self._chunks:
                    self._ready.wait()
                due, chunk = self._chunks[0]
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self._ready:
                self._chunks.popleft()
            self._buffer, self._eof = chunk, not chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def close(self):
        self._stream.close()


class Connection:
    """One session with a render server. Callbacks run on the reader thread: on_frame(message),
    on_status(text), on_close(reason). `info` is the server's welcome (host, device, gpu,
    cwd, roots); `rtt` the newest round-trip time in seconds."""

    def __init__(self, reader, writer, token=None, process=None, sock=None, label='server'):
        self.label = label
        self._reader = reader
        self._out = MessageWriter(writer)
        self._process, self._sock = process, sock
        self._stderr = collections.deque(maxlen=20)
        if process is not None and process.stderr is not None:
            threading.Thread(target=self._collect_stderr, daemon=True,
                             name='server-stderr').start()
        self.on_frame = self.on_status = self.on_close = lambda *a: None
        self._ids = itertools.count(1)
        self._calls = {}                     # id -> [Event, reply]
        self._progress = {}                  # job id -> on_progress(message)
        self.rtt = None
        self.closed = None                   # the reason, once closed
        self._closing = threading.Event()
        self.info = self._handshake(token)
        threading.Thread(target=self._read_loop, daemon=True, name='remote-reader').start()
        threading.Thread(target=self._ping_loop, daemon=True, name='remote-ping').start()

    @classmethod
    def stdio(cls, argv, label=None, delay=0.0):
        """Start the server as a child process (ssh, or the server itself) and speak over its
        standard input and output."""
        try:
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise RemoteError(f'cannot start {argv[0]}: {e.strerror or e}') from None
        reader = LaggedReader(process.stdout, delay) if delay else process.stdout
        try:
            return cls(reader, process.stdin, process=process, label=label or argv[0])
        except RemoteError:
            process.kill()
            process.wait()
            raise

    @classmethod
    def tcp(cls, host, port, token=None, delay=0.0):
        token = token if token is not None else os.environ.get(TOKEN_ENV, '')
        try:
            sock = socket.create_connection((host, port), timeout=10)
        except OSError as e:
            raise RemoteError(f'cannot reach {host}:{port}: {e.strerror or e}') from None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile('rb')
        return cls(LaggedReader(reader, delay) if delay else reader, sock.makefile('wb'),
                   token=token, sock=sock, label=f'{host}:{port}')

    # ---- sending ------------------------------------------------------------------------------
    def send(self, type_, blob=b'', **fields):
        """Send without waiting; False once the connection is closed."""
        try:
            self._out.send(type_, blob, **fields)
            return True
        except ConnectionClosed as e:
            self._closed(str(e))
            return False

    def new_id(self):
        return next(self._ids) + 1_000_000_000     # apart from the viewer's frame ids

    def call(self, type_, timeout=30.0, blob=b'', id_=None, on_progress=None, **fields):
        """Send a request with a fresh id (or `id_`) and wait for the reply that carries it
        (listings, refetches, exports: never on the GUI thread); the job's 'progress' messages
        go to on_progress(message). `timeout` None waits until the reply or the end of
        the connection. Raises RemoteError."""
        id_ = self.new_id() if id_ is None else id_
        slot = [threading.Event(), None]
        self._calls[id_] = slot
        if on_progress is not None:
            self._progress[id_] = on_progress
        try:
            if not self.send(type_, blob, id=id_, **fields):
                raise RemoteError(f'disconnected: {self.closed}')
            if not slot[0].wait(timeout):
                raise RemoteError(f'{type_}: no answer from {self.label} in {timeout:.0f} s')
            if slot[1] is None:
                raise RemoteError(f'disconnected: {self.closed}')
            return slot[1]
        finally:
            self._calls.pop(id_, None)
            self._progress.pop(id_, None)

    # ---- receiving ----------------------------------------------------------------------------
    def _handshake(self, token):
        try:
            self._out.send('hello', version=VERSION, token=token or '')
            reply = read_message(self._reader)
        except (ConnectionClosed, ProtocolError) as e:
            self._shutdown()
            raise RemoteError(self._why(e)) from None
        if reply.type == 'error':
            self._shutdown()
            raise RemoteError(str(reply.fields.get('message', 'refused')))
        if reply.type != 'welcome':
            self._shutdown()
            raise RemoteError(f'{self.label}: unexpected reply {reply.type!r} to hello')
        return reply.fields

    def _why(self, error):
        """The one line to show when the server went away: its own last stderr line if any."""
        if self._process is not None:
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.05)
            lines = [line for line in self._stderr if line.strip()]
            if lines:
                return f'{self.label}: {lines[-1]}'
        return f'{self.label}: {error}'

    def _collect_stderr(self):
        for line in iter(self._process.stderr.readline, b''):
            text = line.decode(errors='replace').rstrip()
            self._stderr.append(text)
            log.info('server: %s', text)

    def _read_loop(self):
        while True:
            try:
                message = read_message(self._reader)
            except (ConnectionClosed, ProtocolError) as e:
                self._closed(self._why(e) if not self._closing.is_set() else 'closed')
                return
            try:
                self._dispatch(message)
            except Exception:  # a bad callback must not stop the stream
                log.exception('handling %s', message.type)

    def _dispatch(self, message):
        id_ = message.fields.get('id')
        slot = self._calls.get(id_) if isinstance(id_, int) else None
        if slot is not None:
            slot[1] = message
            slot[0].set()
        elif message.type == 'frame':
            self.on_frame(message)
        elif message.type == 'pong':
            t = message.fields.get('t')
            if isinstance(t, float):
                self.rtt = time.monotonic() - t
        elif message.type == 'progress':
            handler = self._progress.get(message.fields.get('job'))
            if handler is not None:
                handler(message)
        elif message.type == 'status':
            self.on_status(str(message.fields.get('text', '')))
        elif message.type == 'error':
            text = str(message.fields.get('message', 'error'))
            if isinstance(id_, int):
                self.on_frame(message)            # a refused render request
            else:
                log.error('%s', text)
            if message.fields.get('fatal'):
                self._closed(text)

    def _ping_loop(self):
        while not self._closing.wait(PING_SECONDS if self.rtt is not None else 0.05):
            if not self.send('ping', t=time.monotonic()):
                return

    def _closed(self, reason):
        if self.closed is not None:
            return
        self.closed = reason
        self._closing.set()
        for slot in list(self._calls.values()):
            slot[0].set()
        self.on_close(reason)

    # ---- ending -------------------------------------------------------------------------------
    def close(self):
        self._closing.set()
        self._closed('closed')
        self._shutdown()

    def _shutdown(self):
        self._out.close()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        if self._process is not None:
            try:
                self._process.wait(timeout=5)       # the server ends when its stdin closes
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
