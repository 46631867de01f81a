"""Face localization evaluation like the LNets+ANet paper's Fig. 7, for any detector that gives
scored boxes per image, against reference boxes (CelebA's list_bbox_celeba.txt, the demo's).

    dets = detect_all(mtcnn_detector(), images)          # or lnets_detector(cascade)
    summary = write_report({"LNets": lnets_dets, "MTCNN": mtcnn_dets}, out_dir)

Curves (§3.1):
  (a) true-positive rate vs false positives per image (FPPI) at IoU >= 0.5 ("ROC curves when
      IoU >= 0.5"): all detections of all images sorted by score; lowering the score threshold
      adds them one by one; TPR = matched reference boxes / reference boxes, FPPI = unmatched
      detections / images.
  (c) recall at FPPI 0.1 vs the IoU a match needs ("overlap ratio"), IoU in IOU_GRID.
Matching is PASCAL VOC's: within an image, detections in score order each take the unmatched
reference box they overlap most if that IoU reaches the threshold, else they are false
positives (a second box on the same face is one).  LNets give one box per image (the face the
cascade localized, scored by the image's score): lowering the score threshold is lowering
the face threshold, the protocol of a detector with a threshold.  Beside the curve: the top-1
hit rate, the share of images whose highest-scored box matches a face at IoU >= 0.5 (any
score), with its Wilson interval.  TPR at a fixed FPPI is the best TPR among
operating points with at most that FPPI.  Intervals: 95 % bootstrap over images (B_BOOTSTRAP
resamples, fixed seed).  Every image is accounted for: images without any detection and images
without a reference box (face-free: their detections are all false positives) are counted.

Outputs (atomic): roc.csv, recall_vs_iou.csv, summary.json, loc_eval.png.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.evaluation.stats import wilson_interval
from g2s_caffe.methods.lnets import boxes as bx

ROC_IOU = 0.5                   # Fig. 7(a)(b): "ROC curves when IoU >= 0.5"
RECALL_FPPI = 0.1               # Fig. 7(c)(d): "Recall Rates (FPPI = 0.1)"
QUOTED_FPPI = (0.01, 0.1)       # the operating points the paper quotes (93 % / Face++ 85 % at 0.01)
# Fig. 7(c)'s x axis is the overlap ratio; we sample it every 0.05 from 0.1 (any overlap) to
# 0.95 (near-perfect boxes): fine enough to read the fall-off, each point one matching pass.
IOU_GRID = tuple(round(0.1 + 0.05 * k, 2) for k in range(18))
B_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Our MTCNN port at the settings `g2s prep` uses (the reference implementation's defaults): its
# curve is the detector the G2S data was made with.  Its O-Net threshold 0.7 ends the curve at
# that operating point (lower-scored faces are never reported).
MTCNN_MIN_FACE, MTCNN_FACTOR, MTCNN_THRESHOLDS = 20, 0.709, (0.6, 0.7, 0.7)


@dataclass(frozen=True, eq=False)
class ImageDetections:
    """One image: the detector's boxes [x1, y1, x2, y2) with scores, and the reference boxes."""
    name: str
    boxes: np.ndarray
    scores: np.ndarray
    references: np.ndarray

    def __post_init__(self):
        if len(bx.as_boxes(self.boxes)) != len(np.asarray(self.scores).reshape(-1)):
            raise G2SError(f"{self.name}: {len(bx.as_boxes(self.boxes))} boxes but "
                           f"{len(np.asarray(self.scores).reshape(-1))} scores")
        if not np.isfinite(np.asarray(self.scores, dtype=np.float64)).all():
            raise G2SError(f"{self.name}: non-finite detection score")


@dataclass(frozen=True, eq=False)
class Matched:
    """Every detection of an image set, sorted by score (best first), with its match flag."""
    scores: np.ndarray
    true_positive: np.ndarray   # bool
    image: np.ndarray           # index of the detection's image
    references_per_image: np.ndarray
    images: int

    @property
    def references(self) -> int:
        return int(self.references_per_image.sum())


@dataclass(frozen=True, eq=False)
class Curve:
    """TPR vs FPPI: one point per distinct score threshold, from (0, 0) down to the lowest score."""
    thresholds: np.ndarray
    fppi: np.ndarray
    tpr: np.ndarray
    tp: np.ndarray
    fp: np.ndarray


def match(images: list[ImageDetections], iou_threshold: float = ROC_IOU) -> Matched:
    if not images:
        raise G2SError("localization evaluation needs at least one image")
    scores, flags, owner, refs = [], [], [], []
    for k, im in enumerate(images):
        b, s, r = bx.as_boxes(im.boxes), np.asarray(im.scores, np.float64).reshape(-1), bx.as_boxes(im.references)
        order = np.argsort(-s, kind="stable")
        taken = np.zeros(len(r), dtype=bool)
        ious = bx.iou_matrix(b, r) if len(r) else np.zeros((len(b), 0))
        tp = np.zeros(len(b), dtype=bool)
        for i in order:
            if len(r):
                cand = np.where(taken, -1.0, ious[i])
                j = int(np.argmax(cand))
                if cand[j] >= iou_threshold:
                    taken[j] = tp[i] = True
        scores.append(s[order])
        flags.append(tp[order])
        owner.append(np.full(len(b), k))
        refs.append(len(r))
    s, t, o = np.concatenate(scores), np.concatenate(flags), np.concatenate(owner)
    order = np.argsort(-s, kind="stable")
    return Matched(s[order], t[order], o[order].astype(np.int64), np.asarray(refs, np.int64), len(images))


