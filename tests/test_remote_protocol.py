"""The render server's wire protocol and one client session, in-process with a stand-in frame
source (the end-to-end tests with the real server are in test_remote.py): framing, bounds,
a fuzzed stream, wrong types, path escapes, a bad token, newest-request-wins."""
import io
import random
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from eg3d_runtime.frames.render_args import RenderArgs
from eg3d_runtime.remote import codec, values
from eg3d_runtime.remote.protocol import (HEADER, MAGIC, MAX_BLOB, VERSION, ConnectionClosed,
                                          Message, MessageWriter, ProtocolError, encode,
                                          read_message)
from eg3d_runtime.remote.roots import PathRefused, Roots
from eg3d_runtime.remote.server import ClientSession


def test_a_message_round_trips_with_its_blob():
    data = encode(Message('frame', {'id': 3, 'x': [1.5, None]}, b'\x00\xff' * 10))
    message = read_message(io.BytesIO(data))
    assert (message.type, message.fields, message.blob) == ('frame', {'id': 3, 'x': [1.5, None]},
                                                           b'\x00\xff' * 10)


@pytest.mark.parametrize('data, error', [
    (HEADER.pack(MAGIC, VERSION, 0, 0, 10, 1 << 62), 'over the limit'),
    (HEADER.pack(MAGIC, VERSION, 0, 0, (1 << 32) - 1, 0), 'over the limit'),
    (HEADER.pack(b'HTTP', VERSION, 0, 0, 2, 0) + b'{}', 'not an eg3d-serve stream'),
    (HEADER.pack(MAGIC, 9, 0, 0, 2, 0) + b'{}', 'protocol version 9'),
    (HEADER.pack(MAGIC, VERSION, 0, 0, 4, 0) + b'\xff\xfe{}', 'not JSON'),
    (HEADER.pack(MAGIC, VERSION, 0, 0, 2, 0) + b'[]', 'JSON object with a string "type"'),
    (HEADER.pack(MAGIC, VERSION, 0, 0, 11, 0) + b'{"type": 1}', 'string "type"'),
])
def test_malformed_messages_are_one_protocol_error(data, error):
    with pytest.raises(ProtocolError, match=error):
        read_message(io.BytesIO(data))


def test_truncated_streams_say_where_they_were_cut():
    whole = encode(Message('ping', {'t': 1.0}, b'abc'))
    with pytest.raises(ConnectionClosed, match='closed'):
        read_message(io.BytesIO(b''))
    for cut, where in ((5, 'header'), (HEADER.size + 3, 'body'), (len(whole) - 1, 'blob')):
        with pytest.raises(ConnectionClosed, match=f'middle of a message \\({where}\\)'):
            read_message(io.BytesIO(whole[:cut]))


def test_random_bytes_never_get_past_the_reader():
    rng = random.Random(0)
    for _ in range(500):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        if rng.random() < 0.5:              # a valid magic, so the lengths get checked too
            data = MAGIC + bytes([VERSION]) + data
        with pytest.raises((ProtocolError, ConnectionClosed)):
            read_message(io.BytesIO(data))


def test_oversized_messages_are_refused_before_sending():
    with pytest.raises(ProtocolError, match='too large'):
        encode(Message('upload', {}, b'\0' * (MAX_BLOB + 1)))


def test_render_args_travel_as_json_generically():
    args = RenderArgs(pkl='a.pkl', seed_x=1.5, stylemix_idx=(0, 3), lookat=(0.0, 0.1, 0.2),
                      nrr=128, render_type='image_depth', preview=True)
    assert values.from_json(RenderArgs, values.to_json(args)) == args
    assert values.from_json(RenderArgs, {'seed_x': 2}).seed_x == 2.0     # JSON ints are numbers


@pytest.mark.parametrize('fields, error', [
    ({'psi': 'high'}, 'args.psi must be float'), ({'nrr': 1.5}, 'args.nrr must be int'),
    ({'preview': 1}, 'args.preview must be bool'), ({'pkl': ['a']}, 'args.pkl must be str'),
    ({'stylemix_idx': [[1]]}, 'args.stylemix_idx must be tuple'),
    ({'render_type': None}, 'must not be null'), ({'os_system': 'rm'}, "unknown field 'os_system'"),
])
def test_wrong_types_are_refused_naming_the_field(fields, error):
    with pytest.raises(ProtocolError, match=error):
        values.from_json(RenderArgs, fields)


def test_codecs_png_exact_and_jpeg_close():
    rng = np.random.default_rng(0)
    image = (np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3) +
             rng.integers(0, 3, (64, 64, 3))).astype(np.uint8)
    assert np.array_equal(codec.decode_image(codec.encode_image(image, 'png')), image)
    jpeg = codec.decode_image(codec.encode_image(image, 'jpeg'))
    assert np.abs(jpeg.astype(int) - image).mean() < 3
    with pytest.raises(ProtocolError, match='not a readable image'):
        codec.decode_image(b'GIF89a' + b'\0' * 40)


