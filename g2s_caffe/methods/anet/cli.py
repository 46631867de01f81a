"""Train the LNets+ANet baseline's ANet (Liu et al. 2015, §2.2), resumably, on one of two
kinds of face region (faces.py):

  --faces prep   (default) `g2s prep`'s face boxes (MTCNN, eye-aligned, scheme c): run
                 RUNS/anet_prep_boxes/ (part 1: ANet alone, on another method's boxes)
  --faces lnets  LNets' face windows (g2s lnets, no box or landmark in training): run
                 RUNS/lnets_anet/ (LNets+ANet end to end, as its authors ran it)

  g2s anet --data data/celeba --runs runs                       pre-train -> fine-tune -> SVMs (val)
  g2s lnets --data data/celeba --runs runs                      LNets first (g2s_caffe/methods/lnets/cli.py),
  g2s anet --data data/celeba --runs runs --faces lnets         then the same on LNets' windows
  g2s anet --data data/lfwa --runs runs_lfwa --anet-from runs/anet_prep_boxes
                                                                LFWA: CelebA's ANet, SVMs on
                                                                LFWA's train split
  g2s eval --runs runs                                          evaluates them next to the G2S runs
  g2s predict photo.jpg --runs runs --run lnets_anet            new photos, end to end

Stages (each recorded in RUNS/<run>/manifest.json, a g2s_caffe.core.runs.Run of method "anet" on prep
boxes, "lnets_anet" on LNets' faces):
  faces      (--faces lnets) LNets' face window of every image ANet trains or fits SVMs on:
             the LNets cascade's face box (lnets_anet/faces.py), RUNS/<run>/faces/<split>.csv
  data       the face regions (scheme c resized), labels, identity classes and same-person
             partners as LMDBs under RUNS/<run>/data/ (data.py)
  pretrain   `caffe train` job anet/pretrain: softmax over the train split's identities + the
             similarity loss, from random init (nets.pretrain_net)
  finetune   `caffe train` job anet/finetune: the 40 (T) attributes on random patches, from
             pre-training's weights (nets.finetune_net)
  features   every patch's FC of every image of the SVM split, one pass per image (features.py)
  svm        one LinearSVC per attribute, C chosen on a held-out part (svm.py)

Rerun the same command after any interruption (kill -9 included): finished stages are kept
(their inputs' and outputs' sha256 are checked), the data stage and the features continue
from their last commit, Caffe jobs resume from their newest intact snapshot (the shared job
machinery, g2s_caffe/core/jobs: a diverging job stops at its first non-finite loss).  CelebA's
identities come from identity_CelebA.txt through `g2s prep`; without them pre-training is
refused with what to get.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from g2s_caffe.core.datasets import monitor_split
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs.request import (add_common_arguments, add_run_arguments, check_jobs, common_request,
                                         load_config as load_run_config)
from g2s_caffe.methods.anet.config import ANetConfig
from g2s_caffe.methods.anet.faces import PREP, names as face_sources, source


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "anet_prep_boxes/ or lnets_anet")
    p.add_argument("--svm-split", metavar="SPLIT",
                   help="split the SVMs are trained on; None = val when prepared (CelebA: the paper's next "
                        "1k identities), else train (LFWA, with --anet-from)")
    p.add_argument("--anet-from", metavar="RUN",
                   help="use this ANet run's fine-tuned net (e.g. CelebA's RUNS/anet) and train only the SVMs "
                        "here (the paper's LFWA protocol); None or empty = train ANet here")
    p.add_argument("--faces", choices=face_sources(), default=PREP,
                   help="face regions: prep = g2s prep's boxes (run anet_prep_boxes); lnets = LNets' windows "
                        "(run lnets_anet, end to end)")
    p.add_argument("--lnets", metavar="RUN", type=Path,
                   help="with --faces lnets: the LNets run (g2s lnets); None = RUNS/lnets")
    p.add_argument("--images", metavar="DIR", type=Path,
                   help="with --faces lnets: the raw image folder; None = the prepared manifest's sources.images")
    add_run_arguments(p, "anet", "training and features", "ANetConfig", "g2s_caffe/methods/anet/config.py",
                      "solver.max_iter_pretrain=200")


def outputs(args) -> list[Path]:
    return [Path(args.runs)]


def load_config(args) -> ANetConfig:
    return load_run_config(ANetConfig(), args)


def request(args, cfg: ANetConfig):
    from g2s_caffe.core.layout import IDENTITIES
    from g2s_caffe.methods.anet import params as hp
    from g2s_caffe.methods.anet.data import identity_classes, split_identities
    from g2s_caffe.methods.anet.prepare import Request

    data, dataset, attrs, gpus = common_request(args, "anet")
    splits = data.splits()
    svm_split = args.svm_split or ("val" if "val" in splits else "train")
    if svm_split not in splits:
        raise G2SError(f"--svm-split {svm_split}: not prepared in {data.root} (splits: {', '.join(splits)})")
    if hp.ENLARGE_SCHEME not in data.schemes:
        raise G2SError(f"{data.root}/manifest.json: crop scheme {hp.ENLARGE_SCHEME!r} (the face box enlarged by "
                       f"M = 0.1, ANet's input) was not prepared; rerun g2s prep with --schemes including "
                       f"{hp.ENLARGE_SCHEME}")
    train = "train"
    k = 0
    if args.anet_from is None:
        if train not in splits:
            raise G2SError(f"{data.root}: no train split to pre-train ANet on (splits: {', '.join(splits)})")
        data.lmdb(train, IDENTITIES)          # a clear error (what to get, where) without identities
        _, numbers = split_identities(data, train)
        k = len(identity_classes(numbers)[1])
        if k < 2:
            raise G2SError(f"{data.lmdb(train, IDENTITIES)}: the train split holds {k} person; identity "
                           "pre-training needs at least 2")
        if svm_split == train:
            print(f"WARNING: the SVMs are trained on the split ANet was trained on ({train}); the paper trains "
                  "them on other people (CelebA: val)", file=sys.stderr)
    lnets = source(args.faces).check_request(args, Path(args.runs))
    return Request(dataset=dataset, data=data, attrs=attrs, runs=Path(args.runs), cfg=cfg, gpus=gpus,
                   nets=args.nets, train_split=train, monitor_split=monitor_split(splits=splits, train=train),
                   svm_split=svm_split, identities=k, anet_from=args.anet_from, faces=args.faces, lnets=lnets,
                   images=args.images)


def run(args) -> int:
    from g2s_caffe.core.jobs.schedule import Scheduler
    from g2s_caffe.core.jobs.space import expect_run
    from g2s_caffe.core.runs import MANIFEST, load_run
    from g2s_caffe.methods.anet import stages
    from g2s_caffe.methods.anet.job_hooks import FINETUNE, PRETRAIN, ANetMethod
    from g2s_caffe.methods.anet.prepare import create_or_load

    cfg = load_config(args)
    args.anet_from = Path(args.anet_from) if args.anet_from else None
    req = request(args, cfg)
    run_ = create_or_load(req)
    faces = source(req.faces)
    print(f"{run_.run}: ANet ({cfg.variant}: region {cfg.shape.region_size} px, {cfg.shape.n_patches} patches of "
          f"{cfg.shape.patch_size} px) on {faces.description} -> {run_.root}")
    if req.anet_from is None:
        try:
            check_jobs(run_, req)
        except G2SError:
            if all(j.started is None for j in run_.jobs) and not run_.stages:   # nothing done: let a rerun rewrite it
                (run_.root / MANIFEST).unlink(missing_ok=True)
            raise
    needed = [req.svm_split] if req.anet_from else [req.train_split, req.monitor_split, req.svm_split]
    run_ = faces.prepare(run_, req, needed)
    if req.anet_from is None:
        run_ = stages.data_stage(run_, req)
        print(expect_run(req.runs, run_, cfg.keep_snapshots).line())
        result = Scheduler(run_, [PRETRAIN, FINETUNE], cfg.scheduler(), ANetMethod(), req.gpus).run_all()
        if any(s != "done" for s in result.values()):
            print(f"{run_.run}: " + ", ".join(f"{j} {s}" for j, s in result.items())
                  + "; rerun the same command to resume", file=sys.stderr)
            return 1
        run_ = load_run(run_.root)             # as the scheduler left it
    else:
        print(f"{run_.run}: ANet from {run_.config['anet_from']['run']} (its pre-trained and fine-tuned jobs; "
              f"SVMs on {req.dataset}'s {req.svm_split} split)")
    run_ = stages.features_stage(run_, req)
    run_ = stages.svm_stage(run_, req)
    svm = run_.stages["svm"]
    print(f"{run_.run}: SVMs on {req.svm_split} ({svm['images']} images x {svm['patches']} patches, held-out part "
          f"by {svm['held_out_by']}); evaluate with: g2s eval --runs {req.runs}")
    return 0
