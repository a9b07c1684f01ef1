"""Bad input to every command, as a new user gives it (issue 33). Each case of the table runs
the real command outside the test process (the quick ones together through the command's
main(), one process per command; those with a limit, a signal or long work each in its own
process) and checks:

- the exit status (2: a bad command line, 1: refused or failed while working, 130/143:
  stopped by Ctrl-C/SIGTERM);
- stderr: no traceback, and exactly one `error:` line, its last line, matching the case (a
  bad command line prints nothing else at all; a stopped command's last line says so);
- the disk: nothing left in the case's folder but what the case put there (or listed), and
  what it put there neither changed nor lost.

The ones that must load a network use the small demo.
"""
import hashlib
import json
import math
import os
import re
import resource
import signal
import subprocess
import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from eg3d_runtime import arguments

from conftest import REPO

DEMO = str(REPO / 'checkpoints' / 'demo.pkl')
VIEWER = ['visualizer.py']
MEMORY_8_GIB = ((resource.RLIMIT_AS, 8 * 2 ** 30),)
GEN = ['-m', 'eg3d_runtime.generate', '--network', '{demo}']
SH = ['shapes_export.py', '--network', '{demo}', '--device', 'cpu']
DT = ['-m', 'eg3d_runtime.dataset_tool']
TR = ['-m', 'eg3d_runtime.train', '--cfg', 'demo', '--gpus', '1', '--batch', '4', '--gamma', '1',
      '--cbase', '256', '--cmax', '16', '--workers', '0', '--grid', '2x2', '--metrics', 'none',
      '--kimg', '0.008', '--data', '{tmp}/data']
BENCH = ['-m', 'eg3d_runtime.bench', '--network', '{demo}', '--device', 'cpu']
DQ = ['-m', 'eg3d_runtime.demo_quality']
INV = ['-m', 'eg3d_runtime.invert', '--network', '{demo}', '--target', '{tmp}/photo.png',
       '--camera', '{tmp}/cam.json', '--num-steps', '2', '--pti-steps', '1', '--video-frames',
       '0', '--device', 'cpu']
GV = ['-m', 'eg3d_runtime.gen_videos', '--network', '{demo}', '--device', 'cpu']
GV_SMALL = [*GV, '--sample_mult', '1', '--w-frames', '2', '--nrr', '16', '--format', 'webp',
            '--image_mode', 'image_raw']


def _frontal_camera():
    """The 25 numbers of a frontal camera (dataset.json's label convention)."""
    import torch
    from eg3d_runtime import cameras
    pose = cameras.look_at_orbit(math.pi / 2, math.pi / 2, (0, 0, 0.2), 2.7)
    return [float(v) for v in torch.cat([pose.reshape(-1),
                                         cameras.fov_to_intrinsics(18.837).reshape(-1)])]


def _photo(tmp, camera=None, size=128):
    """photo.png (noise, the demo's resolution) and cam.json: a frontal camera or `camera`."""
    pixels = np.random.RandomState(0).randint(0, 256, (size, size, 3), np.uint8)
    Image.fromarray(pixels).save(tmp / 'photo.png')
    (tmp / 'cam.json').write_text(json.dumps(_frontal_camera() if camera is None else camera))


def _dataset(tmp, truncated=False):
    """data/: four 64-px pictures with frontal cameras in dataset.json (the last picture cut
    short with `truncated`)."""
    _pictures(tmp)
    (tmp / 'src').rename(tmp / 'data')
    names = sorted(p.name for p in (tmp / 'data').iterdir())
    (tmp / 'data' / 'dataset.json').write_text(json.dumps(
        {'labels': [[name, _frontal_camera()] for name in names]}))
    if truncated:
        (tmp / 'data' / names[-1]).write_bytes((tmp / 'data' / names[-1]).read_bytes()[:200])


def _pictures(tmp, count=4, size=64):
    """src/: `count` noise pictures of size x size."""
    (tmp / 'src').mkdir()
    rng = np.random.RandomState(0)
    for i in range(count):
        Image.fromarray(rng.randint(0, 256, (size, size, 3), np.uint8)).save(tmp / 'src' /
                                                                            f'{i}.png')


