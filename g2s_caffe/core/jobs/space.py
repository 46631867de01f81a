"""The disk space a training needs, known before any job starts.

A job keeps its last K snapshot pairs (of the max_iter / snapshot it writes), and writes one
more before the oldest is pruned; a pair is the .caffemodel and the .solverstate (SGD's
momentum: one history blob per weight blob), each about the net's parameters x 4 bytes.  Then
final.caffemodel, and an init.caffemodel in the job's folder when its method derives one
(weight surgery).  The parameters are counted by Caffe on the job's TRAIN net (shapes only,
fillers left out: no random numbers drawn), once per architecture: Step 2's forty nets are one
count.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from g2s_caffe.core import disk
from g2s_caffe.core.nets.protofiles import read_text_proto
from g2s_caffe.core.runs import Job, Run

FLOAT_BYTES = 4                 # Caffe stores float32 weights
FILLERS = ("weight_filler", "bias_filler")


@lru_cache(maxsize=None)
def _parameters(net_text: str) -> int:
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from g2s_caffe.core.nets.weights import net_of

    net = net_of(text_format.Parse(net_text, caffe_pb2.NetParameter()))
    return sum(b.data.size for blobs in net.params.values() for b in blobs)


def model_bytes(train_val: Path) -> int:
    """About the size of a caffemodel of this net: its parameters x 4 bytes."""
    from google.protobuf import text_format

    from g2s_caffe.core.nets.weights import shape_only

    net = shape_only(train_val, phase="TRAIN")
    net.ClearField("name")
    for layer in net.layer:
        for param in (layer.convolution_param, layer.inner_product_param):
            for filler in FILLERS:
                param.ClearField(filler)
    return FLOAT_BYTES * _parameters(text_format.MessageToString(net))


def snapshot_count(run: Run, job: Job) -> int:
    """How many snapshots Caffe writes: every ``snapshot`` iterations and at the end."""
    from caffe.proto import caffe_pb2

    solver = read_text_proto(run.path(job.solver), caffe_pb2.SolverParameter())
    return math.ceil(solver.max_iter / solver.snapshot) if solver.snapshot else 1


def job_bytes(run: Run, job: Job, keep: int) -> int:
    """What a finished job keeps: its last K snapshot pairs, its final weights, and a derived
    init (known once it started; before, expected of a job that starts from another job's)."""
    model = model_bytes(run.path(job.train_val))
    derived = job.init.derived is not None if job.init else bool(job.extra.get("depends"))
    return model * (2 * min(keep, snapshot_count(run, job)) + 1 + int(derived))


def expect_training(runs_root: Path, jobs: list[tuple[Run, Job]], keep: int, concurrent: int) -> disk.Need:
    """Remember (and warn about) what ``jobs`` still need under ``runs_root`` (core/disk.py),
    ``concurrent`` of them at a time, each writing one snapshot pair more than it keeps."""
    pruned = [model_bytes(run.path(job.train_val)) for run, job in jobs if snapshot_count(run, job) > keep]
    in_flight = min(concurrent, len(pruned)) * 2 * max(pruned, default=0)
    total = sum(job_bytes(run, job, keep) for run, job in jobs) + in_flight
    return disk.expect(runs_root, total, f"training {len(jobs)} job(s) ({keep} snapshot pair(s) and the final "
                       "weights kept of each)", parts=[run.path(job.dir) for run, job in jobs])


def expect_run(runs_root: Path, run: Run, keep: int) -> disk.Need:
    """``expect_training`` for a run's unfinished jobs, trained one at a time."""
    return expect_training(runs_root, [(run, j) for j in run.jobs if j.status != "done"], keep, 1)
