"""JPEG bytes in and out: how every image the nets read is stored (LMDB Datums, regions, crops)."""
from __future__ import annotations

import numpy as np

from g2s_caffe.core.errors import G2SError


def encode_jpeg(img: np.ndarray, quality: int, where: str) -> bytes:
    """``img`` (BGR, H x W x 3) as JPEG bytes at ``quality``; ``where`` names it in the error."""
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise G2SError(f"{where}: JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(raw: bytes, where: str) -> np.ndarray:
    """JPEG bytes of a Datum as a BGR image (as Caffe's Data layer decodes them)."""
    import cv2

    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise G2SError(f"{where}: the image datum is not a decodable JPEG; rerun g2s prep")
    return img
