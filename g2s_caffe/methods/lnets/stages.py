"""The non-Caffe stages of an LNets run (whole, head_shoulder, threshold), in ``Run.stages``.

Entries like ANet's (stages.py): status, started, finished, the inputs the stage was made from
(prepared LMDBs' sha256, the raw-image folder, sizes, the weights' sha256, the settings) and
every output with its sha256; a rerun keeps a finished stage only when its inputs are the same
and its outputs are still there, and a stage interrupted half-way resumes from its own partial
outputs (LMDB commits, score chunks).

  whole          LNet_o's letterboxed whole images + the labels, train and monitor splits
  head_shoulder  LNet_s's input: LNet_o's box of each image, squared and enlarged (needs lnets/lnet_o done)
  threshold      the face threshold (Fig. 3(b)): each image's face score through the
                 cascade, face images (a split's own, default val) vs background images
                 (crops of them away from the labelled face + face-free registry photos); the
                 cut maximizing balanced accuracy; the histogram PNG
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.runs import Run, finished, sha256_file
from g2s_caffe.methods.lnets import nets as lnet_nets
from g2s_caffe.methods.lnets import data as ld
from g2s_caffe.methods.lnets.job_hooks import LNET_O, LNET_S
from g2s_caffe.methods.lnets.prepare import shape_of
from g2s_caffe.methods.lnets.raw import RawImages
from g2s_caffe.core.jobs.stages import Stage, as_json

THRESHOLD_DIR = "threshold"


def _prepared(data: layout.PreparedDataset, splits) -> dict:
    out = {}
    for split in splits:
        data.lmdb(split, layout.LABELS)
        out[split] = {"labels": data.manifest["splits"][split]["lmdbs"][layout.LABELS]["sha256"],
                      "keys": data.manifest["splits"][split].get("keys_sha256"), "count": data.count(split)}
    return out


def _splits(req) -> list[str]:
    return list(dict.fromkeys([req.train_split, req.monitor_split]))


def final_weights(run: Run, jid: str) -> tuple[Path, str]:
    job = run.job(jid)
    if not finished(job):
        raise G2SError(f"{run.root}/manifest.json: {jid} is {job.status}; finish the run (rerun `g2s lnets`)")
    path = run.path(job.final.path)
    if not path.is_file() or sha256_file(path) != job.final.sha256:
        raise G2SError(f"{path}: missing or changed since {run.root}/manifest.json recorded it; rerun `g2s lnets`")
    return path, job.final.sha256


# ------------------------------------------------------------------ the nets, loaded
def lnet(run: Run, which: str):
    from g2s_caffe.methods.lnets.infer import LNet

    jid = LNET_O if which == "lnet_o" else LNET_S
    weights, _ = final_weights(run, jid)
    return LNet(run.path(run.job(jid).deploy), weights, shape_of(run), which)


def cascade_of(run: Run, with_threshold: bool = True, stages_only: tuple[str, ...] = ("lnet_o", "lnet_s")):
    """The run's trained cascade (the threshold from its threshold stage when asked)."""
    from g2s_caffe.methods.lnets.infer import LNetsCascade

    threshold = None
    if with_threshold:
        t = run.stages.get(THRESHOLD_DIR) or {}
        if t.get("status") != "done":
            raise G2SError(f"{run.root}/manifest.json: the LNets run has no face threshold yet; rerun `g2s lnets`")
        threshold = float(t["threshold"])
    o = lnet(run, "lnet_o")
    s = lnet(run, "lnet_s") if "lnet_s" in stages_only else None
    return LNetsCascade(o, s, threshold=threshold)


def cascade_identity(run: Run) -> dict:
    """What a cascade's answers depend on (for tags of results computed with it)."""
    from g2s_caffe.methods.lnets.infer import cascade_rule

    out = {w: final_weights(run, j)[1] for w, j in (("lnet_o", LNET_O), ("lnet_s", LNET_S))}
    out["rule"] = cascade_rule()
    t = run.stages.get(THRESHOLD_DIR) or {}
    out["threshold"] = t.get("threshold")
    return out


