"""Evaluate trained nets on a prepared split: per-image probabilities and per-attribute accuracy.

For each run under --runs (or the one --run), every attribute's final net (its deploy net and
final weights) is applied to the split's image LMDB of the attribute's crop scheme, exactly as
at test time in §3.1: the centre crop and mean of the train_val net's TEST ``data`` layer, no
mirroring.  A Step-1 joint net (``prob`` of shape (N, T, 2)) gives all its attributes from one
pass, so every step combination of Table 1 is evaluated the same way.  A run whose Step-2/3
jobs are not all finished (``g2s train --attributes A,B``) is refused, or with
--only-finished evaluated on the attributes whose nets are finished (the others are named).

Writes, per run, ``<run>/eval/<split>/``:

* ``probs.npz``: the per-image prediction file, the same for every method (G2S runs here, the
  LNets+ANet baseline, anything else), so that any two can be compared image by image
  (g2s_caffe/core/evaluation/predictions.py): ``keys`` (N,) the split's LMDB keys ``<index>_<image name>``,
  ``attributes`` (T,), ``probs`` (N, T) P(attribute) in [0, 1] (decision: >= 0.5),
  ``labels`` (N, T) 0/1.  ``probs.csv``: the same as text.
* ``metrics.csv``: the run's rows of the results CSV (below); ``summary.json``: the means
  over attributes with their intervals, the bootstrap's resamples and seed, and the
  attributes not evaluated; ``accuracy.png``: accuracy and balanced accuracy per attribute
  with their 95 % intervals as error bars.

and one results CSV over all runs (--out), the format ``g2s compare`` reads
(g2s_caffe/core/evaluation/results.py): one row per (run, attribute) with accuracy and balanced accuracy,
each followed by its 95 % interval (``_lo``, ``_hi``; Wilson for the accuracy, a bootstrap
over the test images for the balanced accuracy), the counts (n, positives, tp, tn, fp, fn),
the crop scheme, and ``predictions``: the run's probs.npz relative to the CSV, from which
``g2s compare`` bootstraps the means and runs paired tests.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2s_caffe.core import disk, layout
from g2s_caffe.core.evaluation import metrics, stats
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.atomic import save_figure_atomic, write_atomic
from g2s_caffe.core.evaluation.predictions import save_predictions
from g2s_caffe.core.evaluation.results import RESULT_COLUMNS, csv_text, relative_to, result_rows
from g2s_caffe.core.evaluation.tables import error_bars, interval_text

PROB_BLOB = "prob"
DATA_BLOB = "data"
PREDICTIONS_FILE = "probs.npz"
# Disk per run: probs.csv's "0.575540," and label per prediction plus probs.npz's float32,
# the key in both files per image, accuracy.png and the small files per run (measured on a
# 2-attribute run: 35 KiB for 16 images, of which the picture is 32 KiB).
EVAL_BYTES_PER_PREDICTION = 16
EVAL_BYTES_PER_IMAGE = 64
EVAL_BYTES_PER_RUN = 64 << 10


@dataclass(frozen=True)
class EvalNet:
    """One attribute's final net: where it is and which output slot is the attribute."""
    attribute: str
    attr_index: int | None      # index into prob's T axis for a joint net; None: prob is (N, 2)
    scheme: str                 # crop scheme whose LMDB it reads
    deploy: Path
    weights: Path
    train_val: Path


@dataclass(frozen=True)
class Transform:
    crop_size: int              # 0: no crop
    mean: tuple[float, ...]     # per channel (BGR), or one value for all
    scale: float


