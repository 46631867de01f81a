"""Eye alignment and the 8 attribute-aware crops (paper §2.2 Eq. 3, §3.1).

For each image, once:
1. pick the face (``choose_face``): among MTCNN's detections, the one that is the dataset's
   labelled face.  With dataset landmarks: the smallest mean distance between the detected
   and the dataset's 5 points, normalised by the dataset's inter-ocular distance, accepted if
   <= MAX_LANDMARK_ERROR (0.5: a detection of the same face is typically below 0.1, a
   neighbour is several eye-distances away).  Without landmarks (LFW): the largest IoU with
   the dataset's reference box, accepted if >= MIN_IOU.  No detection accepted = no face.
2. ``align``: rotate about the eye centre so the eye line is horizontal; the face box in the
   rotated image is the detected box's centre carried through the rotation, keeping W and H
   (an upright box of the same size: the rotated corners' bounding box would grow by up to
   41% at 45 degrees and change every crop's scale with head roll).
Then for each scheme, ``crop_matrix`` composes rotation, Eq. 3 and the resize to S x S into
ONE affine map, so every crop is a single ``cv2.warpAffine`` (one interpolation).

Padding: a crop that leaves the image is filled with constant black, never shifted.  Black
says "no picture here"; replicated borders would invent texture (streaks of hair, collar or
skin) exactly where attributes such as hats, necklaces and neckties are judged.
Strong downscaling (a face box taller than 2 S px) is pre-shrunk once per image to a box of
2 S px with area averaging, against aliasing; the composed maps keep the geometry exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from g2s_caffe.core.crops import CROP_SCHEMES, crop_box

MAX_LANDMARK_ERROR = 0.5
MIN_IOU = 0.3
PAD_VALUE = (0, 0, 0)
# box_from_landmarks: side = K * eye-to-mouth distance, centre this fraction of the side
# below the eye centre (measured on MTCNN detections of frontal faces: 2.8-3.0 and 0.13-0.17).
SIDE_PER_EYE_MOUTH = 2.9
CENTRE_BELOW_EYES = 0.15


def iou(a, b) -> float:
    """IoU of two boxes given as x1, y1, x2, y2."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def xywh_to_xyxy(box) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (x, y, x + w, y + h)


def box_from_landmarks(landmarks) -> tuple[float, float, float, float]:
    """A square face box (x, y, w, h) from 5 landmarks (for CelebA's aligned release, which has
    no box file): centred on the eye-mouth axis, CENTRE_BELOW_EYES * side below the eye
    centre, side = SIDE_PER_EYE_MOUTH * eye-to-mouth distance (the proportions of an MTCNN box)."""
    p = np.asarray(landmarks, dtype=np.float64)
    eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    axis = mouth - eyes
    dist = float(np.hypot(*axis))
    if dist == 0:
        dist = float(np.hypot(*(p[1] - p[0]))) or 1.0
        axis = np.array([0.0, dist])
    side = SIDE_PER_EYE_MOUTH * dist
    centre = eyes + axis / dist * CENTRE_BELOW_EYES * side
    return (float(centre[0] - side / 2), float(centre[1] - side / 2), side, side)


def centre_box(width: int, height: int, fraction: float) -> tuple[float, float, float, float]:
    side = fraction * min(width, height)
    return ((width - side) / 2, (height - side) / 2, side, side)


def choose_face(faces, ref_box=None, ref_landmarks=None):
    """(face or None, why): the detection that is the dataset's face (see the module doc).

    ``faces`` have .box (x1, y1, x2, y2), .score, .landmarks (5, 2); ``ref_box`` is x, y, w, h.
    """
    if not faces:
        return None, "no face detected"
    if ref_landmarks is not None:
        ref = np.asarray(ref_landmarks, dtype=np.float64)
        iod = float(np.hypot(*(ref[1] - ref[0]))) or 1.0
        errs = [float(np.mean(np.hypot(*(np.asarray(f.landmarks) - ref).T))) / iod for f in faces]
        best = int(np.argmin(errs))
        if errs[best] <= MAX_LANDMARK_ERROR:
            return faces[best], f"landmark error {errs[best]:.3f}"
        return None, (f"{len(faces)} face(s) detected, none at the dataset's landmarks "
                      f"(best normalised error {errs[best]:.2f} > {MAX_LANDMARK_ERROR})")
    if ref_box is not None:
        ref = xywh_to_xyxy(ref_box)
        ious = [iou(np.asarray(f.box, dtype=np.float64), ref) for f in faces]
        best = int(np.argmax(ious))
        if ious[best] >= MIN_IOU:
            return faces[best], f"IoU {ious[best]:.3f}"
        return None, (f"{len(faces)} face(s) detected, none on the dataset's face box "
                      f"(best IoU {ious[best]:.2f} < {MIN_IOU})")
    return faces[0], "highest score (no dataset box or landmarks)"


