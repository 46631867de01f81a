"""LNets' face windows as ANet's face source: `g2s anet --faces lnets` (g2s_caffe/methods/anet/faces.py).

``--faces lnets`` (end to end, run "lnets_anet", the system as its authors ran it): LNets'
face window on the raw image, enlarged the same way (scheme c's Eq. 3 on the window, M = 0.1:
the paper's "extend the localized face region with a small factor"), cut exactly like `g2s
prep` cuts its crops (data_prep.align.crops, no rotation: LNets give no landmarks) at the
prepared image size, JPEG-encoded at the prepared quality, then resized to R like the prepared
crop (anet.faces.region_jpeg).  So the two runs see their regions through the same pixel path; only
the box differs.  Which window (``window_record``):

* training images (ANet's train split, the fine-tuning monitor split, the SVM split): LNet_s's
  face box (localize.mass_box), without pruning (§2.1: "each training image only contains one
  single face", so there is nothing to prune);
* test images: the cascade with density-peak pruning; when the image's score is below the
  face threshold ("no face") the rule is: the attributes are still predicted from that face
  box, the image is flagged ``no_face`` in faces.csv and counted in the evaluation's report
  (docs/choices.md).  A test image of a face dataset holds a face by construction, so "no face" there
  is a localization miss, and dropping it would flatter the accuracy; `g2s predict` on new
  photos, where "no face" may be true, answers "no face" instead.

``LNetsFaces.prepare`` (the faces stage) records the windows of every image ANet trains on or fits SVMs on in
RUNS/<run>/faces/<split>.csv (resumable chunks; the LNets weights' sha256 and the threshold
in the stage's inputs).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.anet import params as hp

LNETS = "lnets"
RUN_NAME = "lnets_anet"
FACES_DIR = "faces"
FACES_FILE = "faces.csv"      # beside an evaluated split's results
CSV_FIELDS = ["key", "x1", "y1", "x2", "y2", "score", "threshold", "no_face", "pruned", "rule"]
TRAIN_RULE = "face box (training image: no pruning)"
TEST_RULE = "cascade with pruning; below the threshold: the face box anyway, flagged no_face"


# ------------------------------------------------------------------ one window
def window_record(cascade, img: np.ndarray, test: bool, where: str) -> dict:
    """The face window ANet reads for one image (module docstring) and what LNets said."""
    r = cascade.face(img, prune=test, where=where).face
    return {"box": [float(v) for v in r.window], "score": float(r.score), "threshold": r.threshold,
            "no_face": not r.is_face, "pruned": bool(r.pruned), "rule": TEST_RULE if test else TRAIN_RULE}


def split_windows(cascade, tag: dict, data: layout.PreparedDataset, raw, split: str, folder: Path, test: bool,
                  show: bool = True) -> tuple[list[str], list[dict]]:
    """(keys, window records) of a prepared split, resumably (chunks under ``folder``)."""
    from g2s_caffe.core.jobs.chunks import resumable_map
    from g2s_caffe.methods.lnets.raw import split_items

    keys = split_items(data, split).keys
    recs = resumable_map(folder, {**tag, "split": split, "test": test}, keys,
                         lambda i: window_record(cascade, raw.load(keys[i]), test, keys[i]),
                         desc=f"LNets faces ({split})", show=show)
    return keys, recs


def faces_csv(keys: list[str], recs: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for k, r in zip(keys, recs):
        w.writerow([k, *(f"{v:.3f}" for v in r["box"]), f"{r['score']:.6g}",
                    "" if r["threshold"] is None else f"{r['threshold']:.6g}", int(r["no_face"]), int(r["pruned"]),
                    r["rule"]])
    return buf.getvalue()


def read_faces_csv(path: Path) -> dict[str, tuple[float, float, float, float]]:
    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: no faces file; rerun `g2s anet --faces lnets`")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or list(rows[0]) != CSV_FIELDS:
        raise G2SError(f"{path}: not a faces file ({', '.join(CSV_FIELDS)}); rerun `g2s anet --faces lnets`")
    return {r["key"]: tuple(float(r[c]) for c in ("x1", "y1", "x2", "y2")) for r in rows}


# ------------------------------------------------------------------ regions
def lnets_region(img: np.ndarray, box, image_size: int, quality: int, region_size: int, where: str) -> bytes:
    """The face window enlarged like scheme c, cut like `g2s prep`, JPEG, resized to R (module doc)."""
    from data_prep.align import align, crops

    from g2s_caffe.core.images import encode_jpeg
    from g2s_caffe.methods.anet.faces import region_jpeg

    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise G2SError(f"{where}: empty face window {box}")
    cut = crops(img, align((x1, y1, x2, y2)), [hp.ENLARGE_SCHEME], image_size)[hp.ENLARGE_SCHEME]
    return region_jpeg(encode_jpeg(cut, quality, where), region_size, quality, where)


class LNetsRegions:
    """End to end: each key's LNets face window (``windows``) on its raw image."""
    source = LNETS

    def __init__(self, raw, windows: dict, image_size: int, region_size: int, quality: int):
        self.raw, self.windows = raw, windows
        self.image_size, self.region_size, self.quality = image_size, region_size, quality

    def __call__(self, keys: list[str], c_jpegs: list[bytes] | None = None) -> list[bytes]:
        out = []
        for k in keys:
            if k not in self.windows:
                raise G2SError(f"{k}: no LNets face window recorded for it; rerun `g2s anet --faces lnets`")
            out.append(lnets_region(self.raw.load(k), self.windows[k], self.image_size, self.quality,
                                    self.region_size, k))
        return out


# ------------------------------------------------------------------ the LNets run ANet reads
def lnets_run(path: Path):
    """The LNets run (g2s lnets) whose cascade finds the faces, checked to be finished."""
    from g2s_caffe.core.runs import load_run
    from g2s_caffe.methods.lnets.job_hooks import METHOD

    run = load_run(Path(path))
    if run.method != METHOD:
        raise G2SError(f"--lnets {path}: a {run.method!r} run, not an LNets run (train one with `g2s lnets`)")
    if (run.stages.get("threshold") or {}).get("status") != "done":
        raise G2SError(f"--lnets {path}: the LNets run is not finished (no face threshold yet); rerun its `g2s lnets`")
    return run


def lnets_weights(path: Path) -> dict:
    """The sha256 of the LNets run's final weights, as its manifest records them, and the
    settings that turn their maps into boxes: the windows ANet trains on follow from them (the
    threshold only flags "no face")."""
    from g2s_caffe.methods.lnets.infer import cascade_rule
    from g2s_caffe.methods.lnets.job_hooks import LNET_O, LNET_S

    run = lnets_run(path)
    return {**{jid: run.job(jid).final.sha256 for jid in (LNET_O, LNET_S)}, "rule": cascade_rule()}
