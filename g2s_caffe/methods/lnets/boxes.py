"""Boxes for LNets' localization and its evaluation: continuous image coordinates
[x1, y1, x2, y2) (a pixel j covers [j, j + 1)), IoU, conversions."""
from __future__ import annotations

import numpy as np


def as_boxes(boxes) -> np.ndarray:
    """(K, 4) float64 array of [x1, y1, x2, y2] rows (an empty list gives (0, 4))."""
    b = np.asarray(boxes, dtype=np.float64)
    return b.reshape(-1, 4)


def xywh_to_xyxy(box) -> tuple[float, float, float, float]:
    """CelebA's list_bbox_celeba.txt "x_1 y_1 width height" -> [x1, y1, x2, y2)."""
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)


def areas(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def iou_matrix(a, b) -> np.ndarray:
    """(len(a), len(b)) intersection over union; 0 where the union is empty."""
    a, b = as_boxes(a), as_boxes(b)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    union = areas(a)[:, None] + areas(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def clip_boxes(boxes, width: float, height: float) -> np.ndarray:
    b = as_boxes(boxes).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    return b
