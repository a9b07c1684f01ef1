"""The wire format: every message is a fixed header, a JSON object and an optional binary blob.

    header (20 bytes, big-endian): magic b'E3DR', version u8, reserved u8, reserved u16,
                                   JSON length u32, blob length u64

The JSON object always has a string 'type'; the blob carries a frame, a picture or a file.
Lengths are checked against MAX_JSON / MAX_BLOB before anything is allocated, so a 2^62 length
or random bytes end the connection with one ProtocolError, never a crash or a huge allocation.
Nothing here unpickles: JSON and raw bytes are the only decoders.
"""
import json
import math
import struct
import threading
from dataclasses import dataclass, field

MAGIC = b'E3DR'
VERSION = 1
HEADER = struct.Struct('>4sBBHIQ')
MAX_JSON = 1 << 20                  # control messages are small; a listing of 10k files fits
MAX_BLOB = 256 << 20                # a lossless 4k frame, an uploaded photo, a mesh file


class ProtocolError(Exception):
    """The peer sent something this version cannot read; the connection cannot go on."""


class ConnectionClosed(Exception):
    """The peer closed the connection (at a message boundary or in the middle of one)."""


@dataclass
class Message:
    type: str
    fields: dict = field(default_factory=dict)
    blob: bytes = b''

    def get(self, name, kind, default=None):
        """Field `name` checked against `kind` (a type or tuple of types); a missing field gives
        `default`, a wrong type a ProtocolError naming the field (valid JSON, wrong types)."""
        value = self.fields.get(name, default)
        if value is None and default is None:
            return None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProtocolError(f'{self.type}: field {name!r} must be {_kind_name(kind)}, '
                                f'not {type(value).__name__}')
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError(f'{self.type}: field {name!r} must be finite')
        return value


def _kind_name(kind):
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return ' or '.join({'str': 'a string', 'int': 'an integer', 'float': 'a number',
                        'bool': 'true or false', 'dict': 'an object', 'list': 'a list'}.get(
                            k.__name__, k.__name__) for k in kinds)


def encode(message):
    """The bytes of one message."""
    body = json.dumps({**message.fields, 'type': message.type}, separators=(',', ':'),
                      allow_nan=False).encode()
    if len(body) > MAX_JSON or len(message.blob) > MAX_BLOB:
        raise ProtocolError(f'{message.type}: message too large ({len(body)} + '
                            f'{len(message.blob)} bytes)')
    return HEADER.pack(MAGIC, VERSION, 0, 0, len(body), len(message.blob)) + body + message.blob


def _read_exactly(stream, n, what):
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            if left == n and what == 'header':
                raise ConnectionClosed('the connection was closed')
            raise ConnectionClosed(f'the connection was cut in the middle of a message ({what})')
        chunks.append(chunk)
        left -= len(chunk)
    return b''.join(chunks)


def read_message(stream):
    """The next message from a binary stream whose read(n) returns up to n bytes (b'' at end).
    Raises ConnectionClosed at the end of the stream, ProtocolError on anything malformed."""
    magic, version, _, _, json_len, blob_len = HEADER.unpack(
        _read_exactly(stream, HEADER.size, 'header'))
    if magic != MAGIC:
        raise ProtocolError(f'not an eg3d-serve stream (header {magic!r})')
    if version != VERSION:
        raise ProtocolError(f'protocol version {version}; this side speaks version {VERSION}')
    if json_len > MAX_JSON or blob_len > MAX_BLOB:
        raise ProtocolError(f'message of {json_len} + {blob_len} bytes is over the limit '
                            f'({MAX_JSON} + {MAX_BLOB})')
    try:
        fields = json.loads(_read_exactly(stream, json_len, 'body'))
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f'a message that is not JSON ({e})') from None
    if not isinstance(fields, dict) or not isinstance(fields.get('type'), str):
        raise ProtocolError('a message that is not a JSON object with a string "type"')
    blob = _read_exactly(stream, blob_len, 'blob') if blob_len else b''
    return Message(fields.pop('type'), fields, blob)


class MessageWriter:
    """Writes whole messages to a binary stream from any thread (one lock: messages never
    interleave). `closed` is set once a write failed: the peer is gone."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()
        self.closed = False

    def send(self, type_, blob=b'', **fields):
        data = encode(Message(type_, fields, blob))
        with self._lock:
            if self.closed:
                raise ConnectionClosed('the connection is closed')
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError) as e:      # ValueError: write to a closed file
                self.closed = True
                raise ConnectionClosed(f'the connection was cut ({e})') from None

    def close(self):
        with self._lock:
            self.closed = True
            try:
                self._stream.close()
            except OSError:
                pass
