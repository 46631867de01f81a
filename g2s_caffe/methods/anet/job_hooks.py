"""ANet's answers to the shared job machinery (``g2s_caffe.core.jobs.hooks.JobHooks``).

Init weights: pre-training starts from random init (its fillers: ANet is pre-trained on
identities from scratch, §2.2); fine-tuning from pre-training's final weights, read from the
manifest, checked against their sha256 and loaded by layer name (Caffe's --weights: conv1 ..
fc carry over, the identity classifier is left behind, the attribute head starts from its
filler).  Fingerprints: ``jobs.reuse.training_fingerprint`` with the init's key and the data
stage's output hashes.
"""
from __future__ import annotations

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs.reuse import training_fingerprint
from g2s_caffe.core.runs import Init, Job, Run, sha256_file

JOB_KIND = "anet"             # in the jobs' fingerprints: ANet's two jobs, whichever the face source
PRETRAIN = "anet/pretrain"
FINETUNE = "anet/finetune"
RANDOM = "random"


def parent_id(job: Job) -> str | None:
    src = job.extra.get("init_from", RANDOM)
    return None if src == RANDOM else src


class ANetMethod:
    def resolve_init(self, run: Run, job: Job) -> Init:
        pid = parent_id(job)
        if pid is None:
            return Init(None, None, RANDOM)
        parent = run.job(pid)
        if parent.status != "done" or parent.final is None:
            raise G2SError(f"{run.root}/manifest.json: {job.id} starts from {pid}, which is {parent.status}; "
                           "train it first (rerun `g2s anet`)")
        path = run.path(parent.final.path)
        if not path.is_file() or sha256_file(path) != parent.final.sha256:
            raise G2SError(f"{path}: missing or changed since the manifest recorded it (sha256 "
                           f"{parent.final.sha256[:12]}...); retrain {pid} (delete its final.caffemodel and "
                           "snapshots, then rerun `g2s anet`)")
        return Init(parent.final.path, parent.final.sha256, pid)

    def fingerprint(self, run: Run, job: Job) -> str | None:
        pid = parent_id(job)
        if pid is None:
            key = RANDOM
        else:
            parent_fp = run.job(pid).extra.get("fingerprint")
            if parent_fp is None:
                return None
            key = f"{pid}:{parent_fp}"
        data = {k: v.get("sha256") for k, v in run.stages.get("data", {}).get("outputs", {}).items()}
        return training_fingerprint(run, job, key, method=JOB_KIND, data=data)