def test_paths_outside_the_roots_are_refused(tmp_path):
    served, other = tmp_path / 'served', tmp_path / 'other'
    (served / 'runs').mkdir(parents=True)
    other.mkdir()
    (served / 'runs' / 'a.pkl').write_bytes(b'')
    (other / 'secret.pkl').write_bytes(b'')
    (served / 'escape.pkl').symlink_to(other / 'secret.pkl')
    (served / 'inside.pkl').symlink_to(served / 'runs' / 'a.pkl')
    roots = Roots([served])
    assert roots.resolve(str(served / 'runs' / 'a.pkl')) == served / 'runs' / 'a.pkl'
    assert roots.resolve(str(served / 'inside.pkl')) == served / 'runs' / 'a.pkl'
    for text, why in ((str(served / 'runs' / '..' / 'runs' / 'a.pkl'), '".." is not allowed'),
                      (str(served / 'escape.pkl'), 'outside the folders'),
                      (str(other / 'secret.pkl'), 'outside the folders'),
                      ('/etc/passwd', 'outside the folders'), ('', 'empty')):
        with pytest.raises(PathRefused, match=why):
            roots.resolve(text)


# ---- one session, in-process ---------------------------------------------------------------
@dataclass(frozen=True)
class StubResult:
    args: RenderArgs
    quality: str = 'full'
    host_image: object = None
    error: str | None = None
    message: str | None = None
    load_failed: bool = False
    aborted: bool = False
    timings: dict = None
    network: object = None
    nrr: int | None = None
    samples: tuple | None = None
    backbone_reused: bool = False
    precision: str | None = None
    layers: tuple = ()


class StubSource:
    """Stands in for FrameRenderer: a frame whose colour is its seed; slow full frames."""
    def __init__(self, seconds=0.0):
        self.seconds, self.rendered, self.abandoned = seconds, [], []

    def render(self, args, should_abort, on_progress):
        deadline = time.monotonic() + (0 if args.preview else self.seconds)
        while time.monotonic() < deadline:
            if should_abort():
                self.abandoned.append(args.seed_x)
                return StubResult(args, aborted=True)
            time.sleep(0.005)
        self.rendered.append(args.seed_x)
        image = np.full((8, 8, 3), int(args.seed_x) % 256, np.uint8)
        return StubResult(args, 'preview' if args.preview else 'full', image, timings={})


@pytest.fixture
def session(tmp_path):
    """A ClientSession on one end of a socket pair; the test speaks on the other."""
    def start(source=None, token=None):
        ours, theirs = socket.socketpair()
        reader, writer = theirs.makefile('rb'), theirs.makefile('wb')
        source_ = source or StubSource()
        server = ClientSession(reader, writer, lambda: source_, RenderArgs,
                               Roots([tmp_path]), {'host': 'h', 'device': 'cpu', 'gpu': None},
                               token=token)
        def serve():                  # as eg3d-serve does: the socket closes with the session
            with theirs, reader, writer:
                server.run()
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        started.append((ours, thread))
        return ours, MessageWriter(ours.makefile('wb')), ours.makefile('rb'), thread
    started = []
    yield start
    for sock, thread in started:
        sock.close()
        thread.join(timeout=10)
        assert not thread.is_alive()


def hello(out, inp, token=''):
    out.send('hello', version=VERSION, token=token)
    return read_message(inp)


def test_a_wrong_token_gets_one_refusal(session):
    _, out, inp, thread = session(token='right')
    reply = hello(out, inp, 'wrong')
    assert reply.type == 'error' and reply.fields['message'].startswith('wrong token')
    with pytest.raises(ConnectionClosed):
        read_message(inp)
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_the_right_token_is_welcomed(session):
    _, out, inp, _ = session(token='right')
    reply = hello(out, inp, 'right')
    assert reply.type == 'welcome' and reply.fields['device'] == 'cpu'


def test_bad_requests_get_an_error_reply_and_the_session_goes_on(session):
    _, out, inp, _ = session()
    assert hello(out, inp).type == 'welcome'
    for type_, fields, error in (
            ('teleport', {}, "unknown message type 'teleport'"),
            ('render', {'id': 'x', 'args': {}}, "field 'id' must be an integer"),
            ('render', {'id': 1, 'args': {'psi': 'high'}}, 'args.psi must be float'),
            ('render', {'id': 1, 'args': {}, 'quality': 500}, 'quality 500'),
            ('ping', {'t': 'now'}, "field 't' must be a number")):
        out.send(type_, **fields)
        reply = read_message(inp)
        assert reply.type == 'error' and error in reply.fields['message'], reply.fields
    out.send('ping', t=1.25)
    assert read_message(inp).fields == {'t': 1.25}


