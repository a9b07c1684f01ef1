"""The official dataset layout's facts (docs/eg3d-reference.md 7.6): the label file, a label's
25 numbers checked one by one, which files are images, and the mirrored camera. The training
reader (dataset.py) and the writer (dataset_pack.py) share them; no torch, so that dataset_tool
checks its command line before torch is loaded."""
import os

import numpy as np
import PIL.Image

LABEL_FILE = 'dataset.json'
LABEL_DIM = 25


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and the problem."""


def mirror_camera_label(label):
    """The camera label [25] of the horizontally mirrored image.

    Mirroring the image is mirroring the scene across the world x = 0 plane seen by a camera whose
    own x axis is flipped: cam2world -> S cam2world S with S = diag(-1, 1, 1, 1), the official
    `flip_yaw` (docs/eg3d-reference.md 5.2). The official script keeps the intrinsics, which is
    exact only for a centred principal point; here cx -> 1 - cx and the skew changes sign."""
    label = np.array(label, dtype=np.float32).reshape(LABEL_DIM)
    pose = label[:16].reshape(4, 4)
    pose[0, :] *= -1
    pose[:, 0] *= -1
    k = label[16:].reshape(3, 3)
    k[0, 1] *= -1
    k[0, 2] = 1 - k[0, 2]
    return label


def parse_labels(meta, image_names, where):
    """float32 [N, 25] labels of `image_names` from a parsed dataset.json, or None when its
    labels are null. `where` names the file in error messages."""
    if not isinstance(meta, dict) or 'labels' not in meta:
        raise DatasetError(f'{where}: expected an object with a "labels" key')
    entries = meta['labels']
    if entries is None:
        return None
    if not isinstance(entries, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) for e in entries):
        raise DatasetError(f'{where}: "labels" must be a list of [image path, label] pairs')
    table = dict(entries)
    labels = np.empty((len(image_names), LABEL_DIM), dtype=np.float32)
    for i, name in enumerate(image_names):
        key = name.replace('\\', '/')
        if key not in table:
            raise DatasetError(f'{where}: no label for image {key}')
        labels[i] = check_label(table[key], where, key)
    return labels


def check_label(value, where, image):
    """A label value as float32 [25], or DatasetError naming the file and the image."""
    if (not isinstance(value, list) or len(value) != LABEL_DIM
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)):
        raise DatasetError(f'{where}: label of {image} is not a list of {LABEL_DIM} numbers')
    label = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(label)):
        raise DatasetError(f'{where}: label of {image} has a non-finite number')
    return label.astype(np.float32)


def is_image_name(name):
    PIL.Image.init()
    return os.path.splitext(name)[1].lower() in PIL.Image.EXTENSION
