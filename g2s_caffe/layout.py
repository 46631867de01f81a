"""The on-disk contract between data_prep (writer) and the nets/trainer/eval (readers).

One prepared dataset is a directory (``g2s prep ... --out DIR``)::

    DIR/manifest.json                  the dataset manifest (below)
    DIR/<split>/labels_lmdb/           one Datum per image: the T binary labels
    DIR/<split>/<scheme>_lmdb/         one Datum per image: the JPEG of crop <scheme>
    DIR/<split>/report.csv             every input image of the split and its state

Keys.  Both LMDBs of a split hold exactly the same keys, ``f"{index:08d}_{name}"``
(index = 0-based position in the split, name = the dataset's image name); LMDB iterates
keys in byte order, so both are read in the same order.  Every Datum's ``label`` field is
the index, so a net can check that its two Data layers are in step.

Images.  ``Datum(encoded=True, data=<JPEG bytes>, channels=3, height=S, width=S)`` with S
the manifest's ``image_size`` (240 for the paper).  Caffe's Data layer decodes it
(OpenCV, BGR order) and applies crop/mirror/mean.  JPEG quality: manifest ``jpeg_quality``.

Labels.  ``Datum(channels=T, height=1, width=1, float_data=[y_1 .. y_T])`` with y in {0, 1}
(CelebA's -1 becomes 0), attributes in the manifest's order.  A Data layer without a
transform_param yields a (N, T, 1, 1) blob; ``Slice`` (axis 1) gives one (N, 1, 1, 1) label
per attribute for its ``SoftmaxWithLoss``/``Accuracy``.

Why two LMDBs (not one): ``Datum.label`` is a single int32, 40 binary labels do not fit;
an encoded Datum has no room for float labels (the transformer ignores float_data of
encoded datums); HDF5Data cannot decode JPEG nor crop/mirror.  A second Data layer over
an LMDB with identical keys is stock Caffe, keeps the JPEG decode + random crop + mirror
in the Data layer, and stays aligned in multi-GPU training (every Data layer skips the
same items per solver rank).  The crop schemes of a split share one labels LMDB.

manifest.json (written last, atomically, by data_prep)::

    {"format": "g2s-lmdb/1", "dataset": "celeba", "attributes": [...T names...],
     "image_size": 240, "encoding": "jpeg", "jpeg_quality": 95,
     "schemes": ["a", ...], "splits": {"train": {"count": N, "keys_sha256": "...",
        "lmdbs": {"labels": {"path": "train/labels_lmdb", "sha256": "..."},
                  "a": {"path": "train/a_lmdb", "sha256": "..."}, ...},
        "states": {"detected": n1, "fallback": n2, "discarded": n3, "missing": n4}}, ...},
     "tool": {...versions...}, "parameters": {...}}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import G2SError

FORMAT = "g2s-lmdb/1"
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
LABELS = "labels"


def key_for(index: int, name: str) -> str:
    """LMDB key of the index-th image of a split (fixed width: byte order == index order)."""
    return f"{index:08d}_{name}"


def index_of(key: str | bytes) -> int:
    if isinstance(key, bytes):
        key = key.decode()
    return int(key.split("_", 1)[0])


def lmdb_dir(root: Path, split: str, what: str) -> Path:
    """``what`` is a crop scheme name (a..h) or LABELS."""
    return Path(root) / split / f"{what}_lmdb"


def report_path(root: Path, split: str) -> Path:
    return Path(root) / split / "report.csv"


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset directory, read through its manifest."""
    root: Path
    manifest: dict

    @property
    def attributes(self) -> list[str]:
        return list(self.manifest["attributes"])

    @property
    def image_size(self) -> int:
        return int(self.manifest["image_size"])

    @property
    def schemes(self) -> list[str]:
        return list(self.manifest["schemes"])

    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    def count(self, split: str) -> int:
        return int(self._split(split)["count"])

    def lmdb(self, split: str, what: str) -> Path:
        self._split(split)
        if what != LABELS and what not in self.schemes:
            raise G2SError(f"{self.root / MANIFEST}: crop scheme {what!r} was not prepared "
                           f"(prepared: {', '.join(self.schemes)}); rerun g2s prep with --schemes")
        p = lmdb_dir(self.root, split, what)
        if not p.is_dir():
            raise G2SError(f"{p}: listed in {self.root / MANIFEST} but missing; rerun g2s prep")
        return p

    def _split(self, split: str) -> dict:
        try:
            return self.manifest["splits"][split]
        except KeyError:
            raise G2SError(f"{self.root / MANIFEST}: split {split!r} was not prepared "
                           f"(prepared: {', '.join(self.manifest['splits'])})") from None


def open_prepared(root: Path) -> PreparedDataset:
    """Read and check DIR/manifest.json; a clear error if it is missing or foreign."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise G2SError(f"{path}: no manifest; {root} is not a prepared dataset "
                       "(run `g2s prep celeba|lfwa --out DIR` first, or finish the interrupted run)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise G2SError(f"{path}: not valid JSON ({e})") from e
    if manifest.get("format") != FORMAT:
        raise G2SError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return PreparedDataset(root, manifest)


# ------------------------------------------------------------------ Datum encoding
def image_datum(jpeg: bytes, size: int, index: int) -> bytes:
    """Serialized encoded-image Datum (see the module docstring)."""
    from caffe.proto import caffe_pb2

    d = caffe_pb2.Datum(channels=3, height=size, width=size, data=jpeg, encoded=True, label=index)
    return d.SerializeToString()


def label_datum(labels, index: int) -> bytes:
    """Serialized label Datum: labels is a sequence of T values in {0, 1}."""
    from caffe.proto import caffe_pb2

    vals = [float(v) for v in labels]
    if any(v not in (0.0, 1.0) for v in vals):
        raise ValueError(f"labels must be 0/1, got {vals}")
    d = caffe_pb2.Datum(channels=len(vals), height=1, width=1, label=index)
    d.float_data.extend(vals)
    return d.SerializeToString()


def parse_label_datum(raw: bytes) -> tuple[int, list[int]]:
    """(index, labels) of a serialized label Datum."""
    from caffe.proto import caffe_pb2

    d = caffe_pb2.Datum()
    d.ParseFromString(raw)
    return d.label, [int(v) for v in d.float_data]
