"""Pack images and camera labels into an EG3D training dataset (docs/eg3d-reference.md 7.6).

    python -m eg3d_runtime.dataset_tool --source DIR|ZIP|procedural --dest OUT.zip|OUTDIR \\
        [--resolution R|WxH] [--max-images N] [--transform center-crop|center-crop-wide] [--mirror]
        [--workers N]

Writes the official layout: `{idx//1000:05d}/img{idx:08d}.png` (uncompressed PNG, zip stored
uncompressed) and `dataset.json` with the labels re-keyed to the new names. Unlike the official
tool, labels are checked before anything is written (a source dataset.json must give every image
25 finite numbers), the destination appears only when complete (written under a temporary name,
renamed at the end), and `--mirror` adds `<name>_mirror.png` copies with the mirrored camera, as
the official `mirror_dataset.py` does afterwards. `--source procedural` renders in `--workers`
processes (default: every available core) and gives the same images whatever their number.
"""
import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import PIL.Image

from .files import atomic_open
from .pictures import PictureError, read_picture
from .training.dataset import (LABEL_FILE, DatasetError, is_image_name, mirror_camera_label,
                               parse_labels)

PROCEDURAL = 'procedural'
PROCEDURAL_COUNT = 1000
PROCEDURAL_RESOLUTION = 64


def parse_resolution(text):
    """'R' or 'WxH' -> (W, H). Outputs must be square powers of two; only center-crop-wide
    takes H < W (the official letterbox: a W x H picture centred on a W x W canvas)."""
    m = re.fullmatch(r'(\d+)(?:[x,](\d+))?', text.strip())
    if not m:
        raise DatasetError(f'--resolution {text!r}: expected R or WxH')
    w = int(m.group(1))
    return w, int(m.group(2) or w)


def _decode(data, where):
    """8-bit grey or RGB with the right scaling (16-bit, palette, alpha: eg3d_runtime.pictures)."""
    try:
        return read_picture(data, where, grey=True)
    except PictureError as e:
        raise DatasetError(e) from None


def _labels_from(read, names, where):
    """Labels of `names` from the source dataset.json (read() -> bytes), None if absent/null."""
    if read is None:
        return None
    try:
        meta = json.loads(read())
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f'{where}: not valid JSON ({e})') from None
    return parse_labels(meta, names, where)


def open_source(source, max_images, resolution, workers=None):
    """Iterator of (uint8 HxW[xC] image, label [25] or None, where); the labels are checked
    here, before any image is read. `workers`: processes rendering procedural images (None:
    one per available core)."""
    if source == PROCEDURAL:
        from . import procedural
        count = PROCEDURAL_COUNT if max_images is None else max_images
        size = resolution[0] if resolution else PROCEDURAL_RESOLUTION
        if workers is None:
            workers = procedural.available_cores()

        def images():
            for name, img, label in procedural.generate(size, count, workers=workers):
                yield img, label, f'{PROCEDURAL}:{name}'
        return images()
    if os.path.isdir(source):
        names = sorted(os.path.relpath(os.path.join(root, f), source).replace(os.sep, '/')
                       for root, _dirs, files in os.walk(source) for f in files)
        names = [n for n in names if is_image_name(n)][:max_images]
        label_path = os.path.join(source, LABEL_FILE)

        def read_label_file():
            with open(label_path, 'rb') as f:
                return f.read()
        labels = _labels_from(read_label_file if os.path.isfile(label_path) else None,
                              names, label_path)

        def images():
            for i, name in enumerate(names):
                path = os.path.join(source, name)
                with open(path, 'rb') as f:
                    data = f.read()
                yield _decode(data, path), None if labels is None else labels[i], path
        return images()
    if os.path.isfile(source) and source.lower().endswith('.zip'):
        try:
            with zipfile.ZipFile(source) as z:
                members = z.namelist()
                names = sorted(n for n in members if is_image_name(n) and not n.endswith('/'))
                names = names[:max_images]
                labels = _labels_from((lambda: z.read(LABEL_FILE)) if LABEL_FILE in members
                                      else None, names, f'{source}:{LABEL_FILE}')
        except (OSError, zipfile.BadZipFile) as e:
            raise DatasetError(f'{source}: cannot open the zip ({e})') from None

        def images():
            with zipfile.ZipFile(source) as z:
                for i, name in enumerate(names):
                    where = f'{source}:{name}'
                    yield (_decode(z.read(name), where),
                           None if labels is None else labels[i], where)
        return images()
    if os.path.exists(source):
        raise DatasetError(f'{source}: --source must be a directory, a .zip or "{PROCEDURAL}"')
    raise DatasetError(f'{source}: no such file or directory')


