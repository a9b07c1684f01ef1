"""The Inception-v3 feature detector for FID, its weights file, and how that file is obtained.

Which weights, and why: the official metrics load NVIDIA's `inception-2015-12-05.pkl`, a pickle
that rebuilds a TorchScript module, i.e. loading it runs the code stored in it. Its tensors could
be read from the archive without executing anything, but the forward pass (its own TF-style
resize and layer wiring) lives only as TorchScript code in that file and could not be checked
here, so this module uses the widely used PyTorch port of the same TF graph instead:
pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, a plain state dict read with
`torch.load(weights_only=True)` (no code execution). It holds the same 2015-12-05 weights; FIDs
agree with the official detector to within the small differences of the input resize.

`InceptionFID` is our own module whose parameter names match that state dict: torchvision's
Inception3 layout with the FID-graph differences (pool branches average without the padded zeros,
the last block's pool branch takes a max). Input uint8 [N,3,H,W] -> pool3 features [N,2048].

The file is looked for at the path given as argument, then `$EG3D_INCEPTION_PATH`, then in the
cache dir (`$EG3D_CACHE_DIR` or `~/.cache/eg3d`), and downloaded there on first use (resumable,
checked against the hash in its name, moved into place atomically). Without it a one-line
`MetricUnavailable` says which file is needed and where to put it.
"""
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..files import atomic_open

__all__ = ['DETECTOR_ID', 'InceptionFID', 'MetricUnavailable', 'WEIGHTS_FILE', 'WEIGHTS_URL',
           'cache_dir', 'download_weights', 'get_inception', 'load_inception', 'weights_path']

WEIGHTS_FILE = 'pt_inception-2015-12-05-6726825d.pth'
WEIGHTS_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
               + WEIGHTS_FILE)
WEIGHTS_SHA256_PREFIX = '6726825d'
DETECTOR_ID = 'pt_inception-2015-12-05'
PATH_ENV = 'EG3D_INCEPTION_PATH'


class MetricUnavailable(RuntimeError):
    """A metric that cannot be computed here (missing detector file, unimplemented metric);
    the message is one line, and training reports it and goes on."""


def cache_dir():
    return Path(os.environ.get('EG3D_CACHE_DIR') or Path.home() / '.cache' / 'eg3d')


# ----------------------------------------------------------------------------------------------
# Network.

class _Conv(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3, running statistics), ReLU."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled 1x1 branches."""

    def __init__(self, cin, pool_channels):
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1 = _Conv(cin, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool_channels, 1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x))], 1)


class _ReductionB(nn.Module):
    """35x35 -> 17x17."""

    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2)], 1)


class _BlockC(nn.Module):
    """17x17 block with factorised 7x7 branches of width c7."""

    def __init__(self, cin, c7):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, **row)
        self.branch7x7_3 = _Conv(c7, 192, **col)
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, **col)
        self.branch7x7dbl_3 = _Conv(c7, c7, **row)
        self.branch7x7dbl_4 = _Conv(c7, c7, **col)
        self.branch7x7dbl_5 = _Conv(c7, 192, **row)
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x):
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([self.branch1x1(x), single, double, self.branch_pool(_avg_pool(x))], 1)


class _ReductionD(nn.Module):
    """17x17 -> 8x8."""

    def __init__(self, cin):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch3x3_1 = _Conv(cin, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, **row)
        self.branch7x7x3_3 = _Conv(192, 192, **col)
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x):
        seven = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            seven = layer(seven)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven,
                          F.max_pool2d(x, 3, stride=2)], 1)


class _BlockE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs; `max_pool` marks the FID graph's last block."""

    def __init__(self, cin, max_pool):
        super().__init__()
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        self.max_pool = max_pool
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, **row)
        self.branch3x3_2b = _Conv(384, 384, **col)
        self.branch3x3dbl_1 = _Conv(cin, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, **row)
        self.branch3x3dbl_3b = _Conv(384, 384, **col)
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x):
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(single), self.branch3x3_2b(single),
            self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
            self.branch_pool(pooled)], 1)


