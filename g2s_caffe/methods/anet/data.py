"""The ANet data stage: the LMDBs ANet's `caffe train` jobs read, under RUNS/anet/data/.

From the prepared dataset (g2s_caffe/core/layout.py), per split that a Caffe job reads::

    data/<split>/region_lmdb     the face region: the prepared crop of scheme c (params.ENLARGE_SCHEME:
                                 the face box enlarged by M = 0.1, Eq. 3 — the paper's "extend the
                                 localized face region with a small factor") resized to R x R
                                 (shape.region_size) and JPEG-encoded; Datum.label = row index
    data/<split>/labels_lmdb     a copy of the prepared labels (so every Data source of a net
                                 lives in one directory)
    data/train/identity_lmdb     the image's identity class 0..K-1: the train split's identity
                                 numbers in sorted order (K = its number of people)
    data/train/partner_lmdb      for row i, the region of ANOTHER image of the same person: the
                                 next one in key order, cyclically (the siamese branch of the
                                 similarity loss); a person with one image partners itself
    data/train/identity_classes.txt   class k's identity number, one per line

All LMDBs of a split hold the prepared keys, in the same order, so the Data layers of a net
stay in step (layout.py explains why).  Train and the fine-tuning monitor split get region and
labels; only train gets identity and partner.  Features for the SVMs and evaluation use the
same ``region_jpeg`` on the fly (features.py), so they see exactly these pixels.

Resumable and atomic: each LMDB is built in DIR.partial in key order, committed in batches
and renamed into place when complete (data_prep/lmdb_build.ResumableLmdb); a rerun after a
kill -9 continues from the last commit.  The run manifest's ``stages["data"]`` records every
output with its sha256 (over the records, lmdb_build.content_sha256) and the prepared LMDBs'
sha256 it was built from.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.methods.anet import nets as anet_nets
from g2s_caffe.methods.anet import params as hp

DATA_DIR = "data"
CLASSES_FILE = "identity_classes.txt"
INITIAL_MAP_SIZE = 64 << 20
TRAIN_OUTPUTS = (anet_nets.REGION, anet_nets.LABELS, anet_nets.IDENTITY, anet_nets.PARTNER)
MONITOR_OUTPUTS = (anet_nets.REGION, anet_nets.LABELS)


# ------------------------------------------------------------------ identities
def split_identities(data: layout.PreparedDataset, split: str) -> tuple[list[str], np.ndarray]:
    """(keys, identity numbers) of a prepared split, in key order."""
    keys, numbers = data.read_indexed(split, layout.IDENTITIES, layout.parse_identity_datum)
    return keys, np.asarray(numbers, np.int64)


def identity_classes(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class of each image 0..K-1, the identity number of each class): sorted numbers."""
    people, classes = np.unique(numbers, return_inverse=True)
    return classes.astype(np.int64), people


def partners(numbers: np.ndarray) -> np.ndarray:
    """For row i, the next row of the same identity in key order, cyclically (i itself when
    the identity has one image)."""
    out = np.arange(len(numbers))
    rows: dict[int, list[int]] = {}
    for i, n in enumerate(numbers.tolist()):
        rows.setdefault(n, []).append(i)
    for members in rows.values():
        for a, b in zip(members, members[1:] + members[:1]):
            out[a] = b
    return out


# ------------------------------------------------------------------ building
def lmdb_path(root: Path, split: str, what: str) -> Path:
    return Path(root) / split / f"{what}_lmdb"


def outputs_for(train_split: str, monitor_split: str) -> dict[str, tuple[str, ...]]:
    out = {train_split: TRAIN_OUTPUTS}
    if monitor_split != train_split:
        out[monitor_split] = MONITOR_OUTPUTS
    return out


def stage_inputs(data: layout.PreparedDataset, splits: dict[str, tuple[str, ...]]) -> dict:
    """The prepared LMDBs the stage reads, with the sha256 their manifest records."""
    out = {}
    for split, whats in splits.items():
        entry = data.manifest["splits"][split]["lmdbs"]
        needed = [hp.ENLARGE_SCHEME, layout.LABELS] + ([layout.IDENTITIES] if anet_nets.IDENTITY in whats else [])
        for what in needed:
            data.lmdb(split, what)           # a clear error when not prepared
            out[f"{split}/{what}"] = {"path": str(layout.lmdb_dir(data.root, split, what).resolve()),
                                      "sha256": entry[what]["sha256"]}
    return out


def _records(path: Path, start: int):
    """(index, key, value) of an LMDB from record ``start`` on, in key order."""
    import lmdb

    with lmdb.open(str(path), readonly=True, lock=False, readahead=False) as env, env.begin() as txn:
        cur = txn.cursor()
        i = 0
        if cur.first():
            for k, v in cur:
                if i >= start:
                    yield i, bytes(k), bytes(v)
                i += 1


def _bar(total: int, initial: int, desc: str, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="img", disable=not show, file=sys.stderr,
                mininterval=1.0)


