"""LNets' answers to the shared job machinery (``g2s_caffe.core.jobs.hooks.JobHooks``).

Init weights (both nets, §2.1: "both LNet_o and LNet_s are pre-trained with 1,000 general object
categories"): BVLC AlexNet's conv1 .. conv5, copied by name into a derived init.caffemodel in
the job's directory (nets.init_from_alexnet; the head fc_attr at its filler, drawn with
the job's seed), checked against the sha256 the manifest recorded for the AlexNet file; or,
with ``--weights-alexnet none``, random init (the fillers).  Fingerprints: the shared
``jobs.reuse.training_fingerprint`` with the init's key and the hashes of the LMDBs the job
reads (LNet_s's head-shoulder images depend on LNet_o's weights through them).
"""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs.reuse import training_fingerprint
from g2s_caffe.core.runs import Init, Job, Run, sha256_file

METHOD = "lnets"              # Run.method of an LNets run (localization; no attribute results)
RUN = "lnets"
LNET_O, LNET_S = "lnets/lnet_o", "lnets/lnet_s"
RANDOM, ALEXNET = "random", "alexnet"
INIT = "init.caffemodel"


def net_of(job: Job) -> str:
    """"lnet_o" or "lnet_s"."""
    return job.extra["net"]


class LNetsMethod:
    def resolve_init(self, run: Run, job: Job) -> Init:
        w = run.pretrained
        if w.get("random_init"):
            return Init(None, None, RANDOM)
        if job.init and job.init.path and run.path(job.init.path).is_file() \
                and sha256_file(run.path(job.init.path)) == job.init.sha256:
            return job.init                       # derived before (a resumed job)
        from g2s_caffe.methods.lnets import params as hp
        from g2s_caffe.methods.lnets.nets import init_from_alexnet

        source = Path(w["path"])
        if not source.is_file() or sha256_file(source) != w["sha256"]:
            raise G2SError(f"{source}: missing or changed since {run.root}/manifest.json recorded it (sha256 "
                           f"{str(w['sha256'])[:12]}...); put the same bvlc_alexnet.caffemodel back, or train "
                           f"another run directory. {hp.ALEXNET_HINT}")
        out = run.path(job.dir) / INIT
        derived = init_from_alexnet(run.path(job.train_val), source, out, seed=job.seed)
        derived["output"] = run.rel(out)
        return Init(run.rel(out), sha256_file(out), ALEXNET, derived)

    def fingerprint(self, run: Run, job: Job) -> str | None:
        w = run.pretrained
        key = RANDOM if w.get("random_init") else f"{ALEXNET}:{w['sha256']}"
        stage = "whole" if net_of(job) == "lnet_o" else "head_shoulder"
        outputs = (run.stages.get(stage) or {}).get("outputs", {})
        labels = (run.stages.get("whole") or {}).get("outputs", {})
        data = {k: v.get("sha256") for k, v in {**outputs, **labels}.items()}
        if not data:
            return None
        return training_fingerprint(run, job, key, method=METHOD, data=data)