def _curve(m: Matched, weights: np.ndarray | None = None) -> Curve:
    """The curve of ``m`` (``weights``: per-image multiplicities, for the bootstrap)."""
    w_img = np.ones(m.images) if weights is None else weights
    w = w_img[m.image] if len(m.image) else np.zeros(0)
    tp, fp = np.cumsum(w * m.true_positive), np.cumsum(w * ~m.true_positive)
    last = np.flatnonzero(np.r_[m.scores[1:] != m.scores[:-1], True]) if len(m.scores) else np.zeros(0, int)
    n_ref, n_img = float((w_img * m.references_per_image).sum()), float(w_img.sum())
    tp, fp, thr = np.r_[0.0, tp[last]], np.r_[0.0, fp[last]], np.r_[np.inf, m.scores[last]]
    return Curve(thr, fp / n_img, tp / n_ref if n_ref > 0 else np.zeros_like(tp), tp, fp)


def roc(images: list[ImageDetections], iou_threshold: float = ROC_IOU) -> Curve:
    return _curve(match(images, iou_threshold))


def tpr_at_fppi(curve: Curve, fppi: float) -> float:
    ok = curve.fppi <= fppi + 1e-12
    return float(curve.tpr[ok].max()) if ok.any() else 0.0


def bootstrap_tpr_at_fppi(m: Matched, fppi: float, resamples: int = B_BOOTSTRAP,
                          seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of TPR at ``fppi`` over images resampled with replacement."""
    rng = np.random.default_rng(seed)
    vals = np.empty(resamples)
    for b in range(resamples):
        weights = np.bincount(rng.integers(0, m.images, m.images), minlength=m.images).astype(np.float64)
        vals[b] = tpr_at_fppi(_curve(m, weights), fppi)
    a = (1 - confidence) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def top1_hits(images: list[ImageDetections], iou_threshold: float = ROC_IOU) -> np.ndarray:
    """Per image holding a face: whether its highest-scored box overlaps a face at
    ``iou_threshold`` or more (an image without boxes misses)."""
    out = []
    for im in images:
        refs, boxes = bx.as_boxes(im.references), bx.as_boxes(im.boxes)
        if not len(refs):
            continue
        top = boxes[int(np.argmax(np.asarray(im.scores, np.float64).reshape(-1)))][None] if len(boxes) else None
        out.append(top is not None and bx.iou_matrix(top, refs).max() >= iou_threshold)
    return np.asarray(out, dtype=bool)


def recall_vs_iou(images: list[ImageDetections], ious=IOU_GRID, fppi: float = RECALL_FPPI) -> np.ndarray:
    return np.array([tpr_at_fppi(roc(images, t), fppi) for t in ious])


# ---------------------------------------------------------------- running detectors
Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]     # BGR image -> (boxes, scores)


def mtcnn_detector(min_face: float = MTCNN_MIN_FACE, factor: float = MTCNN_FACTOR,
                   thresholds=MTCNN_THRESHOLDS) -> Detector:
    """Our MTCNN port (data_prep/mtcnn).  Its boxes keep the reference code's 1-based corners
    (pixels x1..x2 inclusive, counted from 1): in our [x1, y1, x2, y2) coordinates that is
    [x1 - 1, y1 - 1, x2, y2)."""
    from data_prep.mtcnn import MTCNN

    det = MTCNN(min_face=min_face, factor=factor, thresholds=tuple(thresholds))

    def detect(img):
        faces = det.detect(img)
        boxes = np.array([f.box for f in faces], np.float64).reshape(-1, 4) - np.array([1.0, 1.0, 0.0, 0.0])
        return boxes, np.array([f.score for f in faces], np.float64)

    return detect


def lnets_detector(cascade) -> Detector:
    """LNets (infer.LNetsCascade): one box per image, the localized face, scored by the image's
    score (no threshold: the curve sweeps it, as the face threshold would)."""
    def detect(img):
        face = cascade.face(img).face
        return np.array([face.window]), np.array([face.score])

    return detect


def read_reference_boxes(path: Path) -> dict[str, np.ndarray]:
    """list_bbox_celeba.txt (count line, header, "name x_1 y_1 width height") -> {name: (1, 4)}."""
    from data_prep.celeba import read_table

    out = {}
    for name, (ln, (x, y, w, h)) in read_table(Path(path), 4).items():
        if w <= 0 or h <= 0:
            raise G2SError(f"{path}:{ln}: box of {name} has width {w:g} and height {h:g}; both must be > 0")
        out[name] = np.array([bx.xywh_to_xyxy((x, y, w, h))])
    return out


def detect_all(detector: Detector, images: Iterable[tuple[str, object, np.ndarray]], total: int | None = None,
               desc: str = "detect", show: bool = True) -> list[ImageDetections]:
    """Run ``detector`` on (name, image path or BGR array, reference boxes) items; an image that
    cannot be read is an error naming it (nothing is skipped)."""
    import cv2
    from tqdm import tqdm

    out = []
    for name, source, refs in tqdm(images, total=total, desc=desc, disable=not show, unit="img"):
        img = source
        if not isinstance(source, np.ndarray):
            img = cv2.imread(str(source), cv2.IMREAD_COLOR)
            if img is None:
                raise G2SError(f"{source}: image {name} is missing or not readable")
        boxes, scores = detector(img)
        out.append(ImageDetections(name, bx.as_boxes(boxes), np.asarray(scores, np.float64).reshape(-1),
                                   bx.as_boxes(refs)))
    return out


# ---------------------------------------------------------------- report
def summarize(images: list[ImageDetections], resamples: int = B_BOOTSTRAP) -> dict:
    m = match(images, ROC_IOU)
    curve = _curve(m)
    out = {"images": m.images, "references": m.references, "detections": int(len(m.scores)),
           "images_without_detections": int(sum(len(np.asarray(i.scores).reshape(-1)) == 0 for i in images)),
           "images_without_reference": int(sum(len(bx.as_boxes(i.references)) == 0 for i in images)),
           "roc_iou": ROC_IOU, "bootstrap": {"resamples": resamples, "seed": BOOTSTRAP_SEED,
                                             "confidence": CONFIDENCE}}
    for f in QUOTED_FPPI:
        lo, hi = bootstrap_tpr_at_fppi(m, f, resamples)
        out[f"tpr_at_fppi_{f:g}"] = {"value": tpr_at_fppi(curve, f), "ci95": [lo, hi]}
    out["max_tpr"] = float(curve.tpr.max())
    hits = top1_hits(images)
    if len(hits):
        iv = wilson_interval(int(hits.sum()), len(hits), CONFIDENCE)
        out["top1_hit_rate"] = {"value": float(hits.mean()), "ci95": [iv.lo, iv.hi], "images": len(hits),
                                "iou": ROC_IOU}
    out["recall_vs_iou_at_fppi_0.1"] = {f"{t:g}": float(r) for t, r in zip(IOU_GRID, recall_vs_iou(images))}
    return out


def write_report(results: dict[str, list[ImageDetections]], out_dir: Path,
                 title: str = "Face localization (Fig. 7)", resamples: int = B_BOOTSTRAP) -> dict:
    """roc.csv, recall_vs_iou.csv, summary.json and loc_eval.png for each detector of ``results``
    (the same images for all: checked)."""
    from g2s_caffe.core.atomic import write_atomic

    if not results:
        raise G2SError("no detector results to report")
    names = {k: [i.name for i in v] for k, v in results.items()}
    first = next(iter(names.values()))
    for k, v in names.items():
        if v != first:
            raise G2SError(f"detector {k!r} was run on other images than {next(iter(names))!r}; "
                           "the curves must compare the same images")
    out_dir = Path(out_dir)
    roc_rows, iou_rows, summary, curves = [], [], {}, {}
    for det, images in results.items():
        curve = roc(images)
        curves[det] = (curve, recall_vs_iou(images))
        for t, f, r, tp, fp in zip(curve.thresholds, curve.fppi, curve.tpr, curve.tp, curve.fp):
            roc_rows.append([det, ROC_IOU, f"{t:.6g}", f"{f:.6g}", f"{r:.6g}", int(tp), int(fp)])
        iou_rows += [[det, t, RECALL_FPPI, f"{r:.6g}"] for t, r in zip(IOU_GRID, curves[det][1])]
        summary[det] = summarize(images, resamples)

    def table(header, rows) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        return buf.getvalue()

    write_atomic(out_dir / "roc.csv", table(["detector", "iou", "score_threshold", "fppi", "tpr", "tp", "fp"],
                                            roc_rows))
    write_atomic(out_dir / "recall_vs_iou.csv", table(["detector", "iou", "fppi", "recall"], iou_rows))
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    _plot(curves, out_dir / "loc_eval.png", title, len(first))
    return summary


def _plot(curves: dict, png: Path, title: str, n_images: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from g2s_caffe.core.atomic import write_atomic

    fig, (a, c) = plt.subplots(1, 2, figsize=(10, 4))
    floor = 0.5 / n_images      # FPPI 0 drawn at half an image's worth on the log axis
    for det, (curve, rec) in curves.items():
        a.step(np.maximum(curve.fppi, floor), curve.tpr, where="post", label=det)
        c.plot(IOU_GRID, rec, marker="o", markersize=3, label=det)
    a.set_xscale("log")
    a.set_xlabel("False positives per image")
    a.set_ylabel("True positive rate")
    a.set_title(f"(a) IoU >= {ROC_IOU}")
    c.set_xlabel("Overlap ratio (IoU)")
    c.set_ylabel(f"Recall (FPPI = {RECALL_FPPI})")
    c.set_title("(c) recall vs overlap")
    for ax in (a, c):
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: {n_images} images")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(png, buf.getvalue())