def _build_split(root: Path, data: layout.PreparedDataset, split: str, whats: tuple[str, ...],
                 region_size: int, show: bool, regions=None) -> dict:
    """Write the split's LMDBs (resumably); returns what the stage entry says about them.
    ``regions(keys, scheme-c JPEGs) -> region JPEGs`` (faces.py: the prepared crops, or LNets'
    face windows); None = the prepared crops (faces.PrepRegions)."""
    from data_prep.lmdb_build import LockstepWriter, ResumableLmdb

    n = data.count(split)
    quality = int(data.manifest.get("jpeg_quality", 95))
    if regions is None:
        from g2s_caffe.methods.anet.faces import PrepRegions
        regions = PrepRegions(region_size, quality)
    info: dict = {"images": n}
    classes = partner = None
    if anet_nets.IDENTITY in whats:
        keys, numbers = split_identities(data, split)
        classes, people = identity_classes(numbers)
        partner = partners(numbers)
        info.update(identities=int(len(people)), self_partnered=int(np.sum(partner == np.arange(n))))
        write_atomic(Path(root) / split / CLASSES_FILE, "".join(f"{p}\n" for p in people.tolist()))
    dbs = {w: ResumableLmdb(lmdb_path(root, split, w), INITIAL_MAP_SIZE) for w in whats}
    first = [w for w in whats if w != anet_nets.PARTNER]
    pending = {w: dbs[w].open() for w in first if not dbs[w].published}
    try:
        if pending:
            writer = LockstepWriter(pending)
            start = writer.start
            c_path, lab_path = data.lmdb(split, hp.ENLARGE_SCHEME), data.lmdb(split, layout.LABELS)
            from caffe.proto import caffe_pb2
            with _bar(n, start, f"ANet data {split}: region {region_size}px", show) as bar, writer:
                for (i, k1, img), (_, k2, lab) in zip(_records(c_path, start), _records(lab_path, start)):
                    if k1 != k2:
                        raise G2SError(f"{c_path}: key {k1.decode()!r} where {lab_path} has {k2.decode()!r}; "
                                       "rerun g2s prep")
                    if writer.wants(anet_nets.REGION, i):
                        d = caffe_pb2.Datum()
                        d.ParseFromString(img)
                        jpeg = regions([k1.decode()], [d.data])[0]
                        writer.add(anet_nets.REGION, k1, layout.image_datum(jpeg, region_size, i))
                    if writer.wants(anet_nets.LABELS, i):
                        writer.add(anet_nets.LABELS, k1, lab)
                    if writer.wants(anet_nets.IDENTITY, i):
                        if keys[i] != k1.decode():
                            raise G2SError(f"{data.lmdb(split, layout.IDENTITIES)}: key {keys[i]!r} where "
                                           f"{c_path} has {k1.decode()!r}; rerun g2s prep")
                        writer.add(anet_nets.IDENTITY, k1, layout.identity_datum(int(classes[i]), i))
                    bar.update(1)
                    writer.end_row()
            for w, db in pending.items():
                if db.next_index() != n:
                    raise G2SError(f"{db.partial}: {db.next_index()} of {n} records after a full pass; the "
                                   f"prepared {split} LMDBs hold fewer entries than their manifest says")
                db.publish()
    finally:
        for db in pending.values():
            db.close()
    if anet_nets.PARTNER in whats and not dbs[anet_nets.PARTNER].published:
        _build_partner(dbs[anet_nets.PARTNER], lmdb_path(root, split, anet_nets.REGION), partner, show, split)
    return info


def _build_partner(db, region: Path, partner: np.ndarray, show: bool, split: str) -> None:
    """Row i = the region Datum of row partner[i], under row i's key, with label i."""
    import lmdb
    from caffe.proto import caffe_pb2

    from data_prep.lmdb_build import LockstepWriter

    db.open()
    try:
        writer = LockstepWriter({"partner": db})
        with lmdb.open(str(region), readonly=True, lock=False) as env, env.begin() as txn:
            keys = [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
            with _bar(len(keys), writer.start, f"ANet data {split}: partners", show) as bar, writer:
                for i in range(writer.start, len(keys)):
                    d = caffe_pb2.Datum()
                    d.ParseFromString(txn.get(keys[int(partner[i])]))
                    d.label = i
                    writer.add("partner", keys[i], d.SerializeToString())
                    bar.update(1)
                    writer.end_row()
        db.publish()
    finally:
        db.close()


def build(run_root: Path, data: layout.PreparedDataset, region_size: int, train_split: str,
          monitor_split: str, show: bool = True, regions_for=None) -> dict:
    """Build (or finish) every LMDB of the stage; returns its ``outputs`` and facts.
    ``regions_for(split)``: where that split's face regions come from (see _build_split)."""
    from data_prep.lmdb_build import content_sha256

    root = Path(run_root) / DATA_DIR
    splits = outputs_for(train_split, monitor_split)
    facts, outputs = {}, {}
    for split, whats in splits.items():
        facts[split] = _build_split(root, data, split, whats, region_size, show,
                                    regions_for(split) if regions_for else None)
        for w in whats:
            path = lmdb_path(root, split, w)
            sha, n = content_sha256(path)
            if n != data.count(split):
                raise G2SError(f"{path}: {n} records, the prepared {split} split has {data.count(split)}; "
                               f"delete {path} and rerun `g2s anet`")
            outputs[f"{split}/{w}"] = {"path": f"{DATA_DIR}/{split}/{w}_lmdb", "sha256": sha, "entries": n}
        if anet_nets.IDENTITY in whats:
            from g2s_caffe.core.runs import sha256_file
            p = root / split / CLASSES_FILE
            outputs[f"{split}/identity_classes"] = {"path": f"{DATA_DIR}/{split}/{CLASSES_FILE}",
                                                    "sha256": sha256_file(p)}
    return {"splits": facts, "outputs": outputs}


def discard(run_root: Path) -> None:
    """Remove the stage's outputs (its inputs changed)."""
    shutil.rmtree(Path(run_root) / DATA_DIR, ignore_errors=True)
