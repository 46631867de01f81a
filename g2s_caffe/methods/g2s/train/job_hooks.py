"""G2S's answers to the shared job machinery (``g2s_caffe.core.jobs.hooks.JobHooks``).

Init weights (Fig. 1): Step 1 loads Model A by layer name (or trains from random init);
Steps 2/3 get a derived init caffemodel written by head surgery (``g2s_caffe.methods.g2s.surgery``) from
Model A, B (= step1's final weights) or C_i (= step2/<attr>'s), read from the manifest and
checked against their sha256.  Fingerprints: ``share.fingerprint``.
"""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.runs import Init, Job, Run, sha256_file
from g2s_caffe.methods.g2s.train import share

INIT = "init.caffemodel"


def model_a_init(run: Run) -> Init:
    """Model A's entry for a job that starts from A (Caffe loads it by layer name)."""
    if run.pretrained.get("random_init"):
        return Init(None, None, "random")
    return Init(run.pretrained["path"], run.pretrained["sha256"], "A")


class G2SMethod:
    def __init__(self, head_init: str):
        self.head_init = head_init

    def fingerprint(self, run: Run, job: Job) -> str | None:
        return share.fingerprint(run, job, self.head_init)

    def resolve_init(self, run: Run, job: Job) -> Init:
        """The job's init, from the manifest only.  Steps 2/3 get a derived init caffemodel
        (reused when already there with the recorded hash)."""
        src = job.extra["init_from"]
        if job.step == 1:
            return model_a_init(run)
        if job.init and job.init.path and run.path(job.init.path).is_file() \
                and sha256_file(run.path(job.init.path)) == job.init.sha256:
            return job.init
        if src == "A":
            if run.pretrained.get("random_init"):
                return Init(None, None, "random")
            source, source_proto, source_sha = Path(run.pretrained["path"]), None, run.pretrained["sha256"]
            mode = "copy"
        else:
            parent = run.job(share.parent_id(job))
            if parent.status != "done" or parent.final is None:
                raise G2SError(f"{run.root}/manifest.json: {job.id} starts from {src} = {parent.id}, "
                               f"which is {parent.status}; train it first")
            source, source_proto, source_sha = run.path(parent.final.path), run.path(parent.deploy), parent.final.sha256
            mode = self.head_init if src == "B" else "copy"   # C_i -> Step 3: the whole net, head included
        if not source.is_file() or sha256_file(source) != source_sha:
            raise G2SError(f"{source}: missing or changed since the manifest recorded it (sha256 "
                           f"{source_sha[:12]}...); retrain {src} (delete its job's final.caffemodel)")
        from g2s_caffe.methods.g2s.surgery import derive_attribute_init

        out = run.path(job.dir) / INIT
        derived = derive_attribute_init(source, source_proto, run.path(job.train_val), job.attr_index,
                                        mode, out, seed=job.seed)
        derived["source_sha256"] = source_sha
        return Init(run.rel(out), sha256_file(out), src if src != "A" else "A", derived)
