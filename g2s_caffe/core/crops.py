"""The paper's 8 attribute-aware crop schemes (§2.2, Eq. 3, Fig. 2).

Given the face box (X, Y, W, H) in the eye-aligned image, scheme (M, O) crops the square

    x0 = X - ((M + 1) * H - W) / 2        (horizontally centred on the box)
    y0 = Y + (2 * O - M) * H / 2          (M grows/shrinks the box evenly, O shifts it down)
    side = (1 + M) * H

M is the margin (relative to H), O the vertical offset (relative to H).  The paper states
Eq. 3 for H >= W; the formula is used as written for any box (MTCNN boxes are squared,
so W == H up to rounding).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CropScheme:
    name: str
    margin: float   # M
    offset: float   # O
    region: str     # what the crop emphasises (for docs and contact sheets)


CROP_SCHEMES: dict[str, CropScheme] = {s.name: s for s in (
    CropScheme("a", 0.0, 0.0, "the face box (Steps 1 and 2 use this scheme)"),
    CropScheme("b", 0.0, 0.1, "face box shifted down 0.1H: jaw, chin, mouth"),
    CropScheme("c", 0.1, 0.0, "face box enlarged 10%: whole face with its outline"),
    CropScheme("d", 0.1, -0.1, "enlarged and shifted up: forehead, hair, hat"),
    CropScheme("e", 0.1, 0.5, "enlarged and shifted down 0.45H: chin, neck, ears' lobes, chest"),
    CropScheme("f", -0.1, 0.0, "tightened 10%: inner face (eyes, nose, mouth, cheeks)"),
    CropScheme("g", -0.1, -0.1, "tightened and shifted up: eyes and eyebrows"),
    CropScheme("h", -0.1, 0.1, "tightened and shifted down: nose, mouth, cheeks"),
)}

# Steps 1 and 2 train on the plain face crop (Fig. 2(a)).
GENERAL_SCHEME = "a"


def crop_box(x: float, y: float, w: float, h: float, scheme: CropScheme | str) -> tuple[float, float, float]:
    """Eq. 3: the square crop (x0, y0, side) in the aligned image's pixel coordinates."""
    s = CROP_SCHEMES[scheme] if isinstance(scheme, str) else scheme
    side = (1.0 + s.margin) * h
    x0 = x - ((s.margin + 1.0) * h - w) / 2.0
    y0 = y + (2.0 * s.offset - s.margin) * h / 2.0
    return x0, y0, side
