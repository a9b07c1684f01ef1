"""Pictures from any file Pillow reads, as 8-bit arrays with the right scaling, for the tools
that take pictures in (inversion targets, dataset_tool sources).

Pillow's own convert('RGB') clips 16-bit grey (I;16) to 255, so a 16-bit PNG became all white;
here 16-bit and 32-bit integer grey are divided by 257 (65535 -> 255), float grey in [0, 1]
is multiplied by 255 (other float ranges are taken as 0-255), palette and CMYK go through
Pillow's conversions, and transparent pixels (LA, RGBA, PA, a palette's transparent index)
are composited onto white, the demo network's background. A file claiming more pixels than
Pillow's decompression-bomb limit is refused from its header, before anything is decoded."""
import io
import re
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

WHITE = 255


class PictureError(Exception):
    """A file that is not a usable picture; one line naming it."""


def read_picture(source, where=None, grey=False):
    """A path or the bytes of a file -> uint8 array H x W x 3 (with `grey`, a grey picture
    stays H x W). Raises PictureError naming `where` (default: the path)."""
    where = where or str(source)
    try:
        with warnings.catch_warnings():
            # between Pillow's warning and error limits: decoded, without a warning's 2 lines
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
                img.load()
                return to_uint8(img, grey)
    except FileNotFoundError:
        raise PictureError(f'{where}: no such file') from None
    except IsADirectoryError:
        raise PictureError(f'{where}: is a folder, not a picture') from None
    except Image.DecompressionBombError as e:
        pixels = re.search(r'\((\d+) pixels\)', str(e))
        claims = f'claims {int(pixels.group(1)):,} pixels' if pixels else 'is too large'
        raise PictureError(f'{where}: {claims}, more than the {2 * Image.MAX_IMAGE_PIXELS:,} '
                           'a picture may have (a decompression bomb?)') from None
    except UnidentifiedImageError:
        raise PictureError(f'{where}: not an image') from None
    except (OSError, SyntaxError, ValueError) as e:
        raise PictureError(f'{where}: cannot read the picture ({e})') from None


def to_uint8(img, grey=False):
    """A Pillow image of any mode -> uint8 H x W x 3 (or H x W for grey input with `grey`)."""
    if img.mode in ('I', 'F') or img.mode.startswith('I;'):
        values = np.asarray(img, dtype=np.float64)
        if img.mode == 'F':
            values = values * 255 if values.size and np.nanmax(values) <= 1 else values
        else:
            values = values / 257
        array = np.nan_to_num(values).round().clip(0, 255).astype(np.uint8)
        return array if grey else np.repeat(array[:, :, None], 3, axis=2)
    if img.mode == '1':
        img = img.convert('L')
    if img.mode == 'P':
        img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
    if img.mode in ('LA', 'La', 'PA', 'RGBA', 'RGBa'):
        img = img.convert('RGBA')
        background = Image.new('RGBA', img.size, (WHITE,) * 4)
        img = Image.alpha_composite(background, img).convert('L' if grey and _is_grey(img)
                                                             else 'RGB')
    if img.mode == 'L':
        array = np.asarray(img)
        return array if grey else np.repeat(array[:, :, None], 3, axis=2)
    return np.asarray(img.convert('RGB'))


def _is_grey(img):
    r, g, b, _ = img.split()
    return r.tobytes() == g.tobytes() == b.tobytes()