# ------------------------------------------------------------------ reading nets
def eval_transform(train_val: Path) -> Transform:
    """crop_size, mean_value and scale of the TEST-phase layer named "data" in train_val."""
    from google.protobuf import text_format
    from caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter()
    try:
        text_format.Merge(Path(train_val).read_text(), net)
    except (OSError, text_format.ParseError) as e:
        raise G2SError(f"{train_val}: cannot read the train_val net ({e})") from e
    found = None
    for layer in net.layer:
        if layer.name != DATA_BLOB:
            continue
        phases = {r.phase for r in layer.include if r.HasField("phase")}
        if not phases or caffe_pb2.TEST in phases:
            found = layer
    if found is None:
        raise G2SError(f"{train_val}: no TEST-phase layer named {DATA_BLOB!r}; cannot tell the "
                       "test crop and mean (regenerate the nets with `g2s gen`)")
    tp = found.transform_param
    if tp.mean_file:
        raise G2SError(f"{train_val}: layer {DATA_BLOB!r} uses mean_file; only mean_value is supported")
    if tp.mirror:
        raise G2SError(f"{train_val}: the TEST {DATA_BLOB!r} layer mirrors; evaluation uses no augmentation")
    return Transform(int(tp.crop_size), tuple(float(v) for v in tp.mean_value), float(tp.scale))


def preprocess(jpegs: list[bytes], tf: Transform, where: list[str]) -> np.ndarray:
    """Decode (BGR, like Caffe's Data layer), centre-crop, subtract the mean, scale: (N, 3, c, c)."""
    import cv2

    out = []
    for raw, name in zip(jpegs, where):
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise G2SError(f"{name}: the image datum is not a decodable JPEG; rerun g2s prep")
        h, w = img.shape[:2]
        c = tf.crop_size
        if c:
            if c > h or c > w:
                raise G2SError(f"{name}: image {w}x{h} is smaller than crop_size {c}")
            # Caffe's TEST crop: offsets (h - c) / 2, (w - c) / 2, integer division.
            y0, x0 = (h - c) // 2, (w - c) // 2
            img = img[y0:y0 + c, x0:x0 + c]
        x = img.astype(np.float32)
        if tf.mean:
            x -= np.asarray(tf.mean if len(tf.mean) == 3 else tf.mean * 3, np.float32)
        if tf.scale != 1.0:
            x *= tf.scale
        out.append(x.transpose(2, 0, 1))
    return np.stack(out)


# ------------------------------------------------------------------ reading the split
def iter_split(data: layout.PreparedDataset, split: str, scheme: str, batch: int):
    """Batches of (keys, labels (n, T), JPEG bytes) of one split and crop scheme, in key order.
    Streamed, so a 20k-image test split never sits in memory."""
    import lmdb
    from caffe.proto import caffe_pb2

    lab_path, img_path = data.lmdb(split, layout.LABELS), data.lmdb(split, scheme)
    with lmdb.open(str(lab_path), readonly=True, lock=False) as le, \
            lmdb.open(str(img_path), readonly=True, lock=False) as ie, \
            le.begin() as lt, ie.begin() as it:
        n_lab, n_img = lt.stat()["entries"], it.stat()["entries"]
        if n_lab != n_img:
            raise G2SError(f"{split}: {lab_path} has {n_lab} entries but {img_path} has {n_img}; "
                           "rerun g2s prep")
        if not n_lab:
            raise G2SError(f"{lab_path}: the {split} split is empty")
        keys, labels, jpegs = [], [], []
        for (k1, v1), (k2, v2) in zip(lt.cursor(), it.cursor()):
            if k1 != k2:
                raise G2SError(f"{img_path}: key {k2.decode()!r} where {lab_path} has {k1.decode()!r}; "
                               "the LMDBs of a split must hold the same keys (rerun g2s prep)")
            _, lab = layout.parse_label_datum(v1)
            if len(lab) != len(data.attributes):
                raise G2SError(f"{lab_path}: {k1.decode()} has {len(lab)} labels, the manifest "
                               f"lists {len(data.attributes)} attributes")
            d = caffe_pb2.Datum()
            d.ParseFromString(v2)
            keys.append(k1.decode())
            labels.append(lab)
            jpegs.append(d.data)
            if len(keys) == batch:
                yield keys, np.asarray(labels, np.int64), jpegs
                keys, labels, jpegs = [], [], []
        if keys:
            yield keys, np.asarray(labels, np.int64), jpegs


