"""Write a sequence of H x W x 3 uint8 frames as MP4 (H.264 through PyAV), WebP or GIF (Pillow).

The file appears only when every frame is written: it goes through files.atomic_open, so an
error or Ctrl-C halfway leaves no partial video behind."""
import contextlib
import os
import time
from fractions import Fraction

from PIL import Image

from .. import progress
from ..files import atomic_open

FORMATS = ('mp4', 'webp', 'gif')
MP4_BIT_RATE = 10_000_000   # the official gen_videos' 10 Mbit/s
WEBP_QUALITY = 90


@contextlib.contextmanager
def video_file(path, fmt, fps):
    """Yield write(frame) that appends one numpy H x W x 3 uint8 frame to the video at `path`."""
    with atomic_open(path, 'wb') as f:
        if fmt == 'mp4':
            with _mp4(f, fps) as write:
                yield write
        else:
            frames = []   # Pillow writes animations in one call, so frames wait in memory
            yield lambda frame: frames.append(Image.fromarray(frame, 'RGB'))
            # Quality 90, not Pillow's 80: libwebp merges consecutive frames it finds alike (their
            # durations add up), and at 80 it merged a slow orbit of a small picture into one.
            extra = {'quality': WEBP_QUALITY} if fmt == 'webp' else {}
            frames[0].save(f, format=fmt.upper(), save_all=True, append_images=frames[1:],
                           duration=round(1000 / fps), loop=0, **extra)


def write_video(path, frames, num_frames, fmt, fps):
    """Write the frames to `path`, with a progress bar on stderr (eg3d_runtime.progress);
    returns the frame rate."""
    start = time.perf_counter()
    rate = 0.0
    with video_file(path, fmt, fps) as write, \
            progress.bar(os.path.basename(path), num_frames, unit='frame') as shown:
        for done, frame in enumerate(frames, 1):
            write(frame)
            shown.update()
            rate = done / (time.perf_counter() - start)
    return rate


@contextlib.contextmanager
def _mp4(f, fps):
    import av   # imported here: only MP4 needs the codec libraries
    container = av.open(f, mode='w', format='mp4')
    streams = []   # made at the first frame, which gives the size

    def write(frame):
        if not streams:
            stream = container.add_stream('libx264', rate=Fraction(fps).limit_denominator(1001))
            stream.height, stream.width = frame.shape[:2]
            stream.pix_fmt = 'yuv420p'
            stream.bit_rate = MP4_BIT_RATE
            streams.append(stream)
        container.mux(streams[0].encode(av.VideoFrame.from_ndarray(frame, format='rgb24')))

    try:
        yield write
        container.mux(streams[0].encode())   # flush the encoder's delayed frames
    finally:
        container.close()
