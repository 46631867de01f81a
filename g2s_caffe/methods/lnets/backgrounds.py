"""Background (face-free) images for LNets' face threshold (§2.1, Fig. 3(b)), with no download.

The paper draws 2,000 backgrounds from SUN.  Here: (1) crops of the dataset's own images away
from their labelled face (``crops_away_from``), and (2) face-free photographs shipped in registry
packages (``registry_backgrounds``): scikit-image's data images without a person (chelsea is a
cat's face: the paper stresses that LNets tell cats from people) and the surgical-mask textures
of the insightface wheel (data_prep/photos.py: neither MTCNN finds a face in them).
"""
from __future__ import annotations

import numpy as np

from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.lnets import boxes as bx

# scikit-image 0.22's data images that ship in its wheel and show no human face (astronaut and
# camera, the cameraman, do; lfw_subset is faces).  Grey ones are made 3-channel.
SKIMAGE_BACKGROUNDS = ("chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                       "colorwheel", "clock", "coins", "brick", "grass", "gravel", "moon", "page", "text",
                       "cell", "retina")
MASK_PHOTOS = ("mask_black.jpg", "mask_blue.jpg", "mask_green.jpg", "mask_white.jpg")
# A background crop stays clear of the face box enlarged by this factor about its centre
# (hair, ears and chin stay out of it), and is at least this many pixels on each side.
FACE_CLEARANCE = 1.5
MIN_CROP_SIDE = 48


def registry_backgrounds(include_masks: bool = True) -> list[tuple[str, np.ndarray]]:
    """[(name, BGR uint8 image)] of the face-free registry photos."""
    import cv2
    import skimage.data

    out = []
    for name in SKIMAGE_BACKGROUNDS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype != np.uint8:
            img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.dtype.kind == "f" else img.astype(np.uint8)
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else cv2.cvtColor(img[:, :, :3], cv2.COLOR_RGB2BGR)
        out.append((f"skimage:{name}", img))
    if include_masks:
        from data_prep.photos import photo_path

        for name in MASK_PHOTOS:
            img = cv2.imread(str(photo_path(name)), cv2.IMREAD_COLOR)
            if img is None:
                raise G2SError(f"{photo_path(name)}: unreadable; rerun `make setup`")
            out.append((f"photo:{name}", img))
    return out


def crops_away_from(image_size: tuple[int, int], face_box, clearance: float = FACE_CLEARANCE,
                    min_side: int = MIN_CROP_SIDE) -> np.ndarray:
    """The largest square crops [x1, y1, x2, y2) of an image of ``image_size`` (width, height)
    left of, right of, above and below the face box enlarged by ``clearance``, each inside the
    image, clear of the enlarged box and at least ``min_side`` px: (K, 4), K = 0..4."""
    w, h = image_size
    x1, y1, x2, y2 = (float(v) for v in face_box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = clearance * (x2 - x1) / 2, clearance * (y2 - y1) / 2
    ex1, ey1, ex2, ey2 = max(0.0, cx - hw), max(0.0, cy - hh), min(float(w), cx + hw), min(float(h), cy + hh)
    regions = [(0.0, 0.0, ex1, float(h)), (ex2, 0.0, float(w), float(h)),      # left, right strips
               (0.0, 0.0, float(w), ey1), (0.0, ey2, float(w), float(h))]      # above, below
    out = []
    for rx1, ry1, rx2, ry2 in regions:
        side = min(rx2 - rx1, ry2 - ry1)
        if side < min_side:
            continue
        # the square centred on the part of the strip nearest the face's centre line
        sx = min(max(cx - side / 2, rx1), rx2 - side)
        sy = min(max(cy - side / 2, ry1), ry2 - side)
        ax, ay = np.ceil(sx), np.ceil(sy)            # whole pixels, inside the strip
        n = min(np.floor(sx + side) - ax, np.floor(sy + side) - ay)
        if n >= min_side:
            out.append((ax, ay, ax + n, ay + n))
    return bx.as_boxes(out)
