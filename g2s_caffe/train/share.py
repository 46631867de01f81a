"""Train each distinct job once under a RUNS root.

Table 1's seven runs repeat jobs: Step 1 is the same training in runs 1, 1+2, 1+3 and 1+2+3;
Step 2 from B the same in 1+2 and 1+2+3; Step 2 from A in 2 and 2+3.  A job's fingerprint
hashes everything that determines its training: its run copies of the solver (without the
two paths that name the run directory) and of the train/val net, and where its init comes
from (Model A's sha256 or random init; or the parent job's fingerprint and the head-surgery
mode).  A ready job whose fingerprint matches a finished job of a sibling run directory is
recorded as done with that job's init and final weights (relative paths, sha256 checked)
instead of being trained again; ``extra.shared_from`` names the original.  Set
``share_jobs: false`` in the config to train every run on its own.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..runs import Final, Init, Job, Run, list_runs, sha256_file
from .prepare import now, read_text_proto


def _solver_text(path: Path) -> str:
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    solver = read_text_proto(path, caffe_pb2.SolverParameter())
    solver.ClearField("net")                 # both name the run directory
    solver.ClearField("snapshot_prefix")
    return text_format.MessageToString(solver)


def _net_text(path: Path) -> str:
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    return text_format.MessageToString(read_text_proto(path, caffe_pb2.NetParameter()))


def init_key(run: Run, job: Job, head_init: str) -> str | None:
    """Where the job's init weights come from, as a string; None when a parent has no
    fingerprint (trained before fingerprints were recorded)."""
    src = job.extra["init_from"]
    if job.step == 1 or src == "A":
        return "A:" + (run.weights_a.get("sha256") or "random")
    parent = run.job("step1" if src == "B" else f"step2/{src[2:]}")
    parent_fp = parent.extra.get("fingerprint")
    if parent_fp is None:
        return None
    mode = head_init if src == "B" else "copy"    # as runner.resolve_init derives it
    return f"{src[0]}:{parent_fp}:{mode}"


def fingerprint(run: Run, job: Job, head_init: str) -> str | None:
    key = init_key(run, job, head_init)
    if key is None:
        return None
    payload = json.dumps({"step": job.step, "attribute": job.attribute, "scheme": job.scheme, "init": key,
                          "solver": _solver_text(run.path(job.solver)),
                          "train_val": _net_text(run.path(job.train_val))}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def find_done(run: Run, fp: str) -> tuple[Run, Job] | None:
    """A finished job with fingerprint ``fp`` in another run under the same RUNS root, whose
    final weights are still there with the recorded hash."""
    for other in list_runs(run.root.parent):
        if other.root.resolve() == run.root.resolve():
            continue
        for job in other.jobs:
            if (job.status == "done" and job.final is not None and not job.extra.get("shared_from")
                    and job.extra.get("fingerprint") == fp):
                path = other.path(job.final.path)
                if path.is_file() and sha256_file(path) == job.final.sha256:
                    return other, job
    return None


def _relative(run: Run, other: Run, rel: str | None) -> str | None:
    if rel is None or Path(rel).is_absolute():
        return rel
    return os.path.relpath(other.path(rel), run.root)


def adopt(run: Run, job: Job, other: Run, done: Job) -> None:
    """Record ``job`` as done with ``done``'s weights (no training)."""
    init = done.init
    job.init = Init(_relative(run, other, init.path), init.sha256, init.source, init.derived) if init else None
    job.final = Final(_relative(run, other, done.final.path), done.final.sha256, done.final.iteration)
    job.status = "done"
    job.started = job.finished = now()
    job.extra["shared_from"] = f"{other.run}/{done.id}"
