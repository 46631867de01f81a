"""A PNG that shows what was prepared: per sample face, the original with the detected box
and landmarks, then its crops (one column per scheme) with the landmarks carried into them."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from data_prep import align as al
from data_prep.images import load_image

LANDMARK_COLOURS = [(0, 255, 0), (0, 255, 0), (0, 200, 255), (255, 0, 255), (255, 0, 255)]  # BGR
TILE = 128


def _label(tile: np.ndarray, text: str) -> None:
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(tile, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)


def _points(tile: np.ndarray, pts, scale: float = 1.0) -> None:
    for (x, y), c in zip(np.asarray(pts) * scale, LANDMARK_COLOURS):
        cv2.circle(tile, (int(round(x)), int(round(y))), 2, c, -1, cv2.LINE_AA)


def render(samples, schemes: list[str], tile: int = TILE) -> np.ndarray:
    """samples: (record, cache entry) pairs of detected faces."""
    rows = []
    for rec, entry in samples:
        img, _ = load_image(Path(rec.path))
        alignment = al.Alignment.from_json(entry["alignment"])
        # The original, letterboxed into a tile, with the detected box and landmarks.
        h, w = img.shape[:2]
        s = tile / max(h, w)
        orig = np.zeros((tile, tile, 3), np.uint8)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        orig[:small.shape[0], :small.shape[1]] = small
        x1, y1, x2, y2 = (np.asarray(entry["face"]["box"]) * s).round().astype(int)
        cv2.rectangle(orig, (x1, y1), (x2, y2), (0, 255, 255), 1)
        _points(orig, entry["face"]["landmarks"], s)
        _label(orig, rec.name[-18:])
        tiles = [orig]
        crops = al.crops(img, alignment, schemes, tile)
        for sch in schemes:
            t = crops[sch].copy()
            _points(t, al.apply(al.crop_matrix(alignment, sch, tile), alignment.landmarks))
            _label(t, f"{sch}: M {al.CROP_SCHEMES[sch].margin:+.1f}, O {al.CROP_SCHEMES[sch].offset:+.1f}")
            tiles.append(t)
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def write_contact_sheet(path: Path, samples, schemes: list[str]) -> Path:
    sheet = render(samples, schemes)
    ok, buf = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    from g2s_caffe.core.atomic import write_atomic

    return write_atomic(Path(path), buf.tobytes())
