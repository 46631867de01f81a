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

Stages (each recorded in RUNS/<run>/manifest.json, a g2s_caffe.core.runs.Run of method "lnets_anet"):
  faces      (--faces lnets) LNets' face window of every image ANet trains or fits SVMs on:
             the best window of LNet_s (faces.py), RUNS/<run>/faces/<split>.csv
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

from g2s_caffe.core.config import from_command_line
from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.anet.config import ANetConfig


def add_common_arguments(p: argparse.ArgumentParser, run_dir: str) -> None:
    """The data arguments `g2s anet` and `g2s lnets` share (before their own)."""
    p.add_argument("--data", metavar="DIR", required=True, help="prepared dataset (g2s prep --out DIR)")
    p.add_argument("--runs", metavar="DIR", required=True, help=f"where the run directory {run_dir}/ goes")
    p.add_argument("--dataset", help="dataset name; None = the prepared manifest's")
    p.add_argument("--attributes", metavar="FILE", help="attributes YAML; None = the prepared manifest's list, "
                   "else the packaged list of --dataset")
    p.add_argument("--variant", choices=("full", "small"), help="None = config variant (full)")


def add_run_arguments(p: argparse.ArgumentParser, nets: str, gpu_use: str, config_class: str, config_file: str,
                      example: str) -> None:
    """The run-control arguments `g2s anet` and `g2s lnets` share (after their own)."""
    p.add_argument("--nets", metavar="DIR", type=Path,
                   help=f"a `g2s gen` tree with {nets}/ nets; None = generate them into the run from --variant")
    p.add_argument("--gpus", metavar="ID", help=f"GPU id for {gpu_use} (one); None = CPU")
    p.add_argument("--keep-snapshots", type=int, metavar="K", help="None = config keep_snapshots (2)")
    p.add_argument("--config", metavar="YAML", help=f"a YAML of {config_class} (see g2s_caffe/methods/lnets_anet/{config_file})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"config override, e.g. {example}; repeatable")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "anet_prep_boxes/ or lnets_anet")
    p.add_argument("--svm-split", metavar="SPLIT",
                   help="split the SVMs are trained on; None = val when prepared (CelebA: the paper's next "
                        "1k identities), else train (LFWA, with --anet-from)")
    p.add_argument("--anet-from", metavar="RUN",
                   help="use this ANet run's fine-tuned net (e.g. CelebA's RUNS/anet) and train only the SVMs "
                        "here (the paper's LFWA protocol); None or empty = train ANet here")
    p.add_argument("--faces", choices=("prep", "lnets"), default="prep",
                   help="face regions: prep = g2s prep's boxes (run anet_prep_boxes); lnets = LNets' windows "
                        "(run lnets_anet, end to end)")
    p.add_argument("--lnets", metavar="RUN", type=Path,
                   help="with --faces lnets: the LNets run (g2s lnets); None = RUNS/lnets")
    p.add_argument("--images", metavar="DIR", type=Path,
                   help="with --faces lnets: the raw image folder; None = the prepared manifest's sources.images")
    add_run_arguments(p, "anet", "training and features", "ANetConfig", "config.py",
                      "solver.max_iter_pretrain=200")


def load_config(args) -> ANetConfig:
    return from_command_line(ANetConfig(), args.config, args.set,
                             {"keep_snapshots": args.keep_snapshots, "variant": args.variant}).check()


def monitor_split(splits: list[str], train: str) -> str:
    """Fine-tuning's TEST-phase split: val when prepared, else test (monitoring only)."""
    for s in ("val", "test"):
        if s in splits and s != train:
            return s
    raise G2SError(f"the prepared data has no val or test split to monitor fine-tuning on (splits: {', '.join(splits)})")


def common_request(args, command: str):
    """(prepared data, dataset, attributes, gpus) as `g2s anet` and `g2s lnets` both resolve them."""
    from g2s_caffe.core.layout import open_prepared
    from g2s_caffe.methods.g2s.train.cli import parse_gpus, resolve_attributes

    data = open_prepared(Path(args.data))
    dataset = args.dataset or data.manifest.get("dataset")
    attrs, _ = resolve_attributes(args.attributes, dataset, data.attributes, data.manifest.get("attribute_list"))
    gpus = parse_gpus(args.gpus)
    if len(gpus) > 1:
        raise G2SError(f"--gpus {args.gpus}: g2s {command} trains on one GPU (its two jobs run one after the other)")
    return data, dataset, attrs, gpus


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
    lnets = None
    if args.faces == "lnets":
        from g2s_caffe.methods.lnets_anet.faces import lnets_run

        lnets = Path(args.lnets or Path(args.runs) / "lnets")
        lnets_run(lnets)                       # a clear error before anything is written
    elif args.lnets or args.images:
        raise G2SError("--lnets and --images go with --faces lnets")
    return Request(dataset=dataset, data=data, attrs=attrs, runs=Path(args.runs), cfg=cfg, gpus=gpus,
                   nets=args.nets, train_split=train, monitor_split=monitor_split(splits, train),
                   svm_split=svm_split, identities=k, anet_from=args.anet_from, faces=args.faces, lnets=lnets,
                   images=args.images)


def check_jobs(run, req) -> None:
    """Pre-flight: batches fit their splits, the solvers snapshot (what a rerun resumes from)."""
    from caffe.proto import caffe_pb2

    from g2s_caffe.core.nets.protofiles import read_text_proto
    from g2s_caffe.core.jobs.runcopy import phase_of

    if req.gpus and (run.caffe.get("build_info") or {}).get("cmake_flags", {}).get("CPU_ONLY") == "ON":
        raise G2SError(f"--gpus given, but the Caffe at {run.caffe.get('prefix')} is a CPU_ONLY build; leave out "
                       "--gpus (CPU) or build Caffe with CUDA")
    for job in run.jobs:
        net = read_text_proto(run.path(job.train_val), caffe_pb2.NetParameter())
        for layer in net.layer:
            if layer.type != "Data":
                continue
            split = req.train_split if phase_of(layer) == "train" else req.monitor_split
            count = req.data.count(split)
            if layer.data_param.batch_size > count:
                raise G2SError(f"{run.path(job.train_val)}: layer {layer.name!r} batch {layer.data_param.batch_size} "
                               f"is larger than its split ({count} images in {split}); lower the batch "
                               "(--set solver.batch_size=N / solver.test_batch_size=N)")


def run(args) -> int:
    from g2s_caffe.core.jobs.schedule import Scheduler
    from g2s_caffe.core.runs import MANIFEST, load_run
    from g2s_caffe.methods.anet import stages
    from g2s_caffe.methods.anet.job_hooks import FINETUNE, PRETRAIN, ANetMethod
    from g2s_caffe.methods.anet.prepare import create_or_load

    cfg = load_config(args)
    args.anet_from = Path(args.anet_from) if args.anet_from else None
    req = request(args, cfg)
    run_ = create_or_load(req)
    where = "LNets' face windows" if req.faces == "lnets" else "g2s prep's face boxes"
    print(f"{run_.run}: ANet ({cfg.variant}: region {cfg.shape.region_size} px, {cfg.shape.n_patches} patches of "
          f"{cfg.shape.patch_size} px) on {where} -> {run_.root}")
    if req.anet_from is None:
        try:
            check_jobs(run_, req)
        except G2SError:
            if all(j.started is None for j in run_.jobs) and not run_.stages:   # nothing done: let a rerun rewrite it
                (run_.root / MANIFEST).unlink(missing_ok=True)
            raise
    if req.faces == "lnets":
        needed = [req.svm_split] if req.anet_from else [req.train_split, req.monitor_split, req.svm_split]
        run_ = stages.faces_stage(run_, req, needed)
    if req.anet_from is None:
        run_ = stages.data_stage(run_, req)
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
