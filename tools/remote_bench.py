"""Benchmark of the remote render server (README "Remote GPU"): the viewer's requests over TCP
loopback to `eg3d-serve --listen` against the same frames rendered in this process, interleaved
in one run, for the demo network and a full-size FFHQ-structure network (random weights: the
work per frame is the same).

    .venv/bin/python tools/remote_bench.py [--networks demo ffhq] [--rounds 4] [--seconds 8]

Per network:
- full-quality camera-only frames, one request at a time: local wall time (through the
  viewer's RenderWorker thread, as the local viewer renders), remote wall time (request sent ->
  frame decoded), and the time the server adds to its own render (encode, transfer, decode:
  remote wall - the server's render time); JPEG bytes at the default quality;
  frames per second remote / local (the median over rounds of local time / remote time);
- a drag (preview frames, what dragging sends) with 50 ms of round-trip delay injected in the
  transport: the viewer's calls per GUI frame (submit + poll) in a 60 Hz loop, the GUI frames
  per second, and the preview frames arriving per second against the server's own render rate
  (pipelined: arrivals keep up with rendering; one frame per round trip would be
  1 / (render + 50 ms)).
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eg3d_runtime import arguments  # noqa: E402
from eg3d_runtime.files import cache_dir  # noqa: E402
from eg3d_runtime.frames.frame_renderer import FrameRenderer  # noqa: E402
from eg3d_runtime.frames.render_args import RenderArgs  # noqa: E402
from eg3d_runtime.remote.client import Connection  # noqa: E402
from viz.remote_worker import RemoteLink, RemoteWorker  # noqa: E402
from viz.render_worker import RenderWorker  # noqa: E402


def network_pickle(name):
    """demo: the bundled demo; ffhq: a full-size FFHQ-structure network with random weights,
    written once to the cache."""
    if name == 'demo':
        return REPO / 'checkpoints' / 'demo.pkl'
    path = cache_dir() / 'bench' / f'{name}-full-size-random.pkl'
    if not path.exists():
        import torch

        from eg3d_runtime import configs
        from eg3d_runtime.pickles.writer import save_network_pkl
        torch.manual_seed(0)
        G = configs.build_generator(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_network_pkl(path, {'training_set_kwargs': None, 'G': G, 'D': G, 'G_ema': G,
                                'augment_pipe': None})
    return path


class Server:
    def __init__(self, root):
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'eg3d_runtime.serve', '--listen', '127.0.0.1:0', '--device',
             'cpu', '--root', str(root)], cwd=REPO, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        self.process.stdout.readline()
        address, token = self.process.stdout.readline().split('--connect ')[1].split(' --token ')
        host, port = address.rsplit(':', 1)
        self.connect = lambda delay=0.0: Connection.tcp(host, int(port), token.strip(), delay)

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def frame(worker, args):
    """One full request through a viewer's worker (local or remote): (wall s, its result)."""
    t0 = time.perf_counter()
    worker.submit(args)
    worker.wait_idle(poll=0.0005)
    result = worker.poll()
    return time.perf_counter() - t0, result


def full_frames(local, worker, base, rounds, sizes):
    """Interleaved camera-only full-quality frames: (local s, remote s, added s) per round."""
    rows = []
    for k in range(rounds):
        args = base.with_(yaw=0.02 * (k + 1))
        local_s, local_result = frame(local, args)
        image = local_result.host_image
        remote_s, result = frame(worker, args.with_(yaw=-args.yaw))
        server_s = result.timings['render_call'] / 1e3    # the server's FrameRenderer.render
        rows.append((local_s, remote_s, remote_s - server_s))
        sizes.append(worker.last_bytes)
        assert result.image is not None and result.image.shape == image.shape, result.error
    return rows


