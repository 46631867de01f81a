"""Read one image file as 8-bit BGR, or say precisely why it cannot be used.

Handled by conversion (noted in the report): grayscale and palette images (to 3 channels),
CMYK JPEG (to BGR by libjpeg), 16-bit PNG (to 8 bits), an alpha channel (dropped).
Refused with a reason (the image is discarded, the run goes on): a zero-byte file, a file
that is not an image, a truncated or corrupt JPEG (no end-of-image marker, or undecodable),
an image over MAX_PIXELS (a decompression bomb or a scan that is no face photo).
EXIF orientation is ignored on purpose: the datasets' boxes and landmarks are in the stored
pixel grid.
"""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 50_000_000
_TAIL = 1 << 16


class BadImage(Exception):
    """The file cannot be used; str() is the reason for the report."""


def load_image(path: Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str]:
    """(BGR uint8 image, conversion note or '')."""
    from PIL import Image

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadImage(f"cannot read file ({e.strerror})") from e
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:   # header only: size and mode
            width, height = im.size
            mode, fmt = im.mode, im.format
    except Image.DecompressionBombError as e:
        raise BadImage(f"image too large ({e})") from e
    except Exception as e:
        raise BadImage(f"not a readable image file ({type(e).__name__}: {e})") from e
    if width * height > max_pixels:
        raise BadImage(f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")
    if fmt == "JPEG" and data[-_TAIL:].rfind(b"\xff\xd9") < 0:
        raise BadImage("truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None or img.shape[0] != height or img.shape[1] != width:
        raise BadImage(f"corrupt {fmt or 'image'} data (cannot decode)")
    notes = []
    if mode in ("RGBA", "LA", "PA"):
        notes.append("dropped alpha")
    if mode not in ("RGB", "RGBA"):
        notes.append(f"converted {mode} to BGR")
    if fmt == "PNG" and _png_bit_depth(data) == 16:
        notes.append("16-bit to 8-bit")
    return np.ascontiguousarray(img), "; ".join(dict.fromkeys(notes))


def _png_bit_depth(data: bytes) -> int:
    # IHDR: 8-byte signature, 4 length, 4 "IHDR", 4 width, 4 height, 1 bit depth.
    return data[24] if len(data) > 24 and data[12:16] == b"IHDR" else 0
