"""Train each distinct job once under a RUNS root.

Runs under one RUNS root often repeat a training: Table 1's seven G2S runs share Step 1 and
Step 2, and every run of a method shares its first stages with the run next to it.  A job's
fingerprint (computed by its method, ``hooks.JobHooks.fingerprint``) hashes everything that
determines its training: its run copies of the solver (without the two paths that name the
run directory) and of the train/val net, plus where its init comes from.  A ready job whose
fingerprint matches a finished job of a sibling run directory is recorded as done with that
job's init and final weights (relative paths, sha256 checked) instead of being trained again;
``extra.shared_from`` names the original.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from g2s_caffe.core.runs import Final, Init, Job, Run, list_runs, sha256_file
from g2s_caffe.core.nets.protofiles import read_text_proto
from g2s_caffe.core.jobs.provenance import now


def solver_text(path: Path) -> str:
    """The solver as text, without ``net`` and ``snapshot_prefix`` (both name the run directory)."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    solver = read_text_proto(path, caffe_pb2.SolverParameter())
    solver.ClearField("net")
    solver.ClearField("snapshot_prefix")
    return text_format.MessageToString(solver)


def net_text(path: Path) -> str:
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    return text_format.MessageToString(read_text_proto(path, caffe_pb2.NetParameter()))


def training_fingerprint(run: Run, job: Job, init_key: str, **extra) -> str:
    """sha256 over the job's solver and train/val net, its init key and ``extra`` fields."""
    payload = json.dumps({"step": job.step, "attribute": job.attribute, "scheme": job.scheme,
                          "init": init_key, "solver": solver_text(run.path(job.solver)),
                          "train_val": net_text(run.path(job.train_val)), **extra}, sort_keys=True)
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