def drag(worker, base, seconds, gui_hz=60):
    """A 60 Hz GUI loop that sends a new preview pose every frame: (GUI FPS, frames arriving
    per second, the server's render rate from its own timings)."""
    frames, render_ms = 0, []
    t_end = time.perf_counter() + seconds
    loops, k = 0, 0
    start = time.perf_counter()
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        k += 1
        worker.submit(base.with_(yaw=0.3 * ((k % 120) / 60 - 1), preview=True))
        result = worker.poll()
        if result is not None and result.image is not None:
            frames += 1
            render_ms.append(result.timings['total'] + result.timings.get('encode', 0))
        loops += 1
        time.sleep(max(0.0, 1 / gui_hz - (time.perf_counter() - t0)))
    elapsed = time.perf_counter() - start
    return loops / elapsed, frames / elapsed, 1e3 / statistics.median(render_ms) if render_ms \
        else 0.0


class CountingWorker(RemoteWorker):
    """A RemoteWorker that remembers the size of the newest frame's compressed image."""
    last_bytes = 0

    def on_frame(self, message):
        self.last_bytes = len(message.blob)
        super().on_frame(message)


def bench(name, rounds, seconds):
    pkl = network_pickle(name)
    server = Server(pkl.parent)
    try:
        link = RemoteLink(server.connect)
        worker = CountingWorker(link)
        # Local rendering as the viewer does it: a FrameRenderer behind a RenderWorker thread.
        local = RenderWorker(FrameRenderer('cpu'))
        base = RenderArgs(pkl=str(pkl), psi=0.7)
        for args in (base, base.with_(yaw=0.01)):       # load, map, first planes: warm-up
            frame(local, args)
            frame(worker, args)
        sizes = []
        rows = full_frames(local, worker, base, rounds, sizes)
        link.close()
        lagged = RemoteLink(lambda: server.connect(delay=0.05))
        drag_worker = RemoteWorker(lagged)
        frame(drag_worker, base)
        gui_fps, arriving, render_rate = drag(drag_worker, base, seconds)
        rtt = lagged.connection.rtt
        lagged.close()
    finally:
        server.close()
    local_s = min(r[0] for r in rows)
    remote_s = min(r[1] for r in rows)
    # Each round's local and remote frames ran one after the other, so their ratio sees the
    # same load; the median of those ratios is steadier on a shared machine than min / min.
    fps_ratio = statistics.median(r[0] / r[1] for r in rows)
    added = statistics.median(r[2] for r in rows)
    image = frame(local, base)[1].host_image
    local.close()
    return {'network': name, 'size': f'{image.shape[1]}x{image.shape[0]}',
            'local_ms': local_s * 1e3, 'remote_ms': remote_s * 1e3, 'added_ms': added * 1e3,
            'fps_ratio': fps_ratio, 'jpeg_kb': statistics.mean(sizes) / 1024,
            'rtt_ms': (rtt or 0) * 1e3, 'gui_fps': gui_fps, 'arriving_fps': arriving,
            'server_fps': render_rate}


def main():
    p = arguments.Parser(description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--networks', nargs='+', default=['demo', 'ffhq'], choices=['demo', 'ffhq'])
    p.add_argument('--rounds', type=arguments.integer(1, 1000), default=4)
    p.add_argument('--seconds', type=arguments.number(0, 3600, lo_open=True), default=8.0)
    options = p.parse_args()
    print(f'load average before: {os.getloadavg()[0]:.1f}')
    header = ('network', 'frame', 'local ms', 'remote ms', 'added ms', 'FPS remote/local',
              'JPEG KB', 'RTT ms', 'GUI FPS', 'arriving/s', 'server/s')
    print(' | '.join(header))
    for name in options.networks:
        r = bench(name, options.rounds, options.seconds)
        print(f"{r['network']} | {r['size']} | {r['local_ms']:.0f} | {r['remote_ms']:.0f} | "
              f"{r['added_ms']:.1f} | {r['fps_ratio']:.2f} | {r['jpeg_kb']:.0f} | "
              f"{r['rtt_ms']:.0f} | {r['gui_fps']:.0f} | {r['arriving_fps']:.1f} | "
              f"{r['server_fps']:.1f}", flush=True)
    print(f'load average after: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
    threading.current_thread().name = 'bench'
    main()
