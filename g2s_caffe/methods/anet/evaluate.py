"""`g2s eval` of an ANet run (method "anet" or "lnets_anet"): the same outputs as a G2S run's.

Per image of the split: its region (its face source, faces.py: region_jpeg of the prepared scheme-c crop
for a ``--faces prep`` run; for the end-to-end ``--faces lnets`` run, LNets' face window on the
raw image, found here by the run's LNets cascade with density-peak pruning and written to
faces.csv beside the results, "no face" images flagged and counted), every patch's FC from
the one-pass net, each attribute's SVM decision value averaged over the
patches, p = sigmoid(mean score) (svm.py: p >= 0.5 exactly when the SVM says positive; not a
calibrated probability).  The result is an ``evaluate.EvalResult`` labelled with the run's name
(``anet_prep_boxes`` or ``lnets_anet``; both stand next to the published LNets+ANet column), so
g2s_caffe/core/evaluation/evaluate.py writes probs.npz, probs.csv, metrics.csv, summary.json, accuracy.png and
the results-CSV rows exactly as for G2S; ``lnets_anet.json`` beside them adds what is particular
to the baseline (the SVM split, the weights, attributes under the one-class rule).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.evaluation import metrics, stats
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.runs import Run, sha256_file
from g2s_caffe.methods.anet import params as hp
from g2s_caffe.methods.anet.faces import source_of
from g2s_caffe.methods.anet.stages import finetuned, one_pass, shape_of

EXTRA_FILE = "lnets_anet.json"
PROBABILITY_NOTE = ("p = sigmoid(mean over the patches of the SVM decision value): p >= 0.5 exactly when the "
                    "SVM decides positive; not a calibrated probability")


def check_run(run: Run) -> None:
    """A G2SError unless both jobs and the SVM stage are finished (before any net runs)."""
    for job in run.jobs:
        if job.status != "done" or job.final is None:
            raise G2SError(f"{run.root / 'manifest.json'}: ANet job {job.id} is {job.status}; rerun the same "
                           "`g2s anet` command to finish the run")
    if (run.stages.get("svm") or {}).get("status") != "done":
        raise G2SError(f"{run.root / 'manifest.json'}: the ANet run's SVM stage is not finished; rerun the same "
                       "`g2s anet` command to finish it")


def svm_bank(run: Run):
    from g2s_caffe.methods.anet.svm import load_bank

    out = run.stages["svm"]["outputs"]["svm"]
    path = run.path(out["path"])
    if not path.is_file() or sha256_file(path) != out["sha256"]:
        raise G2SError(f"{path}: missing or changed since {run.root}/manifest.json recorded it; rerun `g2s anet`")
    _, _, sha = finetuned(run)
    if run.stages["svm"].get("anet_weights_sha256") != sha:
        raise G2SError(f"{path}: trained on other ANet weights than the run's fine-tuned net; rerun `g2s anet`")
    return load_bank(path)


def evaluate_run(run: Run, data: layout.PreparedDataset, split: str, batch: int = 32, show_progress: bool = True,
                 resamples: int = stats.RESAMPLES, seed: int = stats.SEED):
    from tqdm import tqdm

    from g2s_caffe.core.evaluation.evaluate import EvalResult
    from g2s_caffe.methods.anet.features import batches

    check_run(run)
    bank = svm_bank(run)
    names = bank.attributes
    missing = [a for a in names if a not in data.attributes]
    if missing:
        raise G2SError(f"{data.root / layout.MANIFEST}: no attribute(s) {', '.join(missing)} (the ANet run "
                       f"{run.root} was trained on another attribute list?)")
    data.lmdb(split, hp.ENLARGE_SCHEME)      # a clear error before the net loads
    net = one_pass(run, data, test_regions(run, data, split, show_progress))
    keys, probs, labels = [], [], []
    with tqdm(total=data.count(split), unit="img", desc=f"eval {run.run} ({split}, one pass)",
              disable=not show_progress) as bar:
        for k, lab, jpegs in batches(data, split, batch):
            probs.append(bank.probs(net(jpegs, k)))
            keys += k
            labels.append(lab)
            bar.update(len(k))
    cols = [data.attributes.index(a) for a in names]
    P, Y = np.concatenate(probs), np.concatenate(labels)[:, cols]
    return EvalResult(run.run, str(data.manifest.get("dataset", "")), split, list(names),
                      [hp.ENLARGE_SCHEME] * len(names), keys, P, Y, metrics.summarize(P, Y, list(names), resamples, seed),
                      [], method=run.method)


def eval_dir(run: Run, split: str) -> Path:
    """Where `g2s eval` writes a run's outputs for a split (core/evaluation/evaluate.py)."""
    return run.root / "eval" / split


def test_regions(run: Run, data: layout.PreparedDataset, split: str, show: bool = True):
    """The region source of an evaluated split: its face source's (the prepared crops, or the
    face windows the run's LNets find on the split's raw images now)."""
    return source_of(run).test_regions(run, data, split, int(data.manifest.get("jpeg_quality", 95)),
                                       shape_of(run).region_size, eval_dir(run, split), show)


def write_extra(run: Run, res, out_dir: Path) -> Path:
    svm = run.stages["svm"]
    _, weights, sha = finetuned(run)
    one = svm.get("one_class", {})
    faces = source_of(run).eval_summary(run, res, out_dir)
    return write_atomic(Path(out_dir) / EXTRA_FILE, json.dumps({
        "faces": faces, "method": run.method, "run": str(run.root.resolve()), "split": res.split,
        "anet": {"weights": str(weights.resolve()), "sha256": sha, "shape": run.config.get("shape"),
                 "from_run": (run.config.get("anet_from") or {}).get("run")},
        "svm": {"split": svm.get("split"), "held_out_by": svm.get("held_out_by"),
                "C": {a: v.get("C") for a, v in svm.get("attributes", {}).items()}},
        "probability": PROBABILITY_NOTE,
        "one_class_rule": {a: f"one class only in the SVM split: predicts {c} for every image" for a, c in one.items()},
    }, indent=2) + "\n")