# ------------------------------------------------------------------ whole images
def whole_stage(run: Run, req, raw: RawImages) -> Run:
    shape = shape_of(run)
    quality = int(req.data.manifest.get("jpeg_quality", 95))
    splits = _splits(req)
    inputs = {"prepared": _prepared(req.data, splits), "images": raw.identity(), "size": shape.input_size,
              "jpeg_quality": quality, "letterbox": "longer side to size, mean-colour padding"}
    stage = Stage(run, "whole", inputs, "whole-image stage")
    if stage.kept():
        return run
    old = run.stages.get("whole")
    if old and old.get("inputs") != as_json(inputs):
        ld.discard(run.root)                     # every LMDB came from other inputs
    run = stage.start()
    outputs = {}
    for split in splits:
        outputs[f"{split}/{lnet_nets.WHOLE}"] = ld.build_images(run.root, req.data, raw, split, lnet_nets.WHOLE,
                                                                shape.input_size,
                                                                ld.whole_maker(shape.input_size, quality))
        outputs[f"{split}/{lnet_nets.LABELS}"] = ld.copy_labels(run.root, req.data, split)
    return stage.done(outputs=outputs, images={s: req.data.count(s) for s in splits})


# ------------------------------------------------------------------ head-shoulder windows
def head_shoulder_stage(run: Run, req, raw: RawImages) -> Run:
    from g2s_caffe.methods.lnets.infer import LNetsCascade, head_shoulder_rule

    shape = shape_of(run)
    quality = int(req.data.manifest.get("jpeg_quality", 95))
    weights, sha = final_weights(run, LNET_O)
    splits = _splits(req)
    inputs = {"prepared": _prepared(req.data, splits), "images": raw.identity(), "size": shape.input_size,
              "jpeg_quality": quality, "lnet_o": sha,
              "window": {"rule": "LNet_o's box, no threshold, no pruning, square, enlarged", **head_shoulder_rule()}}
    stage = Stage(run, "head_shoulder", inputs, "head-shoulder stage")
    if stage.kept():
        return run
    old = run.stages.get("head_shoulder")
    if old and old.get("inputs") != as_json(inputs):
        ld.discard(run.root, lnet_nets.HEAD_SHOULDER)
    run = stage.start()
    from g2s_caffe.core.device import select_device

    select_device(req.gpus[0] if req.gpus else None)
    cascade = LNetsCascade(lnet(run, "lnet_o"))
    make = ld.head_shoulder_maker(cascade, shape.input_size, quality)
    outputs = {}
    for split in splits:
        outputs[f"{split}/{lnet_nets.HEAD_SHOULDER}"] = ld.build_images(run.root, req.data, raw, split,
                                                                        lnet_nets.HEAD_SHOULDER, shape.input_size, make)
        p = ld.windows_csv(run.root, split, req.data)
        outputs[f"{split}/windows"] = {"path": run.rel(p), "sha256": sha256_file(p)}
    return stage.done(outputs=outputs)


# ------------------------------------------------------------------ the face threshold
def spread(n: int, k: int) -> list[int]:
    """min(n, k) indices spread evenly over range(n), first and last included."""
    if k >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, k).round().astype(int).tolist()))


