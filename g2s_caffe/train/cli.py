"""Train Steps 1-3 (Fig. 1) with the real `caffe train`, resumably, into RUNS/steps_<...>/.

  g2s train --data data/celeba --runs runs --steps 1,2,3            the paper's chain (CPU)
  g2s train --data D --runs R --ablations all                        Table 1's seven runs
  g2s train --data D --runs R --gpus 0,1 --jobs-per-gpu 2            Steps 2/3 concurrently
  g2s train --data D --runs R --emit slurm --out steps23.sbatch      Steps 2/3 as a Slurm array

Rerun the same command after any interruption (kill -9 included): finished jobs are
skipped, unfinished ones resume from their newest intact snapshot.  Every job's init
weights, final weights (path + sha256), seed and times are in RUNS/<run>/manifest.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import load_yaml, merge, merge_dotted
from ..errors import G2SError
from ..surgery import MODES
from .config import TrainConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", required=True, help="prepared dataset (g2s prep --out DIR)")
    p.add_argument("--runs", metavar="DIR", required=True, help="where the run directories go")
    p.add_argument("--dataset", help="dataset name; None = the prepared manifest's")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", default="1,2,3", help="a non-empty subset of 1,2,3 (Table 1's rows)")
    g.add_argument("--ablations", choices=("all",), help="all seven step combinations, one run each")
    p.add_argument("--attributes", metavar="FILE|A,B",
                   help="attributes YAML (names in label order + Step-3 crops), or names to restrict "
                        "Steps 2/3 to; None = the packaged list of --dataset")
    p.add_argument("--only", action="append", metavar="JOB[,JOB]",
                   help="run only these jobs (step1, step2/<attr>, step3/<attr>); repeatable")
    p.add_argument("--weights-a", metavar="PATH|none",
                   help="Model A (VGG_FACE.caffemodel); None = weights/VGG_FACE.caffemodel; "
                        "'none' = random init (recorded as such)")
    p.add_argument("--nets", metavar="DIR", help="a `g2s gen` tree; None = generate one into the run "
                   "from the config's variant, matching the prepared image size")
    p.add_argument("--variant", choices=("full", "small"), help="None = config net.variant (full)")
    p.add_argument("--gpus", metavar="0,1,..", help="GPU ids; None = CPU")
    p.add_argument("--jobs-per-gpu", type=int, metavar="K", help="None = config jobs_per_gpu (1)")
    p.add_argument("--jobs", type=int, metavar="N", help="concurrent CPU jobs; None = config jobs (1)")
    p.add_argument("--keep-snapshots", type=int, metavar="K", help="None = config keep_snapshots (2)")
    p.add_argument("--head-init", choices=MODES, help="Step-2 fc8_attr from B's fc8_joint rows "
                   "(copy) or its filler (random); None = config head_init (copy)")
    p.add_argument("--config", metavar="YAML", help="a TrainConfig YAML (see g2s_caffe/train/config.py)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. solver.max_iter_step1=200; repeatable")
    p.add_argument("--emit", choices=("slurm", "k8s"), help="write Steps 2/3 as a cluster job instead "
                   "of training (needs --out)")
    p.add_argument("--out", metavar="FILE", help="file for --emit")
    p.add_argument("--image", default="g2s-caffe:latest", help="container image for --emit k8s")
    p.add_argument("--pvc", default="g2s-shared", help="shared PersistentVolumeClaim for --emit k8s")


def load_config(args) -> TrainConfig:
    cfg = TrainConfig()
    if args.config:
        cfg = merge(cfg, load_yaml(Path(args.config)), args.config)
    cfg = merge_dotted(cfg, args.set)
    flags = {"keep_snapshots": args.keep_snapshots, "head_init": args.head_init, "jobs": args.jobs,
             "jobs_per_gpu": args.jobs_per_gpu}
    cfg = merge(cfg, {k: v for k, v in flags.items() if v is not None}, "command line")
    if args.variant:
        cfg = merge(cfg, {"net": {"variant": args.variant}}, "--variant")
    if cfg.net.variant not in ("full", "small"):
        raise G2SError(f"net.variant {cfg.net.variant!r}: expected full or small")
    if cfg.keep_snapshots < 1 or cfg.jobs < 1 or cfg.jobs_per_gpu < 1:
        raise G2SError("keep_snapshots, jobs and jobs_per_gpu must be >= 1")
    if cfg.head_init not in MODES:
        raise G2SError(f"head_init {cfg.head_init!r}: expected one of {', '.join(MODES)}")
    return cfg


def resolve_attributes(arg: str | None, dataset: str, prepared: list[str]):
    """(AttributeList, names Steps 2/3 are restricted to or None)."""
    from ..attributes import DEFAULT_DATASETS, default_attributes, load_attributes

    restrict = None
    if arg and (arg.endswith((".yaml", ".yml")) or Path(arg).is_file()):
        attrs = load_attributes(Path(arg))
    else:
        if arg:
            restrict = [n for n in arg.split(",") if n]
        if dataset not in DEFAULT_DATASETS:
            raise G2SError(f"dataset {dataset!r} has no packaged attribute list; pass --attributes FILE "
                           "(YAML: attributes: [{name, crop}, ...] in the label order of the prepared data)")
        attrs = default_attributes(dataset)
    if attrs.names != prepared:
        raise G2SError(f"{attrs.source}: attributes ({len(attrs)}: {', '.join(attrs.names[:4])}...) are not "
                       f"the prepared data's label columns ({len(prepared)}: {', '.join(prepared[:4])}...); "
                       "pass the attributes file the data was prepared with")
    if restrict:
        for n in restrict:
            attrs.index(n)   # G2SError for an unknown name
    return attrs, restrict


def parse_gpus(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        gpus = tuple(int(g) for g in text.split(",") if g.strip())
    except ValueError:
        raise G2SError(f"--gpus {text!r}: expected GPU ids like 0,1") from None
    if len(set(gpus)) != len(gpus) or any(g < 0 for g in gpus):
        raise G2SError(f"--gpus {text!r}: ids must be distinct and >= 0")
    return gpus


def run(args) -> int:
    from ..layout import open_prepared
    from ..runs import MANIFEST
    from . import plan, prepare
    from ..jobs.schedule import Scheduler
    from .config import default_effective_batch
    from .method import G2SMethod
    from .validate import validate_run

    cfg = load_config(args)
    data = open_prepared(Path(args.data))
    dataset = args.dataset or data.manifest.get("dataset")
    attrs, restrict = resolve_attributes(args.attributes, dataset, data.attributes)
    combos = plan.ABLATIONS if args.ablations else (plan.parse_steps(args.steps),)
    gpus = parse_gpus(args.gpus)
    if args.emit and not args.out:
        raise G2SError("--emit needs --out FILE")
    weights_a = prepare.check_weights_a(prepare.resolve_weights_a(args.weights_a))
    monitor = "val" if "val" in data.splits() else "test"
    req_base = dict(dataset=dataset, data=data, attrs=attrs, weights_a=None, gpus=gpus, cfg=cfg,
                    runs=Path(args.runs), nets=Path(args.nets) if args.nets else None)

    # Every run's copies are written and checked before any job of any run starts.
    runs, selections = [], []
    for steps in combos:
        req = prepare.Request(steps=steps, **req_base)
        specs = plan.plan_jobs(attrs, steps)
        chosen = [s for s in specs if restrict is None or s.attribute is None or s.attribute in restrict]
        chosen = plan.select(chosen, args.only)
        r = prepare.create_or_load(req, specs, weights_a, monitor)
        try:
            validate_run(r, data, default_effective_batch(cfg), len(gpus))
        except G2SError:
            if all(j.started is None for j in r.jobs):   # nothing trained: let a rerun rewrite it
                (r.root / MANIFEST).unlink(missing_ok=True)
            raise
        runs.append(r)
        selections.append([s.id for s in chosen])

    if weights_a.get("random_init"):
        print(f"WARNING: {prepare.RANDOM_WARNING}")
    if args.emit:
        return _emit(args, runs, attrs, restrict, gpus)
    status = 0
    for r, ids in zip(runs, selections):
        print(f"{r.run}: {len(ids)} job(s) -> {r.root}")
        result = Scheduler(r, ids, cfg.scheduler(), G2SMethod(cfg.head_init), gpus).run_all()
        counts = {}
        for s in result.values():
            counts[s] = counts.get(s, 0) + 1
        print(f"{r.run}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        if any(s != "done" for s in result.values()):
            status = 1
    return status


def _emit(args, runs, attrs, restrict, gpus) -> int:
    from .cluster import emit

    names = restrict or attrs.names
    for r in runs:
        if not any(j.step in (2, 3) for j in r.jobs):
            continue
        base = ["g2s", "train", "--data", str(Path(args.data).resolve()), "--runs", str(Path(args.runs).resolve()),
                "--dataset", r.dataset, "--steps", ",".join(map(str, r.steps)),
                "--weights-a", r.weights_a["path"] or "none"]
        if args.attributes and (args.attributes.endswith((".yaml", ".yml")) or Path(args.attributes).is_file()):
            base += ["--attributes", str(Path(args.attributes).resolve())]
        if args.nets:
            base += ["--nets", str(Path(args.nets).resolve())]
        if args.config:
            base += ["--config", str(Path(args.config).resolve())]
        for s in args.set:
            base += ["--set", s]
        if args.variant:
            base += ["--variant", args.variant]
        if args.head_init:
            base += ["--head-init", args.head_init]
        if gpus:
            base += ["--gpus", "0"]
        out = Path(args.out)
        if len(runs) > 1:
            out = out.with_name(f"{out.stem}.{r.run}{out.suffix}")
        emit(args.emit, out, base, names, f"g2s_{r.run}", 1 if gpus else 0, image=args.image, claim=args.pvc)
        print(f"{r.run}: {len(names)} Step-2/3 tasks -> {out}")
    return 0
