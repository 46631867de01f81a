"""Predict the attributes of every face in new photographs with a run's final nets.

Per image: MTCNN finds the faces (box, 5 landmarks); each face is eye-aligned and cut with
each attribute's crop scheme at the prepared image size (as `g2s prep` does for training);
the crop goes through the same centre crop + mean as evaluation and through the attribute's
net.  Prints a table (attributes x faces), and writes per image ``<stem>.json`` (per face:
box, landmarks, attribute, probability, decision) and ``<stem>_annotated.png`` (boxes,
landmarks, the most likely positive attributes).  An image without a face says so.

With ``--run lnets_anet`` (the LNets+ANet baseline end to end, `g2s anet --faces lnets`) LNets
find the face instead of MTCNN and ANet's SVMs answer (g2s_caffe/methods/lnets_anet/predict.py).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2s_caffe.core.evaluation.compare import save_figure_atomic, write_atomic
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.evaluation.evaluate import DATA_BLOB, PROB_BLOB, EvalNet, Transform, preprocess, eval_transform

THRESHOLD = 0.5
TOP_K = 6


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


class Predictor:
    """The run's final nets, loaded once; one pass per distinct (deploy, weights)."""

    def __init__(self, items: list[EvalNet], image_size: int, cut_schemes: list[str] | None = None,
                 jpeg_quality: int = 95):
        """cut_schemes: the schemes `g2s prep` cut together for the training data (the
        shared pre-shrink depends on the set); default: the schemes the nets need.
        jpeg_quality: the prepared data's, so the nets see the same JPEG artefacts."""
        import caffe

        if not items:
            raise G2SError("no final nets to predict with")
        self.items = items
        self.image_size = image_size
        self.jpeg_quality = jpeg_quality
        needed = sorted({it.scheme for it in items})
        self.cut_schemes = sorted(set(cut_schemes or []) | set(needed))
        self.groups: list[tuple[object, Transform, list[EvalNet]]] = []
        by: dict[tuple, list[EvalNet]] = {}
        for it in items:
            by.setdefault((str(it.deploy), str(it.weights), it.scheme), []).append(it)
        loaded: dict[tuple, object] = {}
        for (deploy, weights, _), group in by.items():
            for p in (deploy, weights):
                if not Path(p).is_file():
                    raise G2SError(f"{p}: missing (final net of {group[0].attribute}); run `g2s train` first")
            tf = eval_transform(group[0].train_val)
            if tf.crop_size > image_size:
                raise G2SError(f"{group[0].train_val}: crop_size {tf.crop_size} > image size {image_size}")
            key = (deploy, weights)
            if key not in loaded:
                loaded[key] = caffe.Net(deploy, caffe.TEST, weights=weights)
            self.groups.append((loaded[key], tf, group))

    def predict(self, crops: dict[str, list[np.ndarray]]) -> list[dict[str, float]]:
        """crops[scheme][i]: face i's BGR uint8 crop (image_size square). -> P per face."""
        n = len(next(iter(crops.values())))
        out: list[dict[str, float]] = [{} for _ in range(n)]
        for net, tf, group in self.groups:
            x = _preprocess_arrays(crops[group[0].scheme], tf, self.jpeg_quality)
            net.blobs[DATA_BLOB].reshape(*x.shape)
            net.blobs[DATA_BLOB].data[...] = x
            prob = net.forward()[PROB_BLOB].reshape(n, -1, 2)
            for it in group:
                t = 0 if it.attr_index is None else it.attr_index
                for i in range(n):
                    out[i][it.attribute] = float(prob[i, t, 1])
        order = [it.attribute for it in self.items]
        return [{a: d[a] for a in order} for d in out]


def _preprocess_arrays(imgs: list[np.ndarray], tf: Transform, quality: int) -> np.ndarray:
    """Same centre crop + mean as evaluation, from decoded crops.  The crops are JPEG
    round-tripped like the training LMDB's images so the nets see the same kind of input."""
    import cv2

    jpegs = []
    for img in imgs:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise G2SError("could not JPEG-encode a face crop")
        jpegs.append(buf.tobytes())
    return preprocess(jpegs, tf, [f"face crop {i}" for i in range(len(imgs))])