@dataclass(frozen=True)
class Alignment:
    """An image's face, eye-aligned: everything the crops need (cached as JSON)."""
    angle: float                      # degrees, counter-clockwise rotation applied
    centre: tuple[float, float]       # rotation centre (the eye centre)
    box: tuple[float, float, float, float]   # X, Y, W, H of the face in the rotated image
    landmarks: tuple[tuple[float, float], ...] | None   # in the original image

    def rotation(self) -> np.ndarray:
        """2x3 map from original to rotated image coordinates."""
        return cv2.getRotationMatrix2D((float(self.centre[0]), float(self.centre[1])), float(self.angle), 1.0)

    def to_json(self) -> dict:
        return {"angle": self.angle, "centre": list(self.centre), "box": list(self.box),
                "landmarks": None if self.landmarks is None else [list(p) for p in self.landmarks]}

    @classmethod
    def from_json(cls, d: dict) -> "Alignment":
        lm = d["landmarks"]
        return cls(float(d["angle"]), tuple(d["centre"]), tuple(d["box"]),
                   None if lm is None else tuple(tuple(p) for p in lm))


def align(box_xyxy, landmarks=None) -> Alignment:
    """Rotate about the eye centre so the eyes are level; the box keeps its size (module doc).

    Without landmarks (a fallback on a dataset with none) there is no rotation."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    bc = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    if landmarks is None:
        return Alignment(0.0, (float(bc[0]), float(bc[1])), (x1, y1, x2 - x1, y2 - y1), None)
    p = np.asarray(landmarks, dtype=np.float64)
    left, right = p[0], p[1]
    centre = (left + right) / 2
    angle = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
    a = Alignment(angle, (float(centre[0]), float(centre[1])), (0, 0, 0, 0),
                  tuple((float(x), float(y)) for x, y in p))
    cx, cy = a.rotation() @ np.array([bc[0], bc[1], 1.0])
    w, h = x2 - x1, y2 - y1
    return Alignment(angle, a.centre, (float(cx - w / 2), float(cy - h / 2), w, h), a.landmarks)


def crop_matrix(al: Alignment, scheme: str, size: int) -> np.ndarray:
    """2x3 affine map from original image coordinates to the S x S crop of ``scheme``."""
    x0, y0, side = crop_box(*al.box, CROP_SCHEMES[scheme])
    s = size / side
    rot = al.rotation()
    return np.vstack([s * rot[0] - [0, 0, s * x0], s * rot[1] - [0, 0, s * y0]])


def apply(m: np.ndarray, points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def crops(img: np.ndarray, al: Alignment, schemes, size: int) -> dict[str, np.ndarray]:
    """The S x S BGR crop of every scheme, each one warpAffine of the (pre-shrunk) image."""
    mats = {s: crop_matrix(al, s, size) for s in schemes}
    # The pre-shrink depends on the face box only, never on which schemes are asked for,
    # so a scheme's crop is the same whatever else is cropped with it.
    scale = size / max(float(al.box[3]), 1e-6)
    src, pre = img, np.eye(3)
    if scale < 0.5:
        h, w = img.shape[:2]
        nw, nh = max(1, round(w * 2 * scale)), max(1, round(h * 2 * scale))
        src = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        # INTER_AREA maps pixel centres: u' = (u + 0.5) * nw / w - 0.5
        fx, fy = nw / w, nh / h
        pre = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
    out = {}
    inv_pre = np.linalg.inv(pre)
    for s, m in mats.items():
        m_src = (np.vstack([m, [0, 0, 1]]) @ inv_pre)[:2]
        out[s] = cv2.warpAffine(src, m_src, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=PAD_VALUE)
    return out