def threshold_items(data: layout.PreparedDataset, split: str, cfg, raw: RawImages):
    """[(name, kind, loader)] of the face and background images, and notes on what was used."""
    from g2s_caffe.methods.lnets import backgrounds
    from g2s_caffe.methods.lnets.raw import reference_boxes, split_items

    items = split_items(data, split)
    picked = spread(len(items.keys), cfg.face_images)
    out = [(f"face:{items.keys[i]}", "face", (lambda key=items.keys[i]: raw.load(key))) for i in picked]
    refs, where = reference_boxes(data)
    notes = {"faces": f"{len(picked)} images of the {split} split (spread evenly over its {len(items.keys)})"}
    crops = 0
    if cfg.background_crops and refs is None:
        notes["crops"] = f"none: {where}"
    elif cfg.background_crops:
        from PIL import Image

        for i in picked:
            if crops >= cfg.background_crops:
                break
            key, name = items.keys[i], items.names[i]
            if name not in refs:
                raise G2SError(f"{where}: no box for {name} (prepared key {key})")
            with Image.open(raw.path(key)) as im:          # the size only, without decoding
                size = im.size
            for k, box in enumerate(backgrounds.crops_away_from(size, refs[name][0])):
                if crops >= cfg.background_crops:
                    break

                def load(key=key, box=box):
                    x1, y1, x2, y2 = (int(v) for v in box)
                    return np.ascontiguousarray(raw.load(key)[y1:y2, x1:x2])
                out.append((f"crop:{key}:{k}", "background", load))
                crops += 1
        notes["crops"] = (f"{crops} square crops of those images away from their face box x"
                          f"{backgrounds.FACE_CLEARANCE} ({where}), >= {backgrounds.MIN_CROP_SIDE} px")
    photos = 0
    if cfg.registry_photos:
        for name, img in backgrounds.registry_backgrounds():
            out.append((name, "background", (lambda img=img: img)))
            photos += 1
        notes["photos"] = f"{photos} face-free registry photos (backgrounds.registry_backgrounds)"
    return out, notes, {"crops": crops, "photos": photos}


def threshold_stage(run: Run, req, raw: RawImages) -> Run:
    from g2s_caffe.methods.lnets import localize as lz
    from g2s_caffe.core.jobs.chunks import resumable_map

    cfg = req.cfg.threshold
    split = req.threshold_split
    ident = cascade_identity(run)
    ident.pop("threshold")
    inputs = {"cascade": ident, "split": split, "prepared": _prepared(req.data, [split]), "images": raw.identity(),
              "settings": {"face_images": cfg.face_images, "background_crops": cfg.background_crops,
                           "registry_photos": cfg.registry_photos}, "rule": lz.hp.THRESHOLD_RULE}
    stage = Stage(run, THRESHOLD_DIR, inputs, "face threshold")
    if stage.kept(f" ({(run.stages.get(THRESHOLD_DIR) or {}).get('threshold', float('nan')):.4g})"):
        return run
    run = stage.start()
    from g2s_caffe.core.device import select_device

    select_device(req.gpus[0] if req.gpus else None)
    cascade = cascade_of(run, with_threshold=False)
    items, notes, counts = threshold_items(req.data, split, cfg, raw)
    folder = run.root / THRESHOLD_DIR
    names = [n for n, _, _ in items]
    res = resumable_map(folder / "scores.chunks", inputs, names,
                        lambda i: {"score": cascade.max_score(items[i][2](), where=items[i][0])},
                        desc="LNets threshold: max window score")
    kinds = [k for _, k, _ in items]
    scores = np.array([r["score"] for r in res])
    faces = scores[[k == "face" for k in kinds]]
    bgs = scores[[k == "background" for k in kinds]]
    if not len(bgs):
        raise G2SError("the face threshold needs background images: the dataset has no face boxes for crops and "
                       "threshold.registry_photos is off; turn it on (--set threshold.registry_photos=true)")
    choice = lz.select_threshold(faces, bgs)
    png = lz.plot_threshold(faces, bgs, choice, folder / "threshold.png",
                            title=f"LNets ({run.dataset}): the face's score per image")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "kind", "score", "above_threshold"])
    for n, k, s in zip(names, kinds, scores):
        w.writerow([n, k, f"{s:.6g}", int(s >= choice.threshold)])
    table = write_atomic(folder / "scores.csv", buf.getvalue())
    summary = {**choice.to_dict(), "notes": notes, "backgrounds_by_kind": counts}
    js = write_atomic(folder / "threshold.json", json.dumps(summary, indent=2) + "\n")
    if not choice.separable:
        print(f"{run.run}: the face and background scores overlap: threshold {choice.threshold:.4g} keeps "
              f"{100 * choice.face_rate:.1f} % of the faces and rejects {100 * choice.background_rate:.1f} % of the "
              "backgrounds (threshold.png)", file=sys.stderr)
    outputs = {n: {"path": run.rel(p), "sha256": sha256_file(p)} for n, p in
               (("histogram", png), ("scores", table), ("summary", js))}
    return stage.done(outputs=outputs, **summary)