@pytest.mark.parametrize('garbage', [b'\0' * 64, HEADER.pack(MAGIC, VERSION, 0, 0, 2, 1 << 62),
                                     HEADER.pack(MAGIC, VERSION, 0, 0, 5, 0) + b'nope!'])
def test_a_fuzzed_stream_closes_the_session_with_one_error(session, garbage):
    sock, out, inp, thread = session()
    assert hello(out, inp).type == 'welcome'
    sock.sendall(garbage)
    reply = read_message(inp)
    assert reply.type == 'error' and reply.fields['fatal'] and reply.fields['message'].count(
        '\n') == 0
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_client_cut_mid_message_ends_its_session(session):
    sock, out, inp, thread = session()
    assert hello(out, inp).type == 'welcome'
    sock.sendall(encode(Message('render', {'id': 1, 'args': {}}))[:30])
    sock.shutdown(socket.SHUT_WR)
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_path_escapes_come_back_as_a_refused_frame(session, tmp_path):
    _, out, inp, _ = session()
    assert hello(out, inp).type == 'welcome'
    for id_, path in enumerate(('/etc/passwd', str(tmp_path / '..' / 'x.pkl')), 1):
        out.send('render', id=id_, args={'pkl': path})
        reply = read_message(inp)
        assert reply.fields['id'] == id_ and reply.fields['load_failed']
        assert reply.fields['error'].startswith('refused: ')
    out.send('list', id=7, path='/')
    assert 'outside the folders' in read_message(inp).fields['error']


def test_only_the_newest_request_is_rendered_and_a_stale_full_frame_is_abandoned(session):
    source = StubSource(seconds=0.5)
    _, out, inp, _ = session(source)
    assert hello(out, inp).type == 'welcome'
    out.send('render', id=1, args={'seed_x': 1.0})
    time.sleep(0.1)                       # frame 1 is rendering when 2..5 arrive
    for id_ in range(2, 6):
        out.send('render', id=id_, args={'seed_x': float(id_)})
    reply = read_message(inp)
    assert reply.type == 'frame' and reply.fields['id'] == 5
    assert codec.decode_image(reply.blob)[0, 0, 0] == 5
    assert source.abandoned == [1.0] and source.rendered == [5.0]


def test_previews_are_not_abandoned_and_keep_arriving(session):
    source = StubSource()
    _, out, inp, _ = session(source)
    assert hello(out, inp).type == 'welcome'
    for id_ in range(1, 21):          # pipelined: sent without waiting for frames
        out.send('render', id=id_, args={'seed_x': float(id_), 'preview': True})
    ids = []
    while not ids or ids[-1] != 20:
        ids.append(read_message(inp).fields['id'])
    assert ids == sorted(ids) and not source.abandoned


def test_a_full_frame_can_be_fetched_again_losslessly(session):
    _, out, inp, _ = session()
    assert hello(out, inp).type == 'welcome'
    out.send('render', id=1, args={'seed_x': 7.0}, encoding='jpeg', quality=10)
    assert read_message(inp).fields['id'] == 1
    out.send('refetch', id=99, frame=1, encoding='png')
    reply = read_message(inp)
    assert reply.fields['id'] == 99 and np.all(codec.decode_image(reply.blob) == 7)
    out.send('refetch', id=100, frame=2, encoding='png')
    assert 'no longer on the server' in read_message(inp).fields['message']


def test_encoding_a_frame_overlaps_rendering_the_next(session, monkeypatch):
    """While a newer request waits, frame N is encoded on the encoder thread as N+1 renders."""
    from eg3d_runtime.remote import server
    spans = {'render': [], 'encode': []}

    class Timed(StubSource):
        def render(self, args, should_abort, on_progress):
            t0 = time.monotonic()
            time.sleep(0.2)
            result = super().render(args, should_abort, on_progress)
            spans['render'].append((t0, time.monotonic()))
            return result

    encode = codec.encode_image

    def slow_encode(image, *args):
        t0 = time.monotonic()
        time.sleep(0.15)
        spans['encode'].append((t0, time.monotonic()))
        return encode(image, *args)
    monkeypatch.setattr(server.codec, 'encode_image', slow_encode)
    _, out, inp, _ = session(Timed())
    assert hello(out, inp).type == 'welcome'
    for id_ in (1, 2, 3):
        out.send('render', id=id_, args={'seed_x': float(id_), 'preview': True})
        time.sleep(0.05)
    ids = []
    while not ids or ids[-1] != 3:
        ids.append(read_message(inp).fields['id'])
    assert any(e0 < r1 and r0 < e1 for e0, e1 in spans['encode'] for r0, r1 in spans['render'])