# ------------------------------------------------------------------ running nets
def forward_probs(net_items: list[EvalNet], batches, progress=None):
    """Run one (deploy, weights) over the batches: (P(attribute) per served attribute, keys, labels)."""
    import caffe

    first = net_items[0]
    for p in (first.deploy, first.weights):
        if not Path(p).is_file():
            raise G2SError(f"{p}: missing (the run's final net for {first.attribute}); "
                           "finish training with `g2s train` first")
    tf = eval_transform(first.train_val)
    net = caffe.Net(str(first.deploy), caffe.TEST, weights=str(first.weights))
    if DATA_BLOB not in net.blobs or PROB_BLOB not in net.blobs:
        raise G2SError(f"{first.deploy}: a deploy net needs blobs {DATA_BLOB!r} and {PROB_BLOB!r}")
    out: dict[str, list[np.ndarray]] = {it.attribute: [] for it in net_items}
    all_keys, all_labels = [], []
    for keys, labels, jpegs in batches:
        x = preprocess(jpegs, tf, keys)
        net.blobs[DATA_BLOB].reshape(*x.shape)
        net.blobs[DATA_BLOB].data[...] = x
        prob = net.forward()[PROB_BLOB].reshape(len(x), -1, 2)
        if not np.allclose(prob.sum(axis=2), 1.0, atol=1e-3):
            raise G2SError(f"{first.deploy}: blob {PROB_BLOB!r} is not a softmax over two outputs "
                           "(it must end in Softmax; regenerate with `g2s gen`)")
        for it in net_items:
            t = 0 if it.attr_index is None else it.attr_index
            if t >= prob.shape[1]:
                raise G2SError(f"{it.deploy}: {it.attribute} is output {t}, but {PROB_BLOB!r} "
                               f"has {prob.shape[1]}")
            if it.attr_index is None and prob.shape[1] != 1:
                raise G2SError(f"{it.deploy}: {PROB_BLOB!r} holds {prob.shape[1]} attributes but the run "
                               f"gives no index for {it.attribute}")
            out[it.attribute].append(prob[:, t, 1].astype(np.float32))   # Caffe's values, exactly
        all_keys += keys
        all_labels.append(labels)
        if progress is not None:
            progress.update(len(x))
    return ({a: np.concatenate(v) for a, v in out.items()}, all_keys, np.concatenate(all_labels))


@dataclass
class EvalResult:
    run: str
    dataset: str
    split: str
    attributes: list[str]
    schemes: list[str]
    keys: list[str]
    probs: np.ndarray               # (N, T) P(attribute), float32 as Caffe computed it
    labels: np.ndarray              # (N, T)
    summary: metrics.Summary        # scores with their intervals
    not_evaluated: list[str]        # attributes of the run without a finished net (--only-finished)
    method: str = ""                # Run.method (the results CSV's "method" column)

    @property
    def scores(self) -> list[metrics.AttributeScore]:
        return self.summary.scores


def evaluate(run_name: str, items: list[EvalNet], data: layout.PreparedDataset, split: str,
             batch: int = 32, show_progress: bool = True, resamples: int = stats.RESAMPLES,
             seed: int = stats.SEED, not_evaluated: list[str] | None = None, method: str = "") -> EvalResult:
    """Apply every attribute's net to the split; one pass per distinct (deploy, weights, scheme)."""
    from tqdm import tqdm

    if not items:
        raise G2SError(f"run {run_name}: no final nets to evaluate")
    names = [it.attribute for it in items]
    for it in items:
        if it.attribute not in data.attributes:
            raise G2SError(f"{data.root / layout.MANIFEST}: no attribute {it.attribute!r} "
                           f"(run {run_name} was trained on another attribute list?)")
        data.lmdb(split, it.scheme)   # a clear error before any net runs
    groups: dict[tuple, list[EvalNet]] = {}
    for it in items:
        groups.setdefault((str(it.deploy), str(it.weights), it.scheme), []).append(it)
    probs: dict[str, np.ndarray] = {}
    keys_ref = labels = None
    n = data.count(split)
    with tqdm(total=n * len(groups), unit="img", desc=f"eval {run_name} ({split})",
              disable=not show_progress) as bar:
        for (_, _, scheme), group in groups.items():
            p, keys, lab = forward_probs(group, iter_split(data, split, scheme, batch), bar)
            if keys_ref is None:
                keys_ref, labels = keys, lab
            elif keys != keys_ref:
                raise G2SError(f"{data.root}: the {split} LMDBs of crop schemes hold different keys; "
                               "rerun g2s prep")
            probs.update(p)
    cols = [data.attributes.index(a) for a in names]
    P = np.stack([probs[a] for a in names], axis=1)
    Y = labels[:, cols]
    return EvalResult(run_name, str(data.manifest.get("dataset", "")), split, names,
                      [it.scheme for it in items], keys_ref, P, Y,
                      metrics.summarize(P, Y, names, resamples, seed), list(not_evaluated or []), method)


