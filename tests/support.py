"""Helpers shared by the tests: tiny real data in the project's on-disk formats.

``make_tiny_prepared`` writes a small prepared dataset (manifest + label and image LMDBs,
real JPEGs) directly through the contract's Datum primitives, so the nets, training and
evaluation tests do not depend on running the whole data_prep pipeline.  The images carry
a learnable signal: attribute t is "on" when a bright square is drawn in cell t of a grid.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import lmdb
import numpy as np

from g2s_caffe import layout


def synthetic_face(labels, size: int, rng: np.random.Generator) -> np.ndarray:
    """A BGR uint8 image whose pixels encode the labels (one grid cell per attribute)."""
    img = rng.integers(40, 90, size=(size, size, 3), dtype=np.uint8)
    n = len(labels)
    grid = int(np.ceil(np.sqrt(n)))
    cell = size // grid
    for t, y in enumerate(labels):
        if y:
            r, c = divmod(t, grid)
            pad = max(1, cell // 6)
            img[r * cell + pad:(r + 1) * cell - pad, c * cell + pad:(c + 1) * cell - pad] = (230, 230, 230)
    return img


PERSON_BASE = {"train": 1000, "val": 2000, "test": 3000}


def person_of(split: str, index: int, people: int) -> int:
    return PERSON_BASE[split] + index % people


def _sha_dir(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def make_tiny_prepared(root: Path, attributes: list[str], counts: dict[str, int] | None = None,
                       size: int = 32, schemes: tuple[str, ...] = ("a",), seed: int = 0,
                       jpeg_quality: int = 95, dataset: str = "tiny", people: int | None = None) -> Path:
    """Write a prepared dataset at ``root`` and return it (see g2s_caffe.layout).

    ``people``: also write identities_lmdb, image i of a split being person
    ``PERSON_BASE[split] + i % people`` (each split its own people, as CelebA's splits)."""
    counts = counts or {"train": 64, "val": 32, "test": 32}
    rng = np.random.default_rng(seed)
    root = Path(root)
    manifest = {"format": layout.FORMAT, "dataset": dataset, "attributes": list(attributes),
                "image_size": size, "encoding": "jpeg", "jpeg_quality": jpeg_quality,
                "schemes": list(schemes), "splits": {}, "tool": {"writer": "tests/support.py"},
                "parameters": {"seed": seed}}
    for split, n in counts.items():
        labels = rng.integers(0, 2, size=(n, len(attributes)))
        keys = [layout.key_for(i, f"{split}_{i:06d}.jpg") for i in range(n)]
        lm = {}
        whats = (layout.LABELS, *schemes) + ((layout.IDENTITIES,) if people else ())
        for what in whats:
            path = layout.lmdb_dir(root, split, what)
            path.mkdir(parents=True, exist_ok=True)
            env = lmdb.open(str(path), map_size=1 << 28)
            with env.begin(write=True) as txn:
                for i, key in enumerate(keys):
                    if what == layout.LABELS:
                        val = layout.label_datum(labels[i], i)
                    elif what == layout.IDENTITIES:
                        val = layout.identity_datum(person_of(split, i, people), i)
                    else:
                        img = synthetic_face(labels[i], size, rng)
                        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                        assert ok
                        val = layout.image_datum(buf.tobytes(), size, i)
                    txn.put(key.encode(), val)
            env.close()
            lm[what] = {"path": str(path.relative_to(root)), "sha256": _sha_dir(path)}
        manifest["splits"][split] = {
            "count": n, "keys_sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest(),
            "lmdbs": lm, "states": {"detected": n, "fallback": 0, "discarded": 0, "missing": 0}}
        if people:
            manifest["splits"][split][layout.IDENTITIES] = min(n, people)
    manifest["identities"] = bool(people)
    if people:
        manifest["identity_source"] = {"path": "tests/support.py", "sha256": "", "people": people}
    else:
        manifest["identity_note"] = "tests/support.py: written without identities"
    (root / layout.MANIFEST).write_text(json.dumps(manifest, indent=2))
    return root
