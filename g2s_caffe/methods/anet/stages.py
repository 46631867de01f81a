"""The non-Caffe stages of an ANet run (data, features, svm), recorded in ``Run.stages``.

Each entry: ``{"status": "running" | "done", "started", "finished", "inputs": {...},
"outputs": {name: {"path", "sha256"}}, ...}``.  ``inputs`` names everything the stage was made
from (prepared LMDBs and their sha256, the fine-tuned weights' sha256, the features' sha256,
the settings); a rerun keeps a finished stage only when its inputs are the same and its outputs
are still there (files: with their recorded sha256), else it redoes it.  A stage interrupted
half-way resumes from its own partial outputs (LMDB commits, feature chunks, one file per
finished SVM), which are tagged with the same inputs and thrown away if those changed.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.jobs.stages import Stage, as_json
from g2s_caffe.core.runs import Run, sha256_file
from g2s_caffe.methods.anet import data as anet_data
from g2s_caffe.methods.anet import params as hp
from g2s_caffe.methods.anet.faces import source_of

SVM_DIR = "svm"
SVM_FILE = "svm.npz"


def shape_of(run: Run) -> hp.ANetShape:
    return hp.ANetShape(**run.config["shape"])


# ------------------------------------------------------------------ faces (faces.py)
def regions_of(run: Run, data: layout.PreparedDataset, split: str):
    """The run's region source for a split ANet trains on (its face source's)."""
    return source_of(run).regions(run, data, split, int(data.manifest.get("jpeg_quality", 95)),
                                  shape_of(run).region_size)


# ------------------------------------------------------------------ data
def data_stage(run: Run, req) -> Run:
    shape = shape_of(run)
    splits = anet_data.outputs_for(req.train_split, req.monitor_split)
    inputs = {"prepared": anet_data.stage_inputs(req.data, splits), "region_size": shape.region_size,
              "jpeg_quality": int(req.data.manifest.get("jpeg_quality", 95)), "scheme": hp.ENLARGE_SCHEME}
    for split in splits:
        if source_of(run).stage_inputs(run, split):
            inputs[f"faces_{split}"] = source_of(run).stage_inputs(run, split)
    stage = Stage(run, "data", inputs, "data stage")
    if stage.kept():
        return run
    old = run.stages.get("data")
    if old and old.get("inputs") != as_json(inputs):
        anet_data.discard(run.root)               # built from other inputs
    run = stage.start()
    res = anet_data.build(run.root, req.data, shape.region_size, req.train_split, req.monitor_split,
                          regions_for=lambda split: regions_of(run, req.data, split))
    people = res["splits"][req.train_split]["identities"]
    if people != req.identities:
        raise G2SError(f"{run.root}/{anet_data.DATA_DIR}: {people} identity classes, the run copies were written for "
                       f"{req.identities}; delete {run.root} and rerun")
    alone = res["splits"][req.train_split]["self_partnered"]
    if alone:
        print(f"{run.run}: {alone} train image(s) are the only image of their person: they are their own "
              "partner (no similarity signal from them)", file=sys.stderr)
    return stage.done(**res, identities=people)


# ------------------------------------------------------------------ features
def features_path(run: Run, split: str) -> Path:
    return run.root / SVM_DIR / f"features_{split}.npz"


def finetuned(run: Run):
    """(job, weights path, sha256) of the fine-tuned net, checked."""
    from g2s_caffe.methods.anet.job_hooks import FINETUNE

    job = run.job(FINETUNE)
    if job.status != "done" or job.final is None:
        raise G2SError(f"{run.root}/manifest.json: {job.id} is {job.status}; finish the run (rerun `g2s anet`)")
    path = run.path(job.final.path)
    if not path.is_file() or sha256_file(path) != job.final.sha256:
        raise G2SError(f"{path}: missing or changed since {run.root}/manifest.json recorded it; rerun `g2s anet`")
    return job, path, job.final.sha256


def one_pass(run: Run, data: layout.PreparedDataset, regions=None):
    """The run's one-pass net on the device pycaffe is set to (device.select_device);
    ``regions``: its region source (regions_of), None = the prepared crops."""
    from g2s_caffe.methods.anet.features import OnePass

    job, weights, _ = finetuned(run)
    return OnePass(run.path(job.deploy), weights, run.path(job.train_val), shape_of(run),
                   int(data.manifest.get("jpeg_quality", 95)), regions)


def features_stage(run: Run, req) -> Run:
    from g2s_caffe.methods.anet.features import extract

    job, weights, sha = finetuned(run)
    split = req.svm_split
    whats = [hp.ENLARGE_SCHEME, layout.LABELS] + ([layout.IDENTITIES] if req.data.has_identities else [])
    lm = req.data.manifest["splits"][split]["lmdbs"]
    inputs = {"weights": {"path": str(weights), "sha256": sha}, "deploy": sha256_file(run.path(job.deploy)),
              "split": split, "prepared": {w: lm[w]["sha256"] for w in whats},
              "data": str(req.data.root.resolve()), "region_size": shape_of(run).region_size,
              **source_of(run).stage_inputs(run, split)}
    stage = Stage(run, "features", inputs, f"features of {split}")
    if stage.kept():
        return run
    run = stage.start()
    from g2s_caffe.core.device import select_device

    select_device(req.gpus[0] if req.gpus else None)
    net = one_pass(run, req.data, regions_of(run, req.data, split))
    out = extract(net, req.data, split, features_path(run, split), sha, req.cfg.feature_batch, req.cfg.feature_chunk)
    shape = shape_of(run)
    return stage.done(outputs={"features": {"path": run.rel(out), "sha256": sha256_file(out)}},
                      images=req.data.count(split), patches=shape.n_patches, dim=shape.fc_dim,
                      one_pass="nets.onepass_deploy (the interweaved operation, Fig. 5)")


# ------------------------------------------------------------------ SVMs
def svm_settings(cfg):
    from g2s_caffe.methods.anet.svm import SVMSettings

    return SVMSettings(c_grid=tuple(float(c) for c in cfg.c_grid), held_out_fraction=float(cfg.held_out_fraction),
                       max_iter=cfg.svm.max_iter, seed=cfg.svm.seed)


def svm_stage(run: Run, req) -> Run:
    from g2s_caffe.methods.anet.features import load_features
    from g2s_caffe.methods.anet.svm import attribute_from_file, attribute_to_bytes, train_bank

    feats = run.stages["features"]["outputs"]["features"]
    _, weights, sha = finetuned(run)
    settings = svm_settings(req.cfg)
    names = run.attribute_names
    inputs = {"features": feats, "settings": settings.to_json(), "attributes": names,
              "anet_weights": {"path": str(weights), "sha256": sha}}
    stage = Stage(run, "svm", inputs, "SVMs")
    if stage.kept():
        return run
    folder = run.root / SVM_DIR / "attributes"
    tag = folder / "tag.json"
    if folder.is_dir() and (not tag.is_file() or json.loads(tag.read_text()) != as_json(inputs)):
        shutil.rmtree(folder)                     # SVMs of other features or settings
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(tag, json.dumps(inputs, sort_keys=True))
    run = stage.start()
    f = load_features(run.path(feats["path"]))
    if len(f["keys"]) != len(f["labels"]) or len(f["keys"]) != len(f["features"]):
        raise G2SError(f"{run.path(feats['path'])}: {len(f['keys'])} keys for {len(f['labels'])} label rows")
    groups = f["identities"] if len(f["identities"]) else None
    done = {}
    for t, name in enumerate(names):
        p = folder / f"{t:03d}_{name}.npz"
        if p.is_file():
            done[name] = attribute_from_file(p)
    index = {n: t for t, n in enumerate(names)}

    def save(a):
        write_atomic(folder / f"{index[a.name]:03d}_{a.name}.npz", attribute_to_bytes(a))

    bank, facts = train_bank(f["features"], f["labels"], names, groups, settings, done, save)
    out = write_atomic(run.root / SVM_DIR / SVM_FILE, bank.to_bytes())
    for name, c in bank.one_class.items():
        print(f"{run.run}: {name}: one class only in the SVM split ({req.svm_split}: every image is {c}); it "
              f"predicts {c} for every image (the one-class rule, docs/choices.md), flagged in the manifest and eval",
              file=sys.stderr)
    for s in bank.svms:
        if s.note and s.constant < 0:
            print(f"{run.run}: {s.name}: {s.note}", file=sys.stderr)
    return stage.done(outputs={"svm": {"path": run.rel(out), "sha256": sha256_file(out)}},
                      split=req.svm_split, anet_weights_sha256=sha, one_class=bank.one_class,
                      attributes=bank.summary(), **facts,
                      mean_held_out_accuracy=_mean([s.held_out_accuracy for s in bank.svms]))


def _mean(values) -> float | None:
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None
