"""Frame compression with Pillow: JPEG (quality chosen by the viewer) for the view, PNG for
what must arrive exactly (captures, the difference view)."""
import io

import numpy as np
from PIL import Image

from .protocol import ProtocolError

ENCODINGS = ('jpeg', 'png')
DEFAULT_JPEG_QUALITY = 90
MAX_PIXELS = 8192 * 8192


def encode_image(image, encoding='jpeg', quality=DEFAULT_JPEG_QUALITY):
    """uint8 [H, W, 3] (numpy) -> compressed bytes. JPEG keeps full-resolution colour (4:4:4):
    a face's colours matter more than the few bytes chroma subsampling saves."""
    out = io.BytesIO()
    picture = Image.fromarray(np.ascontiguousarray(image))
    if encoding == 'jpeg':
        picture.save(out, 'JPEG', quality=int(quality), subsampling=0)
    elif encoding == 'png':
        picture.save(out, 'PNG', compress_level=1)      # speed over a few % of size
    else:
        raise ValueError(f'encoding {encoding!r}; one of {ENCODINGS}')
    return out.getvalue()


def decode_image(data):
    """Compressed bytes -> uint8 [H, W, 3]; anything Pillow cannot read as a JPEG or PNG of a
    sane size is a ProtocolError."""
    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.format not in ('JPEG', 'PNG'):
                raise ProtocolError(f'a frame in {picture.format} format')
            if picture.width * picture.height > MAX_PIXELS:
                raise ProtocolError(f'a frame of {picture.width}x{picture.height} pixels')
            return np.asarray(picture.convert('RGB'))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ProtocolError(f'a frame that is not a readable image ({e})') from None
