"""What an inversion starts from: the picture, at the network's resolution, and its camera in
the dataset.json label convention (docs/eg3d-reference.md 5; /work/shared/docs/eg3d-spec.md):
16 floats of OpenCV cam2world, then the 9 normalised intrinsics. Every problem with them is one
line naming the file, raised before any long work starts."""
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import cameras
from ..pictures import PictureError, read_picture

CAMERA_LENGTH = 25


class InversionError(Exception):
    """A problem the user can fix, reported as one line naming the file."""


def load_image(path, resolution, warn=None):
    """Any picture -> [1, 3, R, R] float32 in [-1, 1]: converted to 8-bit RGB with the right
    scaling (eg3d_runtime.pictures), centre-cropped to a square and resized (Lanczos) to the
    network's resolution R, as the networks only make square pictures. `warn(text)` hears of a
    picture smaller than R, which is upscaled."""
    try:
        array = read_picture(path)
    except PictureError as e:
        raise InversionError(e) from None
    h, w = array.shape[:2]
    side = min(w, h)
    if side < resolution and warn is not None:
        warn(f'{path}: {w}x{h} pixels, smaller than the network\'s {resolution}x{resolution}; '
             'it is upscaled, so expect a blurry target')
    left, top = (w - side) // 2, (h - side) // 2
    img = Image.fromarray(array[top:top + side, left:left + side])
    if side != resolution:
        img = img.resize((resolution, resolution), Image.LANCZOS)
    array = torch.from_numpy(np.asarray(img, dtype=np.float32).copy())
    return (array.permute(2, 0, 1).unsqueeze(0) / 127.5 - 1).contiguous()


def check_camera(values, where):
    """Numbers -> c [1, 25] float32, or InversionError for a wrong length, NaN/infinity or
    numbers that are no camera (cameras.label_problem)."""
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InversionError(f'{where}: the camera must be a list of numbers') from None
    if array.size != CAMERA_LENGTH:
        raise InversionError(f'{where}: the camera has {array.size} numbers, expected '
                             f'{CAMERA_LENGTH} (cam2world 4x4, then intrinsics 3x3)')
    if not np.isfinite(array).all():
        raise InversionError(f'{where}: the camera contains NaN or infinity')
    problem = cameras.label_problem(array)
    if problem:
        raise InversionError(f'{where}: not a camera: {problem}')
    return torch.from_numpy(array.astype(np.float32)).reshape(1, CAMERA_LENGTH)


def load_camera(path):
    """A camera file: a .npy array or a .json list of 25 numbers -> c [1, 25]."""
    path = Path(path)
    try:
        if path.suffix.lower() == '.npy':
            values = np.load(path, allow_pickle=False)
        else:
            values = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise InversionError(f'{path}: no such file') from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        kind = 'a .npy array' if path.suffix.lower() == '.npy' else 'a JSON list'
        raise InversionError(f'{path}: not {kind} of camera numbers '
                             f'({str(e).splitlines()[0]})') from None
    return check_camera(values, path)


def dataset_camera(image_path):
    """The label of `image_path` in a dataset.json beside it (or in the folder above, whose
    labels name files by their path inside the dataset), or None when there is none."""
    image_path = Path(image_path).resolve()
    for root in (image_path.parent, image_path.parent.parent):
        index = root / 'dataset.json'
        if not index.is_file():
            continue
        name = image_path.relative_to(root).as_posix()
        try:
            labels = json.loads(index.read_text(encoding='utf-8')).get('labels') or []
        except (OSError, ValueError, AttributeError) as e:
            raise InversionError(f'{index}: not a dataset.json ({e})') from None
        for entry in labels:
            if isinstance(entry, list) and len(entry) == 2 and entry[0] == name:
                return check_camera(entry[1], f'{index}: {name}')
    return None
