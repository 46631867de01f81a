"""Predict the attributes of every face in new photographs with a run's final nets.

Prints a table (attributes x faces), and writes per image ``<stem>.json`` (per face: box,
landmarks, attribute, probability, decision) and ``<stem>_annotated.png`` (boxes, landmarks,
the most likely positive attributes).  An image without a face says so.  How the run's
method finds the faces and answers:
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2s_caffe.core import disk, registry
from g2s_caffe.core.atomic import save_figure_atomic, write_atomic
from g2s_caffe.core.errors import G2SError

THRESHOLD = 0.5
TOP_K = 6


def description() -> str:
    """The module's text followed by each method's account of its predictions (`g2s predict --help`)."""
    return __doc__.rstrip() + "\n\n" + "\n\n".join(m.predict_help.strip() for m in registry.methods()
                                                    if m.predict_help)


@dataclass(frozen=True)
class FacePrediction:
    box: list[float]
    score: float
    landmarks: list[list[float]]
    probabilities: dict[str, float]     # attribute -> P(attribute), in the run's attribute order

    def to_json(self) -> dict:
        return {"box": self.box, "score": self.score, "landmarks": self.landmarks,
                "attributes": [{"attribute": a, "probability": round(p, 6), "decision": bool(p >= THRESHOLD)}
                               for a, p in self.probabilities.items()]}


def format_table(name: str, preds: list[FacePrediction]) -> str:
    if not preds:
        return f"{name}: no face found\n"
    attrs = list(preds[0].probabilities)
    w = max(len(a) for a in attrs)
    head = f"{name}: {len(preds)} face(s); P(attribute), * = present (P >= {THRESHOLD})\n"
    head += "attribute".ljust(w) + "".join(f"  {'face ' + str(i + 1):<8s}" for i in range(len(preds))) + "\n"
    lines = [a.ljust(w) + "".join(f"  {p.probabilities[a]:.3f}{'*' if p.probabilities[a] >= THRESHOLD else ' '}  "
                                  for p in preds) for a in attrs]
    return head + "\n".join(lines) + "\n"


def annotate(img: np.ndarray, preds: list[FacePrediction], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = img.shape[:2]
    fig, ax = plt.subplots(figsize=(8, 8 * h / w))
    ax.imshow(img[:, :, ::-1])
    for i, p in enumerate(preds):
        x1, y1, x2, y2 = p.box
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="lime", lw=2))
        lm = np.asarray(p.landmarks, float).reshape(-1, 2)     # none from LNets+ANet
        ax.plot(lm[:, 0], lm[:, 1], "o", color="red", ms=3)
        top = sorted(((v, a) for a, v in p.probabilities.items() if v >= THRESHOLD), reverse=True)[:TOP_K]
        text = f"face {i + 1} ({p.score:.2f})\n" + ("\n".join(f"{a} {v:.2f}" for v, a in top) or "no attribute")
        ax.text(x1, y2 + 4, text, color="white", fontsize=8, va="top",
                bbox=dict(facecolor="black", alpha=0.6, pad=2))
    ax.set_title(title + ("" if preds else ": no face found"))
    ax.axis("off")
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)


def write_outputs(image_path: Path, img: np.ndarray, preds: list[FacePrediction], out_dir: Path,
                  run_name: str) -> list[Path]:
    stem = image_path.stem
    doc = {"image": str(image_path), "run": run_name, "threshold": THRESHOLD,
           "faces": [p.to_json() for p in preds]}
    if not preds:
        doc["note"] = "no face found"
    return [write_atomic(out_dir / f"{stem}.json", json.dumps(doc, indent=2) + "\n"),
            annotate(img, preds, out_dir / f"{stem}_annotated.png", f"{image_path.name} ({run_name})")]


# Space for a full disk's message (core/disk.py): the annotated picture is an 8-inch figure
# (800 pixels wide): 0.7 MiB for a 512 x 512 photo (2026-12-04); 2 MiB leaves room for taller ones.
PREDICT_BYTES_PER_IMAGE = 2 << 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="photographs (any OpenCV format)")
    p.add_argument("--runs", type=Path, required=True, help="directory of runs (or one run directory)")
    p.add_argument("--run", default=None, help="which run; None = the only G2S run, else steps_1_2_3; lnets_anet = LNets+ANet end to end")
    p.add_argument("--out", type=Path, default=Path("predictions"), help="output directory")
    p.add_argument("--image-size", type=int, default=None,
                   help="size of the aligned crops; None = the run's prepared image_size")
    p.add_argument("--gpu", type=int, default=None, help="GPU id for the attribute nets; None = CPU")


def outputs(args) -> list[Path]:
    return [args.out]


def _pick_run(root: Path, name: str | None):
    from g2s_caffe.core.evaluation.evaluate import select_runs

    found = select_runs(root, name)
    if name is None:     # the runs of the methods `g2s predict` serves first (G2S's)
        found = [r for r in found if registry.of_run(r).predict_default] or found
    if len(found) == 1:
        return found[0]
    names = [r.run for r in found]
    for preferred in [m.preferred_run for m in registry.methods() if m.preferred_run]:
        if preferred in names:
            return found[names.index(preferred)]
    raise G2SError(f"{root}: {len(names)} runs ({', '.join(names)}); pick one with --run")


def run(args) -> int:
    import cv2

    for p in args.images:
        if not p.is_file():
            raise G2SError(f"{p}: no such image")
        if not cv2.haveImageReader(str(p)):
            raise G2SError(f"{p}: not an image OpenCV can read (JPEG, PNG, BMP, TIFF, ...)")
    r = _pick_run(Path(args.runs), args.run)
    out = Path(args.out)
    disk.expect(out, len(args.images) * PREDICT_BYTES_PER_IMAGE, f"predict ({len(args.images)} image(s))",
                parts=[out / f"{p.stem}{suffix}" for p in args.images for suffix in (".json", "_annotated.png")])
    return registry.of_run(r).predict(args, r)