def aligned_crops(img: np.ndarray, face, schemes: list[str], size: int) -> dict[str, np.ndarray]:
    """The face's eye-aligned S x S crop of each scheme, exactly as `g2s prep` cuts training images."""
    from data_prep import align

    return align.crops(img, align.align(face.box, face.landmarks), schemes, size)


def predict_image(img: np.ndarray, faces, predictor: Predictor, crop_fn=aligned_crops) -> list[FacePrediction]:
    """crop_fn(img, face, schemes, size) -> {scheme: the face's crop (BGR, size x size)}."""
    if not faces:
        return []
    per_face = [crop_fn(img, f, predictor.cut_schemes, predictor.image_size) for f in faces]
    crops = {s: [c[s] for c in per_face] for s in predictor.cut_schemes}
    probs = predictor.predict(crops)
    return [FacePrediction([float(v) for v in f.box], float(f.score),
                           np.asarray(f.landmarks, float).round(2).tolist(), p)
            for f, p in zip(faces, probs)]


# ------------------------------------------------------------------ outputs
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


# ------------------------------------------------------------------ command
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="photographs (any OpenCV format)")
    p.add_argument("--runs", type=Path, required=True, help="directory of runs (or one run directory)")
    p.add_argument("--run", default=None, help="which run; None = the only G2S run, else steps_1_2_3; lnets_anet = LNets+ANet end to end")
    p.add_argument("--out", type=Path, default=Path("predictions"), help="output directory")
    p.add_argument("--image-size", type=int, default=None,
                   help="size of the aligned crops; None = the run's prepared image_size")
    p.add_argument("--gpu", type=int, default=None, help="GPU id for the attribute nets; None = CPU")


def _pick_run(root: Path, name: str | None):
    from g2s_caffe.core.evaluation.evaluate import select_runs

    found = select_runs(root, name)
    if name is None:     # the LNets+ANet baseline's runs (method lnets_anet) are not served here
        found = [r for r in found if r.method == "g2s"] or found
    if len(found) == 1:
        if found[0].method not in ("g2s", "lnets_anet"):
            raise G2SError(f"{found[0].root}: a {found[0].method} run; g2s predict serves G2S runs (g2s train) and the "
                           "end-to-end LNets+ANet run (g2s anet --faces lnets); `g2s localize` runs LNets alone")
        return found[0]
    names = [r.run for r in found]
    if "steps_1_2_3" in names:
        return found[names.index("steps_1_2_3")]
    raise G2SError(f"{root}: {len(names)} runs ({', '.join(names)}); pick one with --run")


def run(args) -> int:
    import cv2
    from tqdm import tqdm

    from data_prep.mtcnn import MTCNN

    from g2s_caffe.core import layout
    from g2s_caffe.core.device import select_device
    from g2s_caffe.core.evaluation.evaluate import nets_of_run

    select_device(args.gpu)
    for p in args.images:
        if not p.is_file():
            raise G2SError(f"{p}: no such image")
        if not cv2.haveImageReader(str(p)):
            raise G2SError(f"{p}: not an image OpenCV can read (JPEG, PNG, BMP, TIFF, ...)")
    r = _pick_run(Path(args.runs), args.run)
    if r.method == "lnets_anet":      # the baseline end to end: LNets find the face, ANet + SVMs answer
        from g2s_caffe.methods.lnets_anet.predict import predict_run

        return predict_run(args, r)
    size, schemes, quality = args.image_size, None, 95
    try:
        data = layout.open_prepared(Path(r.data))
        size, schemes = size or data.image_size, data.schemes
        quality = int(data.manifest.get("jpeg_quality", quality))
    except G2SError as e:
        if size is None:
            raise G2SError(f"{e}; or pass --image-size (240 for the paper's nets)") from None
        print(f"note: the run's prepared data is not here ({e}); crops at --image-size {size}, "
              f"JPEG quality {quality}, only the schemes the nets use")
    predictor = Predictor(nets_of_run(r), size, schemes, quality)
    detector = MTCNN()
    for path in tqdm(args.images, desc="predict", unit="img", disable=len(args.images) < 2):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise G2SError(f"{path}: not a readable image")
        faces = detector.detect(img)
        preds = predict_image(img, faces, predictor)
        print(format_table(str(path), preds), end="")
        files = write_outputs(path, img, preds, args.out, r.run)
        print(f"  wrote {', '.join(str(f) for f in files)}")
    return 0
