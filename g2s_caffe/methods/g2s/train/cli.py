"""Train Steps 1-3 (Fig. 1) with the real `caffe train`, resumably, into RUNS/steps_<...>/.

  g2s train --data data/celeba --runs runs --steps 1,2,3            the paper's chain (CPU)
  g2s train --data D --runs R --ablations all                        Table 1's seven runs
  g2s train --data D --runs R --gpus 0,1 --jobs-per-gpu 2            Steps 2/3 concurrently
  g2s train --data D --runs R --emit slurm --out submit.sh          the whole chain as one Slurm
                                                                     submission: bash submit.sh

Rerun the same command after any interruption (kill -9 included): finished jobs are
skipped, unfinished ones resume from their newest intact snapshot.  Every job's init
weights, final weights (path + sha256), seed and times are in RUNS/<run>/manifest.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from g2s_caffe.core.config import from_command_line, merge
from g2s_caffe.core.datasets import monitor_split
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs.request import parse_gpus, resolve_attributes
from g2s_caffe.methods.g2s.surgery import MODES
from g2s_caffe.methods.g2s.train.config import TrainConfig


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
    p.add_argument("--config", metavar="YAML", help="a TrainConfig YAML (see g2s_caffe/methods/g2s/train/config.py)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. solver.max_iter_step1=200; repeatable")
    p.add_argument("--emit", choices=("slurm", "k8s"), help="instead of training, write the whole chain "
                   "(Step 1, the Step-2/3 tasks, g2s eval) for a cluster into --out: slurm = one "
                   "executable submit script (bash FILE), k8s = three Jobs (kubectl apply -f FILE)")
    p.add_argument("--out", metavar="FILE", help="file for --emit")
    p.add_argument("--sbatch", action="append", default=[], metavar="OPTS",
                   help="--emit slurm: sbatch options for every job, written with '=': "
                        "--sbatch=\"--partition=gpu --account=lab --qos=normal --time=2-00:00:00\" "
                        "(they override the defaults --cpus-per-task=4 and, with --gpus, --gres=gpu:N); repeatable")
    p.add_argument("--sbatch-step1", action="append", default=[], metavar="OPTS",
                   help="--emit slurm: sbatch options for the Step-1 job only, after --sbatch "
                        "(e.g. --sbatch-step1=--time=7-00:00:00); repeatable")
    p.add_argument("--stop-before-limit", type=int, default=None, metavar="SECONDS",
                   help="--emit slurm: a task stops at a snapshot this long before its time limit and "
                        "requeues itself; None = 300")
    p.add_argument("--allow-local-paths", action="store_true",
                   help="--emit slurm: accept shared paths under /tmp, /var/tmp, /dev/shm, /run or $TMPDIR "
                        "(only for a single-node cluster, where every task runs on this machine)")
    p.add_argument("--image", default="g2s-caffe:latest", help="container image for --emit k8s")
    p.add_argument("--pvc", default="g2s-shared", help="shared PersistentVolumeClaim for --emit k8s")
    p.add_argument("--pvc-mount", default="/shared", metavar="DIR",
                   help="--emit k8s: where the PVC is mounted, in the pods and on this host: every "
                        "shared path must lie under it")
    p.add_argument("--if-busy", choices=("skip", "wait"), default="skip",
                   help="a job another g2s process is training (its lock is held): skip it here, or "
                        "wait for that process and then finish it if it did not (the cluster tasks wait)")


def outputs(args) -> list[Path]:
    """The run directories (written also by --emit, which checks them) and --emit's file's folder."""
    return [Path(args.runs)] + ([Path(args.out).parent] if args.emit and args.out else [])


def load_config(args) -> TrainConfig:
    cfg = from_command_line(TrainConfig(), args.config, args.set,
                            {"keep_snapshots": args.keep_snapshots, "head_init": args.head_init, "jobs": args.jobs,
                             "jobs_per_gpu": args.jobs_per_gpu})
    if args.variant:
        cfg = merge(cfg, {"net": {"variant": args.variant}}, "--variant")
    if cfg.net.variant not in ("full", "small"):
        raise G2SError(f"net.variant {cfg.net.variant!r}: expected full or small")
    if cfg.keep_snapshots < 1 or cfg.jobs < 1 or cfg.jobs_per_gpu < 1:
        raise G2SError("keep_snapshots, jobs and jobs_per_gpu must be >= 1")
    if cfg.head_init not in MODES:
        raise G2SError(f"head_init {cfg.head_init!r}: expected one of {', '.join(MODES)}")
    return cfg


def run(args) -> int:
    from g2s_caffe.core.layout import open_prepared
    from g2s_caffe.core.runs import MANIFEST, load_run
    from g2s_caffe.methods.g2s.train import plan, prepare
    from g2s_caffe.core.jobs.schedule import Scheduler
    from g2s_caffe.core.jobs.space import expect_training
    from g2s_caffe.methods.g2s.train.config import default_effective_batch
    from g2s_caffe.methods.g2s.train.job_hooks import G2SMethod
    from g2s_caffe.methods.g2s.train.share import plan_fingerprints, to_train
    from g2s_caffe.methods.g2s.train.validate import validate_run

    cfg = load_config(args)
    data = open_prepared(Path(args.data))
    dataset = args.dataset or data.manifest.get("dataset")
    attrs, restrict = resolve_attributes(args.attributes, dataset, data.attributes,
                                         data.manifest.get("attribute_list"))
    combos = plan.ABLATIONS if args.ablations else (plan.parse_steps(args.steps),)
    gpus = parse_gpus(args.gpus)
    if args.emit and not args.out:
        raise G2SError("--emit needs --out FILE")
    weights_a = prepare.check_weights_a(prepare.resolve_weights_a(args.weights_a))
    monitor = monitor_split(splits=data.splits())
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
    # Fingerprints before any training: each distinct training is counted (and submitted) once.
    fps = plan_fingerprints(runs, cfg.head_init, cfg.share_jobs)
    jobs = to_train(runs, selections, fps)
    slots = len(jobs) if args.emit else len(gpus) * cfg.jobs_per_gpu if gpus else cfg.jobs
    print(expect_training(Path(args.runs), jobs, cfg.keep_snapshots, slots).line())
    if args.emit:
        return _emit(args, runs, selections, fps, gpus)
    if gpus:
        from g2s_caffe.core.device import require_gpus
        require_gpus(gpus, "--gpus")
    status = 0
    for r, ids in zip(runs, selections):
        print(f"{r.run}: {len(ids)} job(s) -> {r.root}")
        result = Scheduler(r, ids, cfg.scheduler(), G2SMethod(cfg.head_init), gpus).run_all()
        while args.if_busy == "wait" and "running elsewhere" in result.values():
            busy = [j for j, s in result.items() if s == "running elsewhere"]
            print(f"{r.run}: waiting for {', '.join(busy)}: another g2s process holds its lock", flush=True)
            _wait_unlocked(r, busy, cfg.poll_seconds)
            result = Scheduler(load_run(r.root), ids, cfg.scheduler(), G2SMethod(cfg.head_init), gpus).run_all()
        counts = {}
        for s in result.values():
            counts[s] = counts.get(s, 0) + 1
        print(f"{r.run}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        if any(s != "done" for s in result.values()):
            status = 1
    return status


def _wait_unlocked(run, ids: list[str], poll: float) -> None:
    """Until no process holds the locks of these jobs (the holder finished, or died: then a
    rerun of the scheduler resumes the job from its snapshot)."""
    import time

    from g2s_caffe.core.jobs.schedule import job_busy

    while any(job_busy(run.path(run.job(j).dir)) for j in ids):
        time.sleep(max(poll, 1.0))


def _emit(args, runs, selections, fps, gpus) -> int:
    import shlex

    from g2s_caffe.methods.g2s.train import cluster

    kind = args.emit
    if kind == "k8s" and (args.sbatch or args.sbatch_step1 or args.allow_local_paths or args.stop_before_limit):
        raise G2SError("--sbatch, --sbatch-step1, --stop-before-limit and --allow-local-paths are for --emit slurm")
    if args.stop_before_limit is not None and args.stop_before_limit < 1:
        raise G2SError(f"--stop-before-limit {args.stop_before_limit}: expected seconds >= 1")
    chain = cluster.plan_chain(runs, selections, fps, "g2s_" + ("ablations" if args.ablations else runs[0].run))
    if not chain.step1 and not chain.units:
        raise G2SError("--emit: nothing to submit (the selected jobs are none)")

    r0 = runs[0]
    runs_dir = Path(args.runs).resolve()
    shared = {"--data": Path(r0.data), "--runs": runs_dir}
    opts = ["--data", r0.data, "--runs", str(runs_dir), "--dataset", r0.dataset,
            "--weights-a", r0.pretrained["path"] or "none"]
    if r0.pretrained["path"]:
        shared["--weights-a"] = Path(r0.pretrained["path"])
    if args.attributes and (args.attributes.endswith((".yaml", ".yml")) or Path(args.attributes).is_file()):
        shared["--attributes"] = Path(args.attributes).resolve()
        opts += ["--attributes", str(shared["--attributes"])]
    if args.nets:
        shared["--nets"] = Path(args.nets).resolve()
        opts += ["--nets", str(shared["--nets"])]
    if args.config:
        shared["--config"] = Path(args.config).resolve()
        opts += ["--config", str(shared["--config"])]
    for s in args.set:
        opts += ["--set", s]
    if args.variant:
        opts += ["--variant", args.variant]
    if args.head_init:
        opts += ["--head-init", args.head_init]
    if args.keep_snapshots:
        opts += ["--keep-snapshots", str(args.keep_snapshots)]
    if gpus:
        # The run's GPU count is part of its identity (Step 1's per-GPU batch); a Step-2/3
        # task runs one job at a time, on GPU 0 = the one GPU Slurm/Kubernetes gave it.
        opts += ["--gpus", ",".join(str(i) for i in range(len(gpus)))]
    eval_opts = ["eval", "--runs", str(runs_dir)] + (["--run", chain.eval_runs[0]] if len(runs) == 1 else []) \
        + (["--gpu", "0"] if gpus else [])
    command = shlex.join(["g2s", "train", *opts, "--emit", kind, "--out", str(args.out)])
    if kind == "slurm":
        g2s = cluster.g2s_command()
        shared["the g2s environment"] = Path(sys.prefix)
        if (r0.caffe or {}).get("prefix"):
            shared["the Caffe build"] = Path(r0.caffe["prefix"])
        paths = cluster.check_shared(shared, args.allow_local_paths)
        text = cluster.slurm_script(
            chain, [g2s, "train", *opts], [g2s, *eval_opts] if chain.eval_runs else [], paths, runs_dir,
            len(gpus), 1 if gpus else 0, [o for x in args.sbatch for o in shlex.split(x)],
            [o for x in args.sbatch_step1 for o in shlex.split(x)], args.allow_local_paths, command,
            args.stop_before_limit or cluster.SIGNAL_LEAD_S)
        how = f"bash {args.out}"
    else:
        cluster.check_shared(shared, False, under=args.pvc_mount)
        text = cluster.k8s_yaml(chain, ["g2s", "train", *opts], ["g2s", *eval_opts] if chain.eval_runs else [],
                                len(gpus), 1 if gpus else 0, args.image, args.pvc, args.pvc_mount, command)
        how = f"kubectl apply -f {args.out}, then the kubectl lines at its top"
    out = cluster.write_executable(Path(args.out), text, 0o755 if kind == "slurm" else 0o644)
    print(f"wrote {out}: {len(chain.step1)} Step-1 call(s), {len(chain.units)} Step-2/3 task(s), "
          f"{'evaluation' if chain.eval_runs else 'no evaluation'}; {chain.trainings} distinct trainings "
          f"for {chain.entries} job entries")
    if chain.note:
        print(f"note: {chain.note}")
    print(f"submit: {how}")
    return 0