# ------------------------------------------------------------------ writing results
def run_rows(r: EvalResult, csv_path: Path, predictions: Path) -> list[list]:
    """The run's rows of a results CSV at ``csv_path``."""
    return result_rows(r.run, r.dataset, r.split, r.summary, r.schemes, relative_to(predictions, csv_path),
                       r.method)


def summary_json(r: EvalResult) -> dict:
    return {"run": r.run, "dataset": r.dataset, "split": r.split, "images": len(r.keys),
            "attributes": len(r.attributes), **r.summary.to_json(), "not_evaluated": r.not_evaluated}


def write_run_outputs(r: EvalResult, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    npz = save_predictions(out_dir / PREDICTIONS_FILE, r.keys, r.attributes, r.probs, r.labels)
    prob_rows = ([k, *(f"{p:.6f}" for p in row), *map(int, lab)]
                 for k, row, lab in zip(r.keys, r.probs, r.labels))
    header = ["key", *(f"p_{a}" for a in r.attributes), *(f"y_{a}" for a in r.attributes)]
    metrics_csv = out_dir / "metrics.csv"
    return [npz,
            write_atomic(out_dir / "probs.csv", csv_text(header, prob_rows)),
            write_atomic(metrics_csv, csv_text(RESULT_COLUMNS, run_rows(r, metrics_csv, npz))),
            write_atomic(out_dir / "summary.json", json.dumps(summary_json(r), indent=2) + "\n"),
            plot_scores(r, out_dir / "accuracy.png")]


def plot_scores(r: EvalResult, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sm = r.summary
    x = np.arange(len(sm.scores))
    acc = [100 * s.accuracy for s in sm.scores]
    bal = [100 * s.balanced_accuracy for s in sm.scores]
    acc_ci = [i.scaled(100) for i in sm.accuracy_intervals]
    bal_ci = [i.scaled(100) for i in sm.balanced_intervals]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(x)), 4.5))
    bar = dict(capsize=2, error_kw={"elinewidth": 0.8, "ecolor": "black"})
    ax.bar(x - 0.2, acc, 0.4, yerr=error_bars(acc, acc_ci), **bar, label="accuracy, mean "
           + interval_text(100 * sm.mean_accuracy, sm.mean_accuracy_interval.scaled(100)))
    ax.bar(x + 0.2, bal, 0.4, yerr=error_bars(bal, bal_ci), **bar, label="balanced accuracy, mean "
           + interval_text(100 * sm.mean_balanced_accuracy, sm.mean_balanced_interval.scaled(100)))
    ax.set_xticks(x)
    ax.set_xticklabels(r.attributes, rotation=90, fontsize=8)
    ax.set_ylim(max(0, min(i.lo for i in acc_ci + bal_ci) - 10), 102)
    ax.set_ylabel("%")
    ax.set_title(f"{r.run}: {r.split} split, {len(r.keys)} images\nerror bars: {stats.LEVEL} intervals "
                 f"(accuracy: Wilson; balanced and means: bootstrap, {sm.resamples} resamples)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ runs
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=Path, required=True, help="directory of runs (or one run directory)")
    p.add_argument("--run", default=None, help="evaluate only this run (a name under --runs)")
    p.add_argument("--split", default="test", choices=layout.SPLITS, help="which prepared split")
    p.add_argument("--data", type=Path, default=None,
                   help="prepared dataset directory; None = the one each run was trained on")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass")
    p.add_argument("--gpu", type=int, default=None, help="GPU id for the forward passes; None = CPU")
    p.add_argument("--out", type=Path, default=None,
                   help="results CSV for `g2s compare`; None = RUNS/eval_<split>.csv")
    p.add_argument("--only-finished", action="store_true",
                   help="evaluate the attributes whose final net is finished and list the others "
                        "(a run trained with `g2s train --attributes A,B`); default: refuse such a run")
    p.add_argument("--resamples", type=int, default=stats.RESAMPLES,
                   help="bootstrap resamples of the test images for the balanced-accuracy and mean intervals")
    p.add_argument("--seed", type=int, default=stats.SEED,
                   help="bootstrap seed (fixed: reruns give the same intervals)")


