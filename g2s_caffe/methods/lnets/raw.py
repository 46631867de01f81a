"""The raw images behind a prepared split, and the dataset's face boxes (LNets, part 2).

LNets read whole images, not `g2s prep`'s crops: LNet_o the image itself, LNet_s its
head-shoulder window, ANet (end to end) the face window LNets found.  A prepared split names
its images in its LMDB keys (``f"{index:08d}_{name}"``, g2s_caffe/core/layout.py) and its manifest
records where they came from (``sources["images"]``: CelebA's img_celeba/, LFW's lfw/), so
``RawImages`` finds each key's file; ``--images DIR`` overrides that folder (a moved copy).
The labels stay the prepared labels LMDB's, under the same keys.

Reference boxes (``reference_boxes``) are only for the localization evaluation (Fig. 7) and
for cutting background crops for the face threshold; LNets' training never reads a box.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.errors import G2SError


@dataclass(frozen=True)
class SplitItems:
    """A prepared split in key order: keys, the dataset's image names, labels (N, T)."""
    split: str
    keys: list[str]
    names: list[str]
    labels: np.ndarray


def name_of(key: str) -> str:
    """The dataset's image name in a prepared key ("00000012_000123.jpg" -> "000123.jpg")."""
    index, sep, name = key.partition("_")
    if not sep or not index.isdigit() or not name:
        raise G2SError(f"LMDB key {key!r} is not '<index>_<image name>' (g2s_caffe/core/layout.py); rerun g2s prep")
    return name


def split_items(data: layout.PreparedDataset, split: str) -> SplitItems:
    """Keys, names and labels of a prepared split, read from its labels LMDB."""
    keys, labels = data.read_indexed(split, layout.LABELS, layout.parse_label_datum)
    arr = np.asarray(labels, np.float32).reshape(len(keys), len(data.attributes))
    return SplitItems(split, keys, [name_of(k) for k in keys], arr)


class RawImages:
    """key -> the raw image file of a prepared dataset, read as 8-bit BGR."""

    def __init__(self, data: layout.PreparedDataset, images_dir: Path | None = None):
        self.data = data
        src = (data.manifest.get("sources") or {}).get("images")
        if images_dir is None and not src:
            raise G2SError(f"{data.root / layout.MANIFEST}: records no image folder (sources.images), so the raw "
                           "images LNets read cannot be found; pass --images DIR (the dataset's image folder, "
                           "e.g. img_celeba/) or rerun g2s prep")
        self.folder = Path(images_dir or src)
        if not self.folder.is_dir():
            raise G2SError(f"{self.folder}: the dataset's image folder (named in {data.root / layout.MANIFEST}) is "
                           "missing; pass --images DIR where the raw images are now")

    def path(self, key: str) -> Path:
        return self.folder / name_of(key)

    def load(self, key: str) -> np.ndarray:
        from data_prep.images import BadImage, load_image

        p = self.path(key)
        try:
            img, _ = load_image(p)
        except BadImage as e:
            raise G2SError(f"{p} (prepared key {key}): {e}; restore the file (g2s prep read it) or pass --images")
        return img

    def identity(self) -> dict:
        return {"folder": str(self.folder.resolve())}


def reference_boxes(data: layout.PreparedDataset) -> tuple[dict[str, np.ndarray] | None, str]:
    """({image name: (1, 4) box [x1, y1, x2, y2)}, where from) — CelebA's list_bbox_celeba.txt
    (also the demo's); (None, why) for a dataset without face boxes (LFWA)."""
    from g2s_caffe.methods.lnets.loc_eval import read_reference_boxes

    path = (data.manifest.get("sources") or {}).get("bbox")
    if not path:
        return None, (f"{data.root / layout.MANIFEST}: the dataset has no face-box file (sources.bbox; LFWA has "
                      "none, CelebA's is list_bbox_celeba.txt)")
    if not Path(path).is_file():
        return None, f"{path}: the face-box file named in {data.root / layout.MANIFEST} is missing"
    return read_reference_boxes(Path(path)), str(path)