def _bomb(path, side=60000):
    """A PNG of a few bytes whose header claims side x side pixels."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + \
            struct.pack('>I', zlib.crc32(kind + data))
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', side, side,
                                                                        8, 2, 0, 0, 0)) +
                     chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


@dataclass
class Case:
    name: str
    argv: list                # {tmp}: the case's folder, {demo}: the demo network
    status: int
    error: str                # regular expression the error line matches (after 'error: ')
    setup: object = None      # setup(tmp) makes the files the case starts from
    left: set = field(default_factory=set)   # files the command may leave (beyond setup's)
    slow: bool = False
    limits: tuple = ()        # (resource.RLIMIT_..., bytes): ulimit -v, -f ... of the command
    interrupt: tuple = None   # (signal, glob): sent once a path matching glob appears in {tmp}


CASES = [
    # ---- the viewer's command line -----------------------------------------------------------
    Case('viewer --yaw nan', [*VIEWER, '{demo}', '--headless', '--screenshot', '{tmp}/s.png',
                              '--yaw', 'nan'], 2, r'--yaw nan: must be a finite number$'),
    Case('viewer --pitch inf', [*VIEWER, '--headless', '--pitch', 'inf'], 2,
         r'--pitch inf: must be a finite number$'),
    Case('viewer --nrr 100000', [*VIEWER, '{demo}', '--headless', '--nrr', '100000'], 2,
         r'--nrr 100000: must be an integer from 1 to 4096$'),
    Case('viewer --nrr 0', [*VIEWER, '--headless', '--nrr', '0'], 2,
         r'--nrr 0: must be an integer from 1 to 4096$'),
    Case('viewer --fov 0', [*VIEWER, '--headless', '--fov', '0'], 2,
         r'--fov 0: must be a finite number above 0 and below 180$'),
    Case('viewer --psi nan', [*VIEWER, '--headless', '--psi', 'nan'], 2,
         r'--psi nan: must be a finite number from -1 to 2$'),
    Case('viewer --seed -1', [*VIEWER, '--headless', '--seed=-1'], 2,
         r'--seed -1: must be an integer from 0 to 4294967295$'),
    Case('viewer --frames 0', [*VIEWER, '--headless', '--frames', '0'], 2,
         r'--frames 0: must be an integer of at least 1$'),
    Case('viewer --width 10', [*VIEWER, '--headless', '--width', '10'], 2,
         r'--width 10: must be an integer from 64 to 16384$'),
    Case('viewer --height 1e9', [*VIEWER, '--headless', '--height', '1e9'], 2,
         r'--height 1e9: must be an integer from 64 to 16384$'),
    Case('viewer --render-type x', [*VIEWER, '--headless', '--render-type', 'x'], 2,
         r'--render-type x: must be one of image, image_raw, image_depth, normals, image_mask$'),
    Case('viewer --pose-cond nan', [*VIEWER, '--headless', '--pose-cond', 'nan'], 2,
         r'--pose-cond nan: must be a finite number$'),
    Case('viewer --device tpu', [*VIEWER, '--headless', '--device', 'tpu'], 2,
         r'--device tpu: must be one of cpu, cuda$'),
    Case('viewer missing pickle', [*VIEWER, '{tmp}/nope.pkl', '--headless'], 2,
         r'.*/nope\.pkl: no such file or run directory, and not a released network \(ffhq512-64, '),
    Case('viewer screenshot into a file', [*VIEWER, '--headless', '--screenshot',
                                           '{tmp}/f/s.png'], 2,
         r'--screenshot .*/f/s\.png: .*/f is a file, not a folder$',
         setup=lambda tmp: (tmp / 'f').write_text('')),
    Case('viewer screenshot not png', [*VIEWER, '--headless', '--screenshot', '{tmp}/s.jpg'], 2,
         r'--screenshot .*/s\.jpg: must end in \.png$'),
    Case('viewer screenshot exists', [*VIEWER, '--headless', '--screenshot', '{tmp}/s.png'], 2,
         r'--screenshot .*/s\.png: exists \(add --force to replace it\)$',
         setup=lambda tmp: (tmp / 's.png').write_text('')),
    Case('viewer --run is a file', [*VIEWER, '--headless', '--run', '{tmp}/f'], 2,
         r'--run .*/f: is a file, not a folder$', setup=lambda tmp: (tmp / 'f').write_text('')),
    Case('viewer --capture-dir is a file', [*VIEWER, '--headless', '--capture-dir', '{tmp}/f'],
         2, r'--capture-dir .*/f: is a file, not a folder$',
         setup=lambda tmp: (tmp / 'f').write_text('')),
    Case('viewer --connect without a port', [*VIEWER, '--headless', '--connect', 'gpu'], 2,
         r'--connect gpu: expected HOST:PORT with PORT 1-65535$'),
    Case('viewer --jpeg-quality 0', [*VIEWER, '--headless', '--jpeg-quality', '0'], 2,
         r'--jpeg-quality 0: must be an integer from 1 to 100$'),
    Case('viewer --remote and --connect', [*VIEWER, '--headless', '--remote', 'me@gpu',
                                           '--connect', 'gpu:7860'], 2,
         r'--connect gpu:7860: not with --remote '),
    Case('viewer --remote --device', [*VIEWER, '--headless', '--remote', 'me@gpu', '--device',
                                      'cpu'], 2, r'--device cpu: the server chooses its device'),
    Case('viewer unknown option', [*VIEWER, '--headles'], 2,
         r'unrecognized arguments: --headles$'),
    Case('viewer truncated pickle', [*VIEWER, '{tmp}/t.pkl', '--headless', '--screenshot',
                                     '{tmp}/s.png', '--width', '320', '--height', '200'], 1,
         r'.*/t\.pkl: ', setup=lambda tmp: (tmp / 't.pkl').write_bytes(
             open(DEMO, 'rb').read()[:5000]), slow=True),
    Case('viewer pickle of a dict', [*VIEWER, '{tmp}/d.pkl', '--headless', '--screenshot',
                                     '{tmp}/s.png', '--width', '320', '--height', '200'], 1,
         r'.*/d\.pkl: ', setup=lambda tmp: __import__('pickle').dump({'a': 1},
                                                                       open(tmp / 'd.pkl', 'wb')),
         slow=True),
    Case('viewer --nrr past the memory', [*VIEWER, '{demo}', '--headless', '--screenshot',
                                          '{tmp}/s.png', '--nrr', '4096', '--width', '320',
                                          '--height', '200'], 1,
         r'neural res\. 4096 x 4096: needs about \d+\.\d GiB of memory, only \d+\.\d GiB '
         r'available \(choose a smaller one in Render\)$', limits=MEMORY_8_GIB),
    Case('viewer offline released network', [*VIEWER, 'ffhq512-64', '--headless',
                                              '--screenshot', '{tmp}/s.png', '--width', '320',
                                              '--height', '200'], 1,
         r'ffhq512-64\.pkl: cannot download .*; offline, put the file at .*/ffhq512-64\.pkl$',
         slow=True),

    # ---- generate ----------------------------------------------------------------------------
    Case('generate --psi nan', [*GEN, '--psi', 'nan', '--outdir', '{tmp}/o'], 2,
         r'--psi nan: must be a finite number from -1 to 2$'),
    Case('generate --nrr -4', [*GEN, '--nrr=-4', '--outdir', '{tmp}/o'], 2,
         r'--nrr -4: must be an integer from 1 to 4096$'),
    Case('generate --nrr 100000', [*GEN, '--nrr', '100000', '--outdir', '{tmp}/o'], 2,
         r'--nrr 100000: must be an integer from 1 to 4096$'),
    Case('generate --fov 180', [*GEN, '--fov', '180', '--outdir', '{tmp}/o'], 2,
         r'--fov 180: must be a finite number above 0 and below 180$'),
    Case('generate --yaw inf', [*GEN, '--yaw', 'inf', '--outdir', '{tmp}/o'], 2,
         r'--yaw inf: must be a finite number$'),
    Case('generate --pose-cond nan', [*GEN, '--pose-cond', 'nan', '--outdir', '{tmp}/o'], 2,
         r'--pose-cond nan: must be a finite number$'),
    Case('generate --cutoff -1', [*GEN, '--cutoff=-1', '--outdir', '{tmp}/o'], 2,
         r'--cutoff -1: must be an integer from 0 to 1024$'),
    Case('generate --seeds 3-1', [*GEN, '--seeds', '3-1', '--outdir', '{tmp}/o'], 2,
         r'--seeds 3-1: the range 3-1 runs backwards \(write 1-3\)$'),
    Case('generate --seeds 0-99999999', [*GEN, '--seeds', '0-99999999', '--outdir', '{tmp}/o'],
         2, r'--seeds 0-99999999: at most 1000000 seeds$'),
    Case('generate --outdir is a file', [*GEN, '--outdir', '{tmp}/f'], 2,
         r'--outdir .*/f: is a file, not a folder$', setup=lambda tmp: (tmp / 'f').write_text('')),
    Case('generate --device tpu', [*GEN, '--device', 'tpu', '--outdir', '{tmp}/o'], 2,
         r'--device tpu: must be cpu, cuda or cuda:N$'),
    Case('generate --network missing', ['-m', 'eg3d_runtime.generate', '--network',
                                        '{tmp}/nope.pkl', '--outdir', '{tmp}/o'], 2,
         r'--network .*/nope\.pkl: no such file or run directory'),
    Case('generate --noise-mode x', [*GEN, '--noise-mode', 'x', '--outdir', '{tmp}/o'], 2,
         r'--noise-mode x: must be one of const, random, none$'),
    Case('generate --precision x', [*GEN, '--precision', 'x', '--outdir', '{tmp}/o'], 2,
         r'--precision x: must be one of '),
    Case('generate over an earlier result', [*GEN, '--seeds', '0-1', '--outdir', '{tmp}'], 1,
         r'.*/seed0001\.png: exists from an earlier run \(add --force to replace it\)$',
         setup=lambda tmp: (tmp / 'seed0001.png').write_text('')),
    Case('generate --nrr past the memory', [*GEN, '--nrr', '4096', '--outdir', '{tmp}/o'], 1,
         r'--nrr 4096: needs about \d+\.\d GiB of memory, only \d+\.\d GiB available '
         r'\(use a smaller --nrr\)$', limits=MEMORY_8_GIB),
    Case('generate an empty pickle', ['-m', 'eg3d_runtime.generate', '--network',
                                      '{tmp}/e.pkl', '--outdir', '{tmp}/o'], 1,
         r'.*/e\.pkl: ', setup=lambda tmp: (tmp / 'e.pkl').write_bytes(b'')),
    Case('generate a truncated pickle', ['-m', 'eg3d_runtime.generate', '--network',
                                         '{tmp}/t.pkl', '--outdir', '{tmp}/o'], 1,
         r'.*/t\.pkl: ', setup=lambda tmp: (tmp / 't.pkl').write_bytes(
             open(DEMO, 'rb').read()[:5000])),

    # ---- gen_videos --------------------------------------------------------------------------
    Case('gen_videos --seeds 3-1', [*GV, '--seeds', '3-1', '--outdir', '{tmp}/o'], 2,
         r'--seeds 3-1: the range 3-1 runs backwards \(write 1-3\)$'),
    Case('gen_videos --fps 0', [*GV, '--seeds', '0', '--fps', '0', '--outdir', '{tmp}/o'], 2,
         r'--fps 0: must be a finite number above 0 and at most 1000$'),
    Case('gen_videos --fps -1', [*GV, '--seeds', '0', '--fps=-1', '--outdir', '{tmp}/o'], 2,
         r'--fps -1: must be a finite number above 0 and at most 1000$'),
    Case('gen_videos --pose_cond inf', [*GV, '--seeds', '0', '--pose_cond', 'inf', '--outdir',
                                        '{tmp}/o'], 2,
         r'--pose_cond inf: must be a finite number$'),
    Case('gen_videos --trunc nan', [*GV, '--seeds', '0', '--trunc', 'nan', '--outdir',
                                    '{tmp}/o'], 2,
         r'--trunc nan: must be a finite number from -1 to 2$'),
    Case('gen_videos --sample_mult 0', [*GV, '--seeds', '0', '--sample_mult', '0', '--outdir',
                                        '{tmp}/o'], 2,
         r'--sample_mult 0: must be a finite number above 0 and at most 16$'),
    Case('gen_videos --w-frames 0', [*GV, '--seeds', '0', '--w-frames', '0', '--outdir',
                                     '{tmp}/o'], 2,
         r'--w-frames 0: must be an integer of at least 1$'),
    Case('gen_videos --num-keyframes 0', [*GV, '--seeds', '0', '--num-keyframes', '0',
                                          '--outdir', '{tmp}/o'], 2,
         r'--num-keyframes 0: must be an integer of at least 1$'),
    Case('gen_videos --grid 0x2', [*GV, '--seeds', '0', '--grid', '0x2', '--outdir', '{tmp}/o'],
         2, r'--grid 0x2: must be a grid WxH of whole numbers of at least 1, like 4x2$'),
    Case('gen_videos --interpolate maybe', [*GV, '--seeds', '0', '--interpolate', 'maybe',
                                            '--outdir', '{tmp}/o'], 2,
         r'--interpolate maybe: must be True or False$'),
    Case('gen_videos --shape-res 2', [*GV, '--seeds', '0', '--shapes', 'True', '--shape-res',
                                      '2', '--outdir', '{tmp}/o'], 2,
         r'--shape-res 2: must be an integer of at least 8$'),
    Case('gen_videos --format avi', [*GV, '--seeds', '0', '--format', 'avi', '--outdir',
                                     '{tmp}/o'], 2, r'--format avi: must be one of '),
    Case('gen_videos --outdir under a file', [*GV, '--seeds', '0', '--outdir', '{tmp}/f/sub'],
         2, r'--outdir .*/f/sub: .*/f is a file, not a folder$',
         setup=lambda tmp: (tmp / 'f').write_text('')),
    Case('gen_videos without --seeds', [*GV, '--outdir', '{tmp}/o'], 2,
         r'the following arguments are required: --seeds$'),
    Case('gen_videos seeds not divisible by the grid', [*GV_SMALL, '--seeds', '0-2', '--grid',
                                                       '2x1', '--outdir', '{tmp}/o'], 1,
         r'the number of seeds \(3\) must be divisible by grid W\*H \(2\)$'),
    Case('gen_videos a pickle of text', ['-m', 'eg3d_runtime.gen_videos', '--network',
                                         '{tmp}/bad.pkl', '--seeds', '0', '--outdir', '{tmp}/o'],
         1, r'.*/bad\.pkl: ', setup=lambda tmp: (tmp / 'bad.pkl').write_text('hello world\n')),
    Case('gen_videos --sample_mult leaving no samples', [*GV_SMALL, '--seeds', '0',
                                                         '--sample_mult', '0.01', '--outdir',
                                                         '{tmp}/o'], 1,
         r'--sample_mult 0\.01: leaves no depth samples of the 16 of this network '
         r'\(at least 0\.0625\)$'),
    Case('gen_videos an odd H.264 frame', [*GV, '--seeds', '0', '--nrr', '15', '--image_mode',
                                           'image_raw', '--outdir', '{tmp}/o'], 1,
         r'H\.264 needs an even frame size, not 15x15 \(change --nrr or --grid, or use '
         r'--format webp\)$'),
    Case('gen_videos 100000 seeds on a 2x2 grid', [*GV, '--seeds', '0-99999', '--grid', '2x2',
                                                   '--outdir', '{tmp}/o'], 1,
         r'--grid 2x2 of 128px frames, 100000 keyframes: needs about \d+\.\d GiB of memory, '
         r'only \d+\.\d GiB available \(use fewer seeds, a smaller --grid or --nrr\)$',
         limits=MEMORY_8_GIB),
    Case('gen_videos 10000 seeds on a 100x100 grid', [*GV, '--seeds', '0-9999', '--grid',
                                                      '100x100', '--outdir', '{tmp}/o'], 1,
         r'--grid 100x100 of 128px frames, 10000 keyframes: needs about', limits=MEMORY_8_GIB),
    Case('gen_videos over an earlier video', [*GV_SMALL, '--seeds', '0', '--outdir', '{tmp}'],
         1, r'.*/interpolation\.webp: exists from an earlier run \(add --force to replace it\)$',
         setup=lambda tmp: (tmp / 'interpolation.webp').write_text('earlier')),
    Case('gen_videos stopped by SIGTERM', [*GV_SMALL, '--w-frames', '300', '--format', 'mp4',
                                           '--seeds', '0', '--outdir', '{tmp}/o'], 143,
         r'interrupted; no video was kept$', interrupt=(signal.SIGTERM, '.o.partial-*/*')),
    Case('gen_videos stopped by Ctrl-C', [*GV_SMALL, '--w-frames', '300', '--format', 'mp4',
                                          '--seeds', '0', '--outdir', '{tmp}'], 130,
         r'interrupted; no video was kept$', interrupt=(signal.SIGINT, '.partial-*/*'),
         setup=lambda tmp: (tmp / 'other.txt').write_text('kept')),

    # ---- shapes_export -----------------------------------------------------------------------
    Case('shapes_export --psi nan', [*SH, '--psi', 'nan', '--outdir', '{tmp}/o'], 2,
         r'--psi nan: must be a finite number from -1 to 2$'),
    Case('shapes_export --trim -3', [*SH, '--trim=-3', '--resolution', '64', '--outdir',
                                     '{tmp}/o'], 2,
         r'--trim -3: must be an integer of at least 0$'),
    Case('shapes_export --trim 40 of 64', [*SH, '--trim', '40', '--resolution', '64', '--outdir',
                                           '{tmp}/o'], 2,
         r'--trim 40: leaves nothing of a 64\^3 grid \(must be from 0 to 30\)$'),
    Case('shapes_export --resolution 4', [*SH, '--resolution', '4', '--outdir', '{tmp}/o'], 2,
         r'--resolution 4: must be an integer of at least 8$'),
    Case('shapes_export --level inf', [*SH, '--level', 'inf', '--outdir', '{tmp}/o'], 2,
         r'--level inf: must be a finite number$'),
    Case('shapes_export stl with colours', [*SH, '--format', 'stl', '--colors', '--outdir',
                                            '{tmp}/o'], 2,
         r'--colors: stl files cannot hold colours \(use ply, obj or glb\)$'),
    Case('shapes_export a volume smoothed', [*SH, '--format', 'mrc', '--smooth',
                                             '--coarse-to-fine', '--outdir', '{tmp}/o'], 2,
         r'--smooth, --coarse-to-fine: only for meshes, not the mrc volume$'),
    Case('shapes_export --network and --cfg', [*SH, '--cfg', 'ffhq', '--outdir', '{tmp}/o'], 2,
         r'--cfg: not allowed with --network$'),
    Case('shapes_export without a network', ['shapes_export.py', '--outdir', '{tmp}/o'], 2,
         r'one of the arguments --network --cfg is required$'),
    Case('shapes_export --outdir a file', [*SH, '--outdir', '{tmp}/f'], 2,
         r'--outdir .*/f: is a file, not a folder$', setup=lambda tmp: (tmp / 'f').write_text('')),
    Case('shapes_export --resolution 100000', [*SH, '--resolution', '100000', '--outdir',
                                               '{tmp}/o'], 1,
         r'resolution 100000: needs about \d+\.\d GiB of memory, only \d+\.\d GiB available '
         r'\(use a smaller --resolution\)$'),
    Case('shapes_export no surface', [*SH, '--resolution', '16', '--level', '1000', '--outdir',
                                      '{tmp}/o'], 1,
         r'.*/o/seed0000\.ply: no surface at level 1000'),
    Case('shapes_export over an earlier shape', [*SH, '--seeds', '0-1', '--resolution', '16',
                                                 '--outdir', '{tmp}'], 1,
         r'.*/seed0001\.ply: exists from an earlier run \(add --force to replace it\)$',
         setup=lambda tmp: (tmp / 'seed0001.ply').write_text('earlier')),

    # ---- dataset_tool ------------------------------------------------------------------------
    Case('dataset_tool --resolution 65536', [*DT, '--source', '{tmp}/src', '--dest',
                                             '{tmp}/d.zip', '--resolution', '65536'], 1,
         r'--resolution 65536x65536: needs about \d+\.\d GiB of memory, only \d+\.\d GiB '
         r'available \(use a smaller --resolution or fewer --workers\)$', setup=_pictures,
         limits=MEMORY_8_GIB),
    Case('dataset_tool --resolution 48', [*DT, '--source', '{tmp}/src', '--dest', '{tmp}/d.zip',
                                          '--resolution', '48'], 2,
         r'--resolution 48x48: must be square with a power-of-two size \(H < W only with '
         r'center-crop-wide\)$', setup=_pictures),
    Case('dataset_tool --resolution 32x16', [*DT, '--source', '{tmp}/src', '--dest',
                                             '{tmp}/d.zip', '--resolution', '32x16'], 2,
         r'--resolution 32x16: must be square', setup=_pictures),
    Case('dataset_tool --resolution big', [*DT, '--source', '{tmp}/src', '--dest', '{tmp}/d.zip',
                                           '--resolution', 'big'], 2,
         r'--resolution big: must be R or WxH, like 256 or 512x256$', setup=_pictures),
    Case('dataset_tool --transform alone', [*DT, '--source', '{tmp}/src', '--dest',
                                            '{tmp}/d.zip', '--transform', 'center-crop'], 2,
         r'--transform center-crop: needs --resolution$', setup=_pictures),
    Case('dataset_tool --max-images -1', [*DT, '--source', '{tmp}/src', '--dest', '{tmp}/d.zip',
                                          '--max-images=-1'], 2,
         r'--max-images -1: must be an integer of at least 0$', setup=_pictures),
    Case('dataset_tool --workers 0', [*DT, '--source', 'procedural', '--dest', '{tmp}/d.zip',
                                      '--workers', '0'], 2,
         r'--workers 0: must be an integer from 1 to 1024$'),
    Case('dataset_tool --source missing', [*DT, '--source', '{tmp}/nope', '--dest',
                                           '{tmp}/d.zip'], 2,
         r'--source .*/nope: no such file or folder$'),
    Case('dataset_tool --source a picture', [*DT, '--source', '{tmp}/src/0.png', '--dest',
                                             '{tmp}/d.zip'], 2,
         r'--source .*/0\.png: must be a folder, a \.zip or "procedural"$', setup=_pictures),
    Case('dataset_tool --dest a file', [*DT, '--source', '{tmp}/src', '--dest', '{tmp}/afile'],
         2, r'--dest .*/afile: is a file: give a \.zip or a folder$',
         setup=lambda tmp: (_pictures(tmp), (tmp / 'afile').write_text('mine'))),
    Case('dataset_tool --dest an existing zip', [*DT, '--source', '{tmp}/src', '--dest',
                                                 '{tmp}/d.zip'], 1,
         r'.*/d\.zip: exists from an earlier run \(add --force to replace it\)$',
         setup=lambda tmp: (_pictures(tmp), (tmp / 'd.zip').write_text('an earlier dataset'))),
    Case('dataset_tool --dest a folder in use', [*DT, '--source', '{tmp}/src', '--dest',
                                                 '{tmp}/d'], 1,
         r'.*/d: exists from an earlier run \(add --force to replace it\)$',
         setup=lambda tmp: (_pictures(tmp), (tmp / 'd').mkdir(),
                            (tmp / 'd' / 'mine.txt').write_text('kept'))),
    Case('dataset_tool a truncated picture', [*DT, '--source', '{tmp}/src', '--dest',
                                              '{tmp}/d.zip'], 1, r'.*/src/3\.png: ',
         setup=lambda tmp: (_pictures(tmp), (tmp / 'src' / '3.png').write_bytes(
             (tmp / 'src' / '3.png').read_bytes()[:200]))),
    Case('dataset_tool stopped by SIGTERM', [*DT, '--source', 'procedural', '--dest',
                                             '{tmp}/d.zip', '--workers', '1', '--max-images',
                                             '100000'], 143, r'interrupted; nothing written$',
         interrupt=(signal.SIGTERM, '.partial-*/d.zip')),

    # ---- train ------------------------------------------------------------------------------
    Case('train --kimg nan', [*TR, '--kimg', 'nan', '--outdir', '{tmp}/runs'], 2,
         r'--kimg nan: must be a finite number', setup=_dataset),
    Case('train --batch 0', [*TR, '--batch', '0', '--outdir', '{tmp}/runs'], 2,
         r'--batch 0: must be an integer of at least 1$', setup=_dataset),
    Case('train --gamma inf', [*TR, '--gamma', 'inf', '--outdir', '{tmp}/runs'], 2,
         r'--gamma inf: must be a finite number', setup=_dataset),
    Case('train --snap 0', [*TR, '--snap', '0', '--outdir', '{tmp}/runs'], 2,
         r'--snap 0: must be an integer of at least 1$', setup=_dataset),
    Case('train --data missing', [*TR[:-2], '--data', '{tmp}/nope.zip', '--outdir',
                                  '{tmp}/runs'], 2,
         r'--data .*/nope\.zip: no such file or folder$'),
    Case('train --outdir a file', [*TR, '--outdir', '{tmp}/f'], 2,
         r'--outdir .*/f: is a file, not a folder$',
         setup=lambda tmp: (_dataset(tmp), (tmp / 'f').write_text(''))),
    Case('train --desc with /', [*TR, '--desc', 'a/b', '--outdir', '{tmp}/runs'], 2,
         r'--desc a/b: must be a non-empty name without /', setup=_dataset),
    Case('train without --outdir', TR, 2,
         r'the following arguments are required: --outdir$', setup=_dataset),
    Case('train a truncated picture', [*TR, '--outdir', '{tmp}/runs'], 1, r'.*/data/3\.png: ',
         setup=lambda tmp: _dataset(tmp, truncated=True), left={'runs'}),
    Case('train --batch past the memory', [*TR, '--batch', '100000', '--outdir', '{tmp}/runs'],
         1, r'--batch 100000 \(--batch-gpu 100000, --gpus 1\) at 64 px, nrr 32, 32 samples: needs '
         r'about \d+\.\d GiB of memory, only \d+\.\d GiB available \(use a smaller --batch-gpu, '
         r'which accumulates the same --batch, or a smaller --batch\)$', setup=_dataset,
         limits=MEMORY_8_GIB),
    Case('train --resume of a text file', [*TR, '--resume', '{tmp}/bad.pkl', '--outdir',
                                           '{tmp}/runs'], 1, r'--resume: .*/bad\.pkl: ',
         setup=lambda tmp: (_dataset(tmp), (tmp / 'bad.pkl').write_text('hello')),
         left={'runs'}),

    # ---- bench and demo_quality ----------------------------------------------------------------
    Case('bench --nrr 0', [*BENCH, '--nrr', '0'], 2,
         r'--nrr 0: must be an integer from 1 to 4096$'),
    Case('bench --reps 0', [*BENCH, '--reps', '0'], 2,
         r'--reps 0: must be an integer from 1 to 10000$'),
    Case('bench --threads -2', [*BENCH, '--threads=-2'], 2,
         r'--threads -2: must be an integer from 1 to 4096$'),
    Case('bench --preview-fps nan', [*BENCH, '--preview-fps', 'nan'], 2,
         r'--preview-fps nan: must be a finite number above 0 and at most 1000$'),
    Case('bench --march 64,0,48', [*BENCH, '--march', '64,0,48'], 2,
         r'--march 64,0,48: nrr must be from 1 to 4096, the sample counts at least 1$'),
    Case('bench --march 64x48', [*BENCH, '--march', '64x48'], 2,
         r'--march 64x48: must be nrr,coarse,fine like 64,48,48$'),
    Case('bench --json exists', [*BENCH, '--json', '{tmp}/b.json'], 2,
         r'--json .*/b\.json: exists \(add --force to replace it\)$',
         setup=lambda tmp: (tmp / 'b.json').write_text('{}')),
    Case('bench --device tpu', [*BENCH, '--device', 'tpu'], 2,
         r'--device tpu: must be one of cpu, cuda$'),
    Case('bench faithful past the memory', [*BENCH, '--nrr', '1024', '--reps', '1'], 1,
         r'--nrr 1024 with 16\+16 samples on the faithful path: needs about \d+\.\d GiB of '
         r'memory, only \d+\.\d GiB available \(use a smaller --nrr or --march, or '
         r'--no-faithful\)$', limits=MEMORY_8_GIB),
    Case('demo_quality --grid not png', [*DQ, '--figures', '--grid', '{tmp}/g.jpg'], 2,
         r'--grid .*/g\.jpg: must end in \.png$'),
    Case('demo_quality --grid exists', [*DQ, '--figures', '--grid', '{tmp}/g.png'], 2,
         r'--grid .*/g\.png: exists \(add --force to replace it\)$',
         setup=lambda tmp: (tmp / 'g.png').write_text('')),
    Case('demo_quality --network and --figures', [*DQ, '--figures', '--network', '{demo}'], 2,
         r'--network: not allowed with --figures$'),
    Case('demo_quality a pickle of text', [*DQ, '--network', '{tmp}/bad.pkl'], 1,
         r'.*/bad\.pkl: ', setup=lambda tmp: (tmp / 'bad.pkl').write_text('hello')),

    # ---- invert ------------------------------------------------------------------------------
    Case('invert --num-steps -1', [*INV, '--num-steps=-1', '--outdir', '{tmp}/o'], 2,
         r'--num-steps -1: must be an integer from 0 to 1000000$', setup=_photo),
    Case('invert --video-frames -1', [*INV, '--video-frames=-1', '--outdir', '{tmp}/o'], 2,
         r'--video-frames -1: must be an integer from 0 to 100000$', setup=_photo),
    Case('invert --seed x', [*INV, '--seed', 'x', '--outdir', '{tmp}/o'], 2,
         r'--seed x: must be an integer from 0 to 4294967295$', setup=_photo),
    Case('invert --target missing', [*INV, '--target', '{tmp}/nope.png', '--outdir', '{tmp}/o'],
         2, r'--target .*/nope\.png: no such file$', setup=_photo),
    Case('invert --target a folder', [*INV, '--target', '{tmp}', '--outdir', '{tmp}/o'], 2,
         r'--target .*: is a folder, not a file$', setup=_photo),
    Case('invert --camera and --estimate-camera', [*INV, '--estimate-camera', '--outdir',
                                                   '{tmp}/o'], 2,
         r'--camera .*/cam\.json: give either --camera or --estimate-camera, not both$',
         setup=_photo),
    Case('invert --w-space z', [*INV, '--w-space', 'z', '--outdir', '{tmp}/o'], 2,
         r'--w-space z: must be one of w, w\+$', setup=_photo),
    Case('invert --outdir under a file', [*INV, '--outdir', '{tmp}/photo.png/o'], 2,
         r'--outdir .*/photo\.png/o: .*/photo\.png is a file, not a folder$', setup=_photo),
    Case('invert a target that is no picture', [*INV, '--target', '{tmp}/notes.txt', '--outdir',
                                                '{tmp}/o'], 1, r'.*/notes\.txt: not an image',
         setup=lambda tmp: (_photo(tmp), (tmp / 'notes.txt').write_text('hello'))),
    Case('invert a decompression bomb', [*INV, '--target', '{tmp}/bomb.png', '--outdir',
                                         '{tmp}/o'], 1,
         r'.*/bomb\.png: claims 3,600,000,000 pixels, more than the ',
         setup=lambda tmp: (_photo(tmp), _bomb(tmp / 'bomb.png'))),
    Case('invert a camera of 16 numbers', [*INV, '--outdir', '{tmp}/o'], 1,
         r'.*/cam\.json: the camera has 16 numbers, expected 25 \(cam2world 4x4, ',
         setup=lambda tmp: _photo(tmp, [1.0] * 16)),
    Case('invert a camera with NaN', [*INV, '--outdir', '{tmp}/o'], 1,
         r'.*/cam\.json: the camera contains NaN or infinity$',
         setup=lambda tmp: (_photo(tmp), (tmp / 'cam.json').write_text('[' + ', '.join(
             ['NaN'] * 25) + ']'))),
    Case('invert a camera of 25 zeros', [*INV, '--outdir', '{tmp}/o'], 1,
         r'.*/cam\.json: not a camera: the cam2world bottom row is not 0 0 0 1$',
         setup=lambda tmp: _photo(tmp, [0.0] * 25)),
    Case('invert without a camera', [*INV[:6], *INV[8:], '--outdir', '{tmp}/o'], 1,
         r'.*/photo\.png: no camera \(give --camera CAM, put the picture in a dataset\.json, '
         r'or use --estimate-camera\)$', setup=_photo),
    Case('invert over an earlier inversion', [*INV, '--outdir', '{tmp}'], 1,
         r'.*/w\.npy: exists from an earlier run \(add --force to replace it\)$',
         setup=lambda tmp: (_photo(tmp), (tmp / 'w.npy').write_text('earlier'))),
    Case('invert a failed write', [*INV, '--outdir', '{tmp}/o'], 1,
         r'.*/o/inverted\.pkl: File too large$', setup=_photo,
         limits=((resource.RLIMIT_FSIZE, 2 ** 20),), slow=True),   # test_files: without invert
]


def _files(folder):
    """{path: content digest (None for a folder)} of everything under `folder`."""
    return {str(p.relative_to(folder)): None if p.is_dir() else
            hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.rglob('*')}


def _env(home):
    return dict(os.environ, PYTHONPATH=str(REPO), XDG_CONFIG_HOME=str(home / 'config'),
                XDG_CACHE_HOME=str(home / 'cache'), EG3D_CHECKPOINT_DIR=str(home / 'checkpoints'),
                # offline: a download must fail at once, not wait for a network
                http_proxy='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9')


def _prepare(case, home):
    """The case's folder with its setup done: (folder, its files, the command line)."""
    tmp = home / 'case'
    tmp.mkdir()
    if case.setup:
        case.setup(tmp)
    return tmp, _files(tmp), [a.format(tmp=tmp, demo=DEMO) for a in case.argv]