def outputs(args) -> list[Path]:
    """Each run's eval/ folder (under --runs) and the results CSV's folder."""
    return [args.runs] + ([args.out.parent] if args.out else [])


def select_runs(root: Path, name: str | None):
    """The runs to use: ROOT itself when it is a run directory, else those under it."""
    from g2s_caffe.core import runs as runs_mod

    if (root / runs_mod.MANIFEST).is_file():
        one = runs_mod.load_run(root)
        if name and one.run != name:
            raise G2SError(f"{root} is run {one.run!r}, not {name!r}")
        return [one]
    found = runs_mod.list_runs(root)
    if name:
        found = [r for r in found if r.run == name or r.root.name == name]
        if not found:
            raise G2SError(f"{root}: no run named {name!r} "
                           f"(runs: {', '.join(r.run for r in runs_mod.list_runs(root)) or 'none'})")
    if not found:
        raise G2SError(f"{root}: no runs (a run is a directory with manifest.json, made by `g2s train`)")
    return found


def run(args) -> int:
    if args.batch < 1:
        raise G2SError(f"--batch must be >= 1, got {args.batch}")
    if args.resamples < 1:
        raise G2SError(f"--resamples must be >= 1, got {args.resamples}")
    from g2s_caffe.core import registry
    from g2s_caffe.core.device import select_device
    from g2s_caffe.core.runs import MANIFEST as RUN_MANIFEST

    print(f"g2s eval: running the nets on the {select_device(args.gpu)}")
    root = Path(args.runs)
    selected = []
    for r in select_runs(root, args.run):
        skip = registry.of_run(r).skip_evaluation(r, args.split)
        if skip:
            print(f"{r.run}: {skip}")
        else:
            selected.append(r)
    if not selected:
        raise G2SError(f"{root}: no run with attribute results to evaluate")
    out = args.out or (root.parent if (root / RUN_MANIFEST).is_file() else root) / f"eval_{args.split}.csv"
    checked = [(r, registry.of_run(r).evaluation(r, args.only_finished)) for r in selected]   # before any net runs
    datas = [layout.open_prepared(args.data or Path(r.data)) for r in selected]
    images = [d.count(args.split) for d in datas]
    disk.expect(root, sum(n * (len(r.attributes) * EVAL_BYTES_PER_PREDICTION + EVAL_BYTES_PER_IMAGE)
                          + EVAL_BYTES_PER_RUN for r, n in zip(selected, images)),
                f"eval ({len(selected)} run(s) x {max(images)} images)",
                parts=[r.root / "eval" / args.split for r in selected] + [out])
    rows = []
    for (r, ev), data in zip(checked, datas):
        res = ev.evaluate(data, args.split, args.batch, resamples=args.resamples, seed=args.seed)
        files = write_run_outputs(res, r.root / "eval" / args.split)
        ev.write_extra(res, files[0].parent)
        rows += run_rows(res, out, files[0])
        sm = res.summary
        print(f"{r.run}: {args.split} {len(res.keys)} images, {len(res.attributes)} attributes: mean accuracy "
              f"{interval_text(100 * sm.mean_accuracy, sm.mean_accuracy_interval.scaled(100))} %, mean balanced "
              f"accuracy {interval_text(100 * sm.mean_balanced_accuracy, sm.mean_balanced_interval.scaled(100))} % "
              f"({stats.LEVEL} intervals; per image and per attribute: {files[0].parent})")
        if res.not_evaluated:
            print(f"{r.run}: NOT evaluated ({len(res.not_evaluated)} attribute(s) without a finished net): "
                  f"{', '.join(res.not_evaluated)}")
    write_atomic(out, csv_text(RESULT_COLUMNS, rows))
    print(f"wrote {out}; compare with the paper: g2s compare {out}")
    return 0
