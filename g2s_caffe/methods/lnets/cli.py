"""Train the LNets+ANet baseline's LNets (Liu et al. 2015, §2.1) into RUNS/lnets/, resumably:
face localization learned from image-level attribute tags alone.

  g2s lnets --data data/celeba --runs runs                 LNet_o -> LNet_s -> face threshold
  g2s localize --lnets runs/lnets --data data/celeba       per image windows / face, pictures,
                                                           Fig. 7 curves vs our MTCNN port
  g2s anet --data data/celeba --runs runs --faces lnets    ANet on LNets' face windows (end to end)

Stages (each recorded in RUNS/lnets/manifest.json, a g2s_caffe.core.runs.Run of method "lnets"):
  whole          the raw images of the train and monitor splits (the prepared manifest's
                 sources.images) letterboxed to the input size, and the prepared labels (data.py)
  lnet_o         `caffe train` job lnets/lnet_o: the 40 (T) attribute tags on whole images
  head_shoulder  LNet_o's box of each image, square and enlarged, resized: LNet_s's input
  lnet_s         `caffe train` job lnets/lnet_s: the same tags on those windows
  threshold      the face threshold from face vs background images (threshold/threshold.png)

Both nets start from BVLC AlexNet's conv1..conv5 (ImageNet, the paper's pre-training), read by
name from --weights-alexnet (default weights/bvlc_alexnet.caffemodel; Caffe model zoo
models/bvlc_alexnet), or from random init with `--weights-alexnet none` (recorded in the
manifest, not the paper's setting).  No box or landmark is used in training.  Rerun the same
command after any interruption (kill -9 included): finished stages are kept, LMDBs and score
chunks continue from their last commit, Caffe jobs from their newest intact snapshot.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from g2s_caffe.core.jobs.request import load_config as load_run_config
from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.lnets.config import LNetsConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    from g2s_caffe.core.jobs.request import add_common_arguments, add_run_arguments

    add_common_arguments(p, "lnets")
    p.add_argument("--weights-alexnet", metavar="PATH|none",
                   help="BVLC AlexNet caffemodel both nets start from (by layer name); None = "
                        "weights/bvlc_alexnet.caffemodel; 'none' = random init (not the paper's setting)")
    p.add_argument("--images", metavar="DIR", type=Path,
                   help="the dataset's raw image folder; None = the prepared manifest's sources.images")
    add_run_arguments(p, "lnets", "training and localization", "LNetsConfig", "g2s_caffe/methods/lnets/config.py",
                      "solver.max_iter_lnet_o=200")


def outputs(args) -> list[Path]:
    return [Path(args.runs)]


def load_config(args) -> LNetsConfig:
    return load_run_config(LNetsConfig(), args)


def request(args, cfg: LNetsConfig):
    from g2s_caffe.methods.lnets import params as hp
    from g2s_caffe.core.datasets import monitor_split
    from g2s_caffe.core.jobs.request import common_request
    from g2s_caffe.methods.lnets.nets import resolve_alexnet
    from g2s_caffe.methods.lnets.prepare import Request

    data, dataset, attrs, gpus = common_request(args, "lnets")
    splits = data.splits()
    if "train" not in splits:
        raise G2SError(f"{data.root}: no train split to fine-tune LNets on (splits: {', '.join(splits)})")
    alexnet = resolve_alexnet(args.weights_alexnet)
    if alexnet is not None and cfg.shape.widths != hp.ALEXNET_WIDTHS:
        raise G2SError(f"--variant {cfg.variant}: its conv widths {cfg.shape.widths} are not AlexNet's "
                       f"{hp.ALEXNET_WIDTHS}, so bvlc_alexnet.caffemodel cannot initialize it; pass "
                       "--weights-alexnet none (random init) or use --variant full")
    if alexnet is not None and not alexnet.is_file():
        raise G2SError(f"{alexnet}: BVLC AlexNet not found. {hp.ALEXNET_HINT}")
    if alexnet is None:
        print(f"WARNING: {hp.ALEXNET_RANDOM_WARNING}", file=sys.stderr)
    threshold_split = cfg.threshold.split or ("val" if "val" in splits else "train")
    if threshold_split not in splits:
        raise G2SError(f"threshold.split {threshold_split}: not prepared in {data.root} (splits: {', '.join(splits)})")
    return Request(dataset=dataset, data=data, attrs=attrs, runs=Path(args.runs), cfg=cfg, gpus=gpus,
                   nets=args.nets, alexnet=alexnet, images=args.images, train_split="train",
                   monitor_split=monitor_split(splits=splits, train="train"), threshold_split=threshold_split)


def run(args) -> int:
    from g2s_caffe.core.jobs.schedule import Scheduler
    from g2s_caffe.core.jobs.space import expect_run
    from g2s_caffe.core.runs import MANIFEST, load_run
    from g2s_caffe.methods.lnets import stages as st
    from g2s_caffe.core.jobs.request import check_jobs
    from g2s_caffe.methods.lnets.job_hooks import LNET_O, LNET_S, LNetsMethod
    from g2s_caffe.methods.lnets.prepare import create_or_load
    from g2s_caffe.methods.lnets.raw import RawImages

    cfg = load_config(args)
    req = request(args, cfg)
    raw = RawImages(req.data, req.images)
    run_ = create_or_load(req)
    init = "random init" if run_.pretrained.get("random_init") else f"BVLC AlexNet {run_.pretrained['path']}"
    print(f"{run_.run}: LNets ({cfg.variant}: widths {'/'.join(map(str, cfg.shape.widths))}, {cfg.shape.input_size}-px "
          f"input, from {init}) -> {run_.root}")
    try:
        check_jobs(run_, req)
    except G2SError:
        if all(j.started is None for j in run_.jobs) and not run_.stages:   # nothing done: let a rerun rewrite it
            (run_.root / MANIFEST).unlink(missing_ok=True)
        raise
    print(expect_run(req.runs, run_, cfg.keep_snapshots).line())
    for jid, data_stage in ((LNET_O, st.whole_stage), (LNET_S, st.head_shoulder_stage)):
        run_ = data_stage(run_, req, raw)
        result = Scheduler(run_, [jid], cfg.scheduler(), LNetsMethod(), req.gpus).run_all()
        if result.get(jid) != "done":
            print(f"{run_.run}: {jid} {result.get(jid)}; rerun the same command to resume", file=sys.stderr)
            return 1
        run_ = load_run(run_.root)
    run_ = st.threshold_stage(run_, req, raw)
    t = run_.stages[st.THRESHOLD_DIR]
    print(f"{run_.run}: face threshold {t['threshold']:.4g} ({t['faces']} face vs {t['backgrounds']} background "
          f"images of {req.threshold_split}: balanced accuracy {100 * t['balanced_accuracy']:.1f} %, "
          f"{'separable' if t['separable'] else 'overlapping'}; {run_.root / st.THRESHOLD_DIR / 'threshold.png'})")
    print(f"{run_.run}: localize and evaluate with: g2s localize --lnets {run_.root} --data {req.data.root}; "
          f"ANet on its windows: g2s anet --data {req.data.root} --runs {req.runs} --faces lnets")
    return 0