def _batched(case):
    """The cases with no limit, signal or long work run through the command's main() in one
    process per command (importing torch once, not once a case: 2 s on an idle 2-core machine),
    the rest each in a process of its own."""
    return not (case.limits or case.slow or case.interrupt)


def _entry(argv):
    """The command of a command line: ('-m', module) or the script's path, and its arguments."""
    return (tuple(argv[:2]), argv[2:]) if argv[0] == '-m' else ((argv[0],), argv[1:])


@pytest.fixture(scope='module')
def batch_results(tmp_path_factory):
    """{case name: (exit status, stderr, folder, files before)} of every batched case."""
    prepared = {}
    for case in filter(_batched, CASES):
        home = tmp_path_factory.mktemp('batched')
        prepared[case.name] = (home, *_prepare(case, home))
    results = {}
    commands = {}
    for case in filter(_batched, CASES):
        entry, args = _entry(prepared[case.name][3])
        commands.setdefault(entry, []).append((case.name, args))
    for entry, cases in commands.items():
        home = tmp_path_factory.mktemp('driver')
        proc = subprocess.run([sys.executable, __file__, *entry], cwd=REPO, env=_env(home),
                              input=json.dumps([args for _name, args in cases]),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for (name, _args), (status, stderr) in zip(cases, json.loads(proc.stdout)):
            _home, tmp, before, _argv = prepared[name]
            results[name] = status, stderr, tmp, before
    return results


@pytest.mark.parametrize('case', [pytest.param(c, id=c.name, marks=[pytest.mark.slow] * c.slow)
                                  for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(case, tmp_path, xvfb_display, request):
    if _batched(case):
        status, stderr, tmp, before = request.getfixturevalue('batch_results')[case.name]
    else:
        tmp, before, argv = _prepare(case, tmp_path)
        def limit():
            for which, value in case.limits:
                resource.setrlimit(which, (value, value))
        proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=_env(tmp_path),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=limit)
        stderr = _signal_when_it_appears(proc, tmp, *case.interrupt) if case.interrupt else \
            proc.communicate(timeout=600)[1]
        status = proc.returncode
    lines = stderr.strip().splitlines()
    assert status == case.status, stderr[-3000:]
    assert 'Traceback' not in stderr, stderr[-3000:]
    if case.interrupt:     # no error: a note that says what was kept
        assert re.match(case.error, lines[-1]), stderr[-3000:]
    else:
        errors = [line for line in lines if line.startswith('error:')]
        assert len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
        if case.status == 2:
            assert len(lines) == 1, stderr
        assert re.match(case.error, errors[0][len('error: '):]), errors[0]
    after = _files(tmp)
    assert set(after) - set(before) == case.left, 'left behind'
    assert {p: after.get(p) for p in before} == before, 'changed or lost'


def _signal_when_it_appears(proc, folder, signum, pattern):
    """Send `signum` to `proc` once `pattern` matches under `folder` (work under way), unless
    it ends first; returns its stderr, read meanwhile so that progress cannot fill the pipe."""
    chunks = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while proc.poll() is None and not any(folder.glob(pattern)) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signum)
    proc.wait(timeout=60)
    reader.join()
    return ''.join(chunks)


def _drive(entry):
    """python tests/test_bad_input.py ENTRY < [argv, ...]: each command line through the
    command's main() in this process; prints [[exit status, stderr], ...] as JSON."""
    import contextlib
    import importlib
    import io
    import runpy
    import traceback
    main = importlib.import_module(entry[1]).main if entry[0] == '-m' else \
        runpy.run_path(str(REPO / entry[0]), run_name='batched')['main']
    results = []
    for argv in json.load(sys.stdin):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(argv)
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else 1
            except BaseException:        # the test reports the traceback
                traceback.print_exc()
                status = 1
        results.append([status, err.getvalue()])
    json.dump(results, sys.stdout)


# ---- the checks themselves, in this process ----------------------------------------------------

@pytest.mark.parametrize('kind, text, allowed', [
    (arguments.integer(1, 8), '9', 'must be an integer from 1 to 8'),
    (arguments.integer(0), '-1', 'must be an integer of at least 0'),
    (arguments.integer(), '1.5', 'must be an integer'),
    (arguments.number(0, lo_open=True), '0', 'must be a finite number above 0'),
    (arguments.number(0, 1), 'nan', 'must be a finite number from 0 to 1'),
    (arguments.number(hi=1), 'inf', 'must be a finite number of at most 1'),
    (arguments.seeds, '3-1', 'the range 3-1 runs backwards (write 1-3)'),
    (arguments.seeds, '0-99999999', 'at most 1000000 seeds'),
    (arguments.seeds, 'a', 'must be seeds like 0-3,7'),
    (arguments.grid, '0x2', 'must be a grid WxH of whole numbers of at least 1, like 4x2'),
    (arguments.boolean, 'maybe', 'must be True or False'),
    (arguments.device, 'gpu', 'must be cpu, cuda or cuda:N'),
])
def test_types_refuse_with_what_is_allowed(kind, text, allowed):
    with pytest.raises(arguments.Refusal) as refused:
        kind(text)
    assert str(refused.value) == f'{text}: {allowed}'


def test_types_accept_what_they_allow(tmp_path):
    assert arguments.seeds('0-2, 7') == [0, 1, 2, 7]
    assert arguments.grid(' 4x2 ') == (4, 2) and arguments.grid('3,1') == (3, 1)
    assert arguments.number(0, 1)('1') == 1.0 and arguments.integer(1)('+3') == 3
    assert arguments.boolean('True') and not arguments.boolean('off')
    assert arguments.output_dir(str(tmp_path / 'new' / 'deeper')) == str(tmp_path / 'new' /
                                                                          'deeper')
    assert arguments.device('CUDA:1') == 'cuda:1'


def test_argparse_messages_become_one_line():
    assert arguments.one_line("argument --format: invalid choice: 'x' (choose from 'mp4', "
                              "'webp')") == '--format x: must be one of mp4, webp'
    assert arguments.one_line('argument --psi: expected one argument') == '--psi: needs a value'
    assert arguments.one_line("argument --w-frames/--w_frames: invalid int value: 'x'") == \
        '--w-frames x: must be an integer'
    assert arguments.one_line('the following arguments are required:\n --network') == \
        'the following arguments are required: --network'


if __name__ == '__main__':
    _drive(sys.argv[1:])