class InceptionFID(nn.Module):
    """Inception-v3 of the TF 2015-12-05 FID graph up to pool3; uint8 images -> [N, 2048].

    Images of any size are resized bilinearly to 299x299 and scaled to [-1, 1], as pytorch-fid
    does for these weights. Built in eval mode: batch norm uses the stored statistics."""
    detector_id = DETECTOR_ID
    feature_dim = 2048

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _BlockA(192, 32)
        self.Mixed_5c = _BlockA(256, 64)
        self.Mixed_5d = _BlockA(288, 64)
        self.Mixed_6a = _ReductionB(288)
        self.Mixed_6b = _BlockC(768, 128)
        self.Mixed_6c = _BlockC(768, 160)
        self.Mixed_6d = _BlockC(768, 160)
        self.Mixed_6e = _BlockC(768, 192)
        self.Mixed_7a = _ReductionD(768)
        self.Mixed_7b = _BlockE(1280, max_pool=False)
        self.Mixed_7c = _BlockE(2048, max_pool=True)
        self.eval().requires_grad_(False)

    def forward(self, images):
        x = images.to(torch.float32) / 255
        x = F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False) * 2 - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ('5b', '5c', '5d', '6a', '6b', '6c', '6d', '6e', '7a', '7b', '7c'):
            x = getattr(self, f'Mixed_{name}')(x)
        return x.mean(dim=(2, 3))


# ----------------------------------------------------------------------------------------------
# Weights file.

def _unavailable(problem):
    problem = ' '.join(str(problem).split())
    return MetricUnavailable(
        f'{problem}; FID needs the Inception weights {WEIGHTS_FILE} ({WEIGHTS_URL}): put it at '
        f'{cache_dir() / WEIGHTS_FILE} or give its path with ${PATH_ENV} or the trainer\'s '
        f'--inception option')


def download_weights(dest, url=None, sha256_prefix=WEIGHTS_SHA256_PREFIX, timeout=60):
    """Fetch url (default WEIGHTS_URL) into dest via dest.part: an interrupted download resumes
    with a Range request; the finished file must match the sha256 prefix (the one in the weights
    file's name) before it is moved into place."""
    dest, url = Path(dest), url or WEIGHTS_URL
    part = dest.with_name(dest.name + '.part')
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={'Range': f'bytes={have}-'} if have else {})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 416:
                raise
            response = None  # 416: the partial file is already complete
        restart = response is not None and response.status != 206
        with atomic_open(dest, 'wb' if restart else 'ab', part=part) as f:
            if response is not None:
                with response:
                    while chunk := response.read(1 << 20):
                        f.write(chunk)
            f.flush()
            if not _sha256(part).startswith(sha256_prefix):
                part.unlink()
                raise _unavailable(f'downloaded {url} has the wrong sha256 (removed; try again)')
    except (OSError, urllib.error.URLError) as exc:
        raise _unavailable(f'cannot download {url}: {exc}') from None
    return dest


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path(path=None, download=True):
    """The weights file: `path`, else `$EG3D_INCEPTION_PATH`, else the cache (fetched if absent)."""
    given = path or os.environ.get(PATH_ENV)
    if given:
        if not Path(given).is_file():
            raise _unavailable(f'{given}: no such file')
        return Path(given)
    cached = cache_dir() / WEIGHTS_FILE
    if cached.is_file():
        return cached
    if not download:
        raise _unavailable(f'{cached} not found')
    return download_weights(cached)


def load_inception(path, device='cpu'):
    """InceptionFID with the weights of the pytorch-fid state dict at `path`.

    The file must hold exactly the module's parameters and batch-norm statistics; it may also
    hold the classifier (`fc.*`, unused for pool3 features) and `num_batches_tracked` counters."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # any unreadable file: zip, pickle or tensor errors
        first_line = (str(exc).strip().splitlines() or [''])[0]
        raise _unavailable(f'{path}: cannot be read ({type(exc).__name__}: {first_line})') \
            from None
    if not isinstance(state, dict):
        raise _unavailable(f'{path}: not a state dict')
    module = InceptionFID()
    expected = {k: v for k, v in module.state_dict().items()
                if not k.endswith('num_batches_tracked')}
    for key, value in expected.items():
        found = state.get(key)
        if not isinstance(found, torch.Tensor) or found.shape != value.shape:
            problem = 'missing' if found is None else f'shape {tuple(getattr(found, "shape", ()))}'
            raise _unavailable(f'{path}: not the pytorch-fid Inception weights ({key}: {problem})')
    extra = [k for k in state if k not in expected
             and not k.startswith('fc.') and not k.endswith('num_batches_tracked')]
    if extra:
        raise _unavailable(f'{path}: not the pytorch-fid Inception weights (unexpected {extra[0]})')
    module.load_state_dict({**module.state_dict(), **{k: state[k] for k in expected}})
    return module.to(device)


_loaded = {}


def get_inception(device='cpu', path=None, download=True):
    """The detector for `device`, loaded once per process and file."""
    file = weights_path(path, download)
    key = (str(file), str(device))
    if key not in _loaded:
        _loaded[key] = load_inception(file, device)
    return _loaded[key]
