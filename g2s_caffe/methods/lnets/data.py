"""The LNets data stages: the LMDBs LNet_o's and LNet_s's `caffe train` jobs read, under
RUNS/lnets/data/ (the Data sources of nets.finetune_net, re-rooted there)::

    data/<split>/whole_lmdb          LNet_o's input: the raw image (the prepared manifest's
                                     sources.images, raw.RawImages) letterboxed to input_size
                                     (infer.letterbox: longer side resized, padded to a
                                     square with the ImageNet mean colour), JPEG-encoded
    data/<split>/labels_lmdb         a copy of the prepared labels LMDB (image-level attribute
                                     tags: the only supervision LNets get)
    data/<split>/head_shoulder_lmdb  LNet_s's input: LNet_o's box on that image (no threshold,
                                     no pruning: each training image holds one face, §2.1) made
                                     square, enlarged and resized to input_size; the box and
                                     the image's score ride along in the Datum's float_data
                                     ([x1, y1, x2, y2, score] in image pixels; Caffe's Data
                                     layer ignores float_data of an encoded Datum)

for the train split and the fine-tuning monitor split.  Keys are the prepared keys, in the same
order, so the image and label Data layers stay in step (g2s_caffe/core/layout.py).  No box or
landmark is read: the images, their tags, and (for LNet_s) what LNet_o answers.

Resumable and atomic like ANet's data stage: each LMDB is built in DIR.partial in key order,
committed every lmdb_build.COMMIT_EVERY records and renamed into place when complete
(data_prep/lmdb_build.ResumableLmdb); a rerun after a kill -9 continues from the last commit.
"""
from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.images import encode_jpeg
from g2s_caffe.methods.lnets import nets as lnet_nets
from g2s_caffe.methods.lnets.raw import RawImages, split_items

DATA_DIR = "data"
INITIAL_MAP_SIZE = 64 << 20
WINDOWS_FILE = "head_shoulder_windows.csv"


def lmdb_path(root: Path, split: str, what: str) -> Path:
    return Path(root) / DATA_DIR / split / f"{what}_lmdb"


def _bar(total: int, initial: int, desc: str, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="img", disable=not show, file=sys.stderr,
                mininterval=1.0)


# Make one record: (key, raw BGR image) -> (JPEG bytes, extra floats for Datum.float_data)
Maker = Callable[[str, np.ndarray], tuple[bytes, list[float]]]


def build_images(run_root: Path, data: layout.PreparedDataset, raw: RawImages, split: str, what: str,
                 size: int, make: Maker, show: bool = True) -> dict:
    """``data/<split>/<what>_lmdb`` (resumably): for every prepared key in order, ``make`` on its
    raw image.  Returns {"path", "sha256", "entries"}."""
    from caffe.proto import caffe_pb2

    from data_prep.lmdb_build import LockstepWriter, ResumableLmdb, content_sha256

    final = lmdb_path(run_root, split, what)
    items = split_items(data, split)
    n = len(items.keys)
    db = ResumableLmdb(final, INITIAL_MAP_SIZE)
    if not db.published:
        db.open()
        try:
            writer = LockstepWriter({what: db})
            with _bar(n, writer.start, f"LNets data {split}: {what} {size}px", show) as bar, writer:
                for i in range(writer.start, n):
                    key = items.keys[i]
                    jpeg, extra = make(key, raw.load(key))
                    d = caffe_pb2.Datum(channels=3, height=size, width=size, data=jpeg, encoded=True, label=i)
                    d.float_data.extend(float(v) for v in extra)
                    writer.add(what, key.encode(), d.SerializeToString())
                    bar.update(1)
                    writer.end_row()
            if db.next_index() != n:
                raise G2SError(f"{db.partial}: {db.next_index()} of {n} records after a full pass")
            db.publish()
        finally:
            db.close()
    sha, count = content_sha256(final)
    if count != n:
        raise G2SError(f"{final}: {count} records, the prepared {split} split has {n}; delete it and rerun `g2s lnets`")
    return {"path": f"{DATA_DIR}/{split}/{what}_lmdb", "sha256": sha, "entries": n}


def copy_labels(run_root: Path, data: layout.PreparedDataset, split: str) -> dict:
    """``data/<split>/labels_lmdb``: the prepared labels, record for record (atomic)."""
    from data_prep.lmdb_build import ResumableLmdb, content_sha256, discard, read_items

    final = lmdb_path(run_root, split, lnet_nets.LABELS)
    if not final.is_dir():
        discard(final)                    # a partial copy: start it again (it is small)
        db = ResumableLmdb(final, INITIAL_MAP_SIZE).open()
        try:
            db.write(read_items(data.lmdb(split, layout.LABELS)))
            db.publish()
        finally:
            db.close()
    sha, count = content_sha256(final)
    if count != data.count(split):
        raise G2SError(f"{final}: {count} records, the prepared {split} split has {data.count(split)}; "
                       "delete it and rerun `g2s lnets`")
    return {"path": f"{DATA_DIR}/{split}/{lnet_nets.LABELS}_lmdb", "sha256": sha, "entries": count}


# ------------------------------------------------------------------ LNet_o's input
def whole_maker(size: int, quality: int) -> Maker:
    from g2s_caffe.methods.lnets.infer import letterbox

    def make(key: str, img: np.ndarray):
        canvas, _ = letterbox(img, size)
        return encode_jpeg(canvas, quality, key), []

    return make


# ------------------------------------------------------------------ LNet_s's input
def head_shoulder_maker(cascade, size: int, quality: int) -> Maker:
    """LNet_o's box (no threshold, no pruning), made square and enlarged, resized to ``size``."""
    from g2s_caffe.methods.lnets.infer import crop, square_box

    def make(key: str, img: np.ndarray):
        hs, _ = cascade.head_shoulder(img, prune=False, where=key)
        patch, _ = crop(img, square_box(hs.window), size)
        return encode_jpeg(patch, quality, key), [*hs.window, hs.score]

    return make


def windows_csv(run_root: Path, split: str, data: layout.PreparedDataset) -> Path:
    """The head-shoulder windows stored in ``head_shoulder_lmdb``, as a CSV beside it."""
    import lmdb
    from caffe.proto import caffe_pb2

    src = lmdb_path(run_root, split, lnet_nets.HEAD_SHOULDER)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "x1", "y1", "x2", "y2", "score"])
    with lmdb.open(str(src), readonly=True, lock=False) as env, env.begin() as txn:
        for k, v in txn.cursor():
            d = caffe_pb2.Datum.FromString(v)
            w.writerow([k.decode(), *(f"{x:.2f}" for x in d.float_data[:4]), f"{d.float_data[4]:.6g}"])
    return write_atomic(Path(run_root) / DATA_DIR / split / WINDOWS_FILE, buf.getvalue())


def discard(run_root: Path, what: str | None = None) -> None:
    """Remove a stage's outputs (its inputs changed): one kind of LMDB, or everything."""
    root = Path(run_root) / DATA_DIR
    if what is None:
        shutil.rmtree(root, ignore_errors=True)
        return
    for split_dir in root.glob("*"):
        for p in (split_dir / f"{what}_lmdb", split_dir / f"{what}_lmdb.partial"):
            shutil.rmtree(p, ignore_errors=True)