def make_transform(transform, resolution):
    """The official crop/resize modes with LANCZOS resampling; None drops an image."""
    if resolution is not None:
        w, h = resolution
        if w < 1 or w & (w - 1) or not (h == w or (transform == 'center-crop-wide' and 0 < h < w)):
            raise DatasetError(f'--resolution {w}x{h}: output must be square with a '
                               'power-of-two size (H < W only with center-crop-wide)')

    def resize(img, size):
        if img.shape[1] == size[0] and img.shape[0] == size[1]:
            return img
        return np.array(PIL.Image.fromarray(img).resize(size, PIL.Image.LANCZOS))

    def scale(img):
        return img if resolution is None else resize(img, resolution)

    def center_crop(img):
        crop = min(img.shape[:2])
        top, left = (img.shape[0] - crop) // 2, (img.shape[1] - crop) // 2
        return resize(img[top:top + crop, left:left + crop], resolution)

    def center_crop_wide(img):
        ch = int(np.round(w * img.shape[0] / img.shape[1]))
        if img.shape[1] < w or ch < h:
            return None
        top = (img.shape[0] - ch) // 2
        picture = resize(img[top:top + ch], resolution)
        canvas = np.zeros((w, w) + picture.shape[2:], dtype=np.uint8)
        canvas[(w - h) // 2:(w + h) // 2] = picture
        return canvas

    if transform is None:
        return scale
    if resolution is None:
        raise DatasetError(f'--transform {transform} needs --resolution')
    return {'center-crop': center_crop, 'center-crop-wide': center_crop_wide}[transform]


def _png(img):
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, format='png', compress_level=0, optimize=False)
    return buf.getvalue()


@contextlib.contextmanager
def _writer(dest):
    """Yield write(name, data) into the zip or (empty) folder `dest`, which appears only when
    the block succeeds: a failed run leaves no destination behind."""
    is_zip = dest.lower().endswith('.zip')
    if not is_zip and os.path.isdir(dest) and os.listdir(dest):
        raise DatasetError(f'{dest}: --dest folder must be empty')
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    if is_zip:
        with atomic_open(dest) as f, zipfile.ZipFile(f, 'w', compression=zipfile.ZIP_STORED) as z:
            yield z.writestr
        return
    # A folder is renamed whole; atomic_open only replaces files.
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(dest)}.tmp-', dir=parent)

    def write(name, data):
        path = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
    try:
        yield write
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would survive the rename
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def convert(source, dest, resolution=None, max_images=None, transform=None, mirror=False,
            workers=None):
    """Write the dataset (resolution: (W, H) or None); returns the number of images written.
    Raises DatasetError."""
    items = open_source(source, max_images, resolution, workers)
    transform_image = make_transform(transform, resolution)
    # closing: an error here stops the procedural renderers now, not when garbage collected.
    with contextlib.closing(items), _writer(dest) as write:
        labels = []
        shape = None
        idx = 0
        for img, label, where in items:
            img = transform_image(img)
            if img is None:
                continue
            if shape is None:
                shape = img.shape
                h, w = shape[:2]
                if h != w or w & (w - 1):
                    raise DatasetError(f'{where}: output images must be square with a '
                                       f'power-of-two size, got {w}x{h} (use --resolution)')
            elif img.shape != shape:
                raise DatasetError(f'{where}: image is {img.shape}, unlike the first {shape}')
            name = f'{idx // 1000:05d}/img{idx:08d}.png'
            write(name, _png(img))
            labels.append([name, label])
            if mirror:
                flipped = name[:-len('.png')] + '_mirror.png'
                write(flipped, _png(np.ascontiguousarray(img[:, ::-1])))
                labels.append([flipped, None if label is None else mirror_camera_label(label)])
            idx += 1
        if any(label is None for _, label in labels):
            meta = {'labels': None}
        else:
            meta = {'labels': [[n, [float(x) for x in label]] for n, label in labels]}
        write(LABEL_FILE, json.dumps(meta).encode())
    return len(labels)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (the Trainer tab's Stop, `kill`) ends a build as Ctrl-C does: workers stopped,
    nothing written. Python's default would end the process at once, leaving temporary files."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m eg3d_runtime.dataset_tool',
        description='Pack images and 25-float camera labels into an EG3D dataset (zip or folder).')
    parser.add_argument('--source', required=True,
                        help=f'image folder, zip, or "{PROCEDURAL}" (rendered toy figures)')
    parser.add_argument('--dest', required=True, help='output .zip or (empty) folder')
    parser.add_argument('--resolution', help='output size R or WxH (square, power of two); '
                        f'{PROCEDURAL} defaults to {PROCEDURAL_RESOLUTION}')
    parser.add_argument('--max-images', type=int,
                        help=f'use the first N images ({PROCEDURAL}: N images, default '
                        f'{PROCEDURAL_COUNT})')
    parser.add_argument('--transform', choices=['center-crop', 'center-crop-wide'])
    parser.add_argument('--mirror', action='store_true',
                        help='add a mirrored copy of every image with the mirrored camera')
    parser.add_argument('--workers', type=int,
                        help=f'processes rendering {PROCEDURAL} images (default: the available '
                        'cores)')
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        if args.max_images is not None and args.max_images < 0:
            raise DatasetError(f'--max-images {args.max_images}: must be >= 0')
        if args.workers is not None and args.workers < 1:
            raise DatasetError(f'--workers {args.workers}: must be >= 1')
        resolution = None if args.resolution is None else parse_resolution(args.resolution)
        with _sigterm_as_interrupt():
            n = convert(args.source, args.dest, resolution, args.max_images, args.transform,
                        args.mirror, args.workers)
    except DatasetError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    except OSError as e:
        print(f'error: {e.filename or args.dest}: {e.strerror or e}', file=sys.stderr)
        return 1
    except BrokenProcessPool as e:
        print(f'error: {args.source}: a rendering process died ({e}); nothing written',
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'error: {args.dest}: interrupted; nothing written', file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    print(f'{args.dest}: {n} images in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} images/s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
