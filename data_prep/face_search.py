"""Where `g2s prep` looks for the dataset's face: near the dataset's face box, then in the whole image.

CelebA gives a face box per image, LFW a centred one (records.DatasetIndex).  P-Net first
looks only at the box enlarged by SEARCH_MARGIN of its longer side on every side, at the
pyramid scales at which its 12-px cell fits there (MTCNN.detect's ``region``): in a group
photo the annotated person's surroundings only, and fewer pixels (not many fewer on CelebA's
framing, where the face is a large part of the picture: 5-7 % less detection time on the
benchmark's photos).  The cells and their outputs there are the whole image's, so a face well
inside the region is found as a whole-image detection finds it.  When no detection there is
the dataset's face (align.choose_face), the whole image is searched; when that finds none
either, prep falls back to the dataset's box (test images) or discards the image (paper §3.1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from data_prep.align import choose_face

SEARCH_MARGIN = 0.5
# Where a kept image's face came from (the report's "path" column): found near the dataset's
# box, found in the whole image, or the dataset's own box and landmarks (the fallback).
BOX, IMAGE, DATASET = "box", "image", "dataset"


@dataclass(frozen=True)
class Found:
    """The outcome of a search: the accepted face (or None), why, how many faces the last
    search detected, and where the face was found (BOX, IMAGE, or "" when nowhere)."""
    face: object
    why: str
    faces: int
    path: str


def search_region(box_xywh, width: int, height: int, margin: float = SEARCH_MARGIN) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), x1 and y1 exclusive: the box grown by margin x its longer side on
    every side, in whole pixels, within the image."""
    x, y, w, h = (float(v) for v in box_xywh)
    grow = margin * max(w, h)
    return (max(0, math.floor(x - grow)), max(0, math.floor(y - grow)),
            min(width, math.ceil(x + w + grow)), min(height, math.ceil(y + h + grow)))


def find_face(detector, img, ref_box, ref_landmarks, name: str) -> Found:
    """Search near ``ref_box`` (x, y, w, h; skipped when None), then the whole image."""
    height, width = img.shape[:2]
    missed = ""
    if ref_box is not None:
        faces = detector.detect(img, name=name, region=search_region(ref_box, width, height))
        face, why = choose_face(faces, ref_box, ref_landmarks)
        if face is not None:
            return Found(face, why, len(faces), BOX)
        missed = f"near the dataset's box: {why}; in the whole image: "
    faces = detector.detect(img, name=name)
    face, why = choose_face(faces, ref_box, ref_landmarks)
    return Found(face, why if face is not None else missed + why, len(faces), IMAGE if face is not None else "")
