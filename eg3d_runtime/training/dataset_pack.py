"""Pack pictures and camera labels into an EG3D training dataset in the official layout
(docs/eg3d-reference.md 7.6): `{idx//1000:05d}/img{idx:08d}.png` and dataset.json, from a
folder, a zip or the procedural toy figures, checked before anything is written and appearing
only when complete (the dataset_tool command)."""
import contextlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image

from ..files import OutputExists, Outputs
from ..pictures import PictureError, read_picture
from .dataset_format import (LABEL_FILE, DatasetError, is_image_name, mirror_camera_label,
                             parse_labels)

PROCEDURAL = 'procedural'
PROCEDURAL_COUNT = 1000
PROCEDURAL_RESOLUTION = 64


def check_resolution(resolution, transform):
    """ValueError (one line) unless (W, H) is a square power of two, or H < W with
    center-crop-wide."""
    w, h = resolution
    if w < 1 or w & (w - 1) or not (h == w or (transform == 'center-crop-wide' and 0 < h < w)):
        raise ValueError(f'--resolution {w}x{h}: must be square with a power-of-two size (H < W '
                         'only with center-crop-wide)')


# Generous bytes per output pixel in memory at once: a picture's resize (Pillow's 32-bit
# accumulators), its array and its PNG; a procedural worker's 2x2 supersampled rays, hits and
# shading in float32.
PIXEL_BYTES = 32
PROCEDURAL_PIXEL_BYTES = 1024


def required_memory(source, resolution, workers):
    """Bytes a conversion to `resolution` (W, H) needs at once, or 0 when the sources' sizes
    decide (no --resolution)."""
    if resolution is None and source != PROCEDURAL:
        return 0
    w, h = resolution or (PROCEDURAL_RESOLUTION, PROCEDURAL_RESOLUTION)
    if source == PROCEDURAL:
        from ..procedural import available_cores
        return w * h * (PIXEL_BYTES + PROCEDURAL_PIXEL_BYTES * (workers or available_cores()))
    return w * w * PIXEL_BYTES      # center-crop-wide's canvas is W x W


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
        from .. import procedural
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
        try:
            check_resolution(resolution, transform)
        except ValueError as e:
            raise DatasetError(e) from None
        w, h = resolution

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
def _writer(dest, force=False):
    """Yield write(name, data) into the zip or folder `dest`, which appears only when the block
    succeeds (files.Outputs): a failed or interrupted run leaves no destination behind. An
    existing dataset (a zip, a folder that is not empty) is replaced only with `force`."""
    dest = Path(os.path.abspath(dest))
    is_zip = dest.suffix.lower() == '.zip'
    if dest.is_file() and not is_zip:
        raise DatasetError(f'{dest}: --dest is a file that is not a .zip')
    empty_folder = dest.is_dir() and not any(dest.iterdir())
    outputs = Outputs(dest.parent, [dest.name], force or empty_folder)
    try:
        outputs.check()
    except OutputExists as e:
        raise DatasetError(e) from None
    with outputs:
        target = outputs.path(dest.name)
        if is_zip:
            with open(target, 'wb') as f, zipfile.ZipFile(f, 'w',
                                                           compression=zipfile.ZIP_STORED) as z:
                yield z.writestr
            return
        target.mkdir()

        def write(name, data):
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        yield write


def convert(source, dest, resolution=None, max_images=None, transform=None, mirror=False,
            workers=None, force=False):
    """Write the dataset (resolution: (W, H) or None); returns the number of images written.
    An existing dataset at `dest` is replaced only with `force`. Raises DatasetError."""
    transform_image = make_transform(transform, resolution)
    with _writer(dest, force) as write:
        items = open_source(source, max_images, resolution, workers)
        # closing: an error stops the procedural renderers now, not when garbage collected.
        with contextlib.closing(items):
            return _convert(items, transform_image, mirror, write)


def _convert(items, transform_image, mirror, write):
    """Write the images and labels of `items` through `write`; the number written."""
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
