"""The on-disk contract between data_prep (writer) and the nets/trainer/eval (readers).

One prepared dataset is a directory (``g2s prep ... --out DIR``)::

    DIR/manifest.json                  the dataset manifest (below)
    DIR/<split>/labels_lmdb/           one Datum per image: the T binary labels
    DIR/<split>/<scheme>_lmdb/         one Datum per image: the JPEG of crop <scheme>
    DIR/<split>/identities_lmdb/       one Datum per image: its face identity (when known)
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

Identities (when the dataset gives them: CelebA's ``identity_CelebA.txt``, LFW's folder
names).  ``Datum(channels=1, height=1, width=1, float_data=[identity number], label=index)``:
the number as in the dataset (CelebA: the file's integer; LFW: the index of the person's
folder name among all sorted folder names of the release), exact in float32 up to 2^24.
Used by the LNets+ANet baseline's identity pre-training (g2s_caffe/methods/lnets_anet/); G2S does
not read them.  The manifest says ``"identities": true`` and lists the LMDB under each
split's ``lmdbs`` as "identities", with ``identity_source`` (what was read, and a sha256 of
the name -> identity mapping); without identities, ``"identities": false`` and
``identity_note`` says what was missing.

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
                  "a": {"path": "train/a_lmdb", "sha256": "..."}, ...,
                  "identities": {"path": "train/identities_lmdb", "sha256": "..."}},
        "identities": n_identities,
        "states": {"detected": n1, "fallback": n2, "discarded": n3, "missing": n4},
        "paths": {"box": k1, "image": k2, "dataset": k3}}, ...},   (where each kept face came from)
     "identities": true, "identity_source": {"kind": "file", "path": ..., "sha256": ...},
     "tool": {...versions...}, "parameters": {...}}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from g2s_caffe.core.errors import G2SError

FORMAT = "g2s-lmdb/1"
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
LABELS = "labels"
IDENTITIES = "identities"
MAX_IDENTITY = 1 << 24          # identity numbers are stored as float32: exact below 2^24
CELEBA_IDENTITY_FILE = "identity_CelebA.txt"
IDENTITY_HINT = (f"CelebA's identities are {CELEBA_IDENTITY_FILE} (Anno/ of the CelebA release, one line "
                 f"'000001.jpg 2880' per image); put it in the CelebA root or its Anno/ folder (or pass "
                 f"--identity-file) and rerun the same `g2s prep` command: it adds the identities to the "
                 f"prepared dataset without detecting again.  LFWA's identities are its folder names")


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

    @property
    def has_identities(self) -> bool:
        return bool(self.manifest.get("identities"))

    def lmdb(self, split: str, what: str) -> Path:
        self._split(split)
        if what == IDENTITIES and not self.has_identities:
            note = self.manifest.get("identity_note") or "the manifest records no identities"
            raise G2SError(f"{self.root / MANIFEST}: prepared without face identities ({note}). {IDENTITY_HINT}")
        if what not in (LABELS, IDENTITIES) and what not in self.schemes:
            raise G2SError(f"{self.root / MANIFEST}: crop scheme {what!r} was not prepared "
                           f"(prepared: {', '.join(self.schemes)}); rerun g2s prep with --schemes")
        p = lmdb_dir(self.root, split, what)
        if not p.is_dir():
            raise G2SError(f"{p}: listed in {self.root / MANIFEST} but missing; rerun g2s prep")
        return p

    def read_indexed(self, split: str, what: str, parse) -> tuple[list[str], list]:
        """(keys, parse(datum)[1] of each) of a split's labels or identities LMDB, in key order;
        checks each record's index and the manifest's count."""
        import lmdb

        path = self.lmdb(split, what)
        keys, values = [], []
        with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
            for i, (k, v) in enumerate(txn.cursor()):
                index, value = parse(v)
                if index != i:
                    raise G2SError(f"{path}: record {i} ({k.decode()}) carries index {index}; rerun g2s prep")
                keys.append(k.decode())
                values.append(value)
        if len(keys) != self.count(split):
            raise G2SError(f"{path}: {len(keys)} entries, {self.root / MANIFEST} says {self.count(split)}; "
                           "rerun g2s prep")
        return keys, values

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


def identity_datum(number: int, index: int) -> bytes:
    """Serialized identity Datum of the index-th image (see the module docstring)."""
    from caffe.proto import caffe_pb2

    number = int(number)
    if not 0 <= number < MAX_IDENTITY:
        raise ValueError(f"identity number {number} outside 0 .. {MAX_IDENTITY - 1}")
    d = caffe_pb2.Datum(channels=1, height=1, width=1, label=index)
    d.float_data.append(float(number))
    return d.SerializeToString()


def parse_identity_datum(raw: bytes) -> tuple[int, int]:
    """(index, identity number) of a serialized identity Datum."""
    from caffe.proto import caffe_pb2

    d = caffe_pb2.Datum()
    d.ParseFromString(raw)
    if len(d.float_data) != 1:
        raise G2SError(f"an identity Datum holds {len(d.float_data)} values, expected 1; rerun g2s prep")
    return d.label, int(d.float_data[0])
