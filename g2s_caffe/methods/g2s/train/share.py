"""G2S's job fingerprints: which trainings of Table 1's seven runs are the same.

Step 1 is the same training in runs 1, 1+2, 1+3 and 1+2+3; Step 2 from B the same in 1+2 and
1+2+3; Step 2 from A in 2 and 2+3.  A G2S job's init key is Model A's sha256 (or random init)
for a job that starts from A, else its parent job's fingerprint and the head-surgery mode.
``g2s_caffe.core.jobs.reuse`` does the rest (hashing the run copies, finding and adopting a
finished twin).  Set ``share_jobs: false`` in the config to train every run on its own.
"""
from __future__ import annotations

from g2s_caffe.core.jobs.reuse import training_fingerprint
from g2s_caffe.core.runs import Job, Run


def parent_id(job: Job) -> str | None:
    """The job whose final weights this job starts from (None: Model A or random)."""
    src = job.extra["init_from"]
    if job.step == 1 or src == "A":
        return None
    return "step1" if src == "B" else f"step2/{src[2:]}"


def init_key(run: Run, job: Job, head_init: str, parent_fp: str | None) -> str | None:
    """Where the job's init weights come from, as a string; None when the parent's
    fingerprint is unknown."""
    src = job.extra["init_from"]
    if parent_id(job) is None:
        return "A:" + (run.pretrained.get("sha256") or "random")
    if parent_fp is None:
        return None
    mode = head_init if src == "B" else "copy"    # as inits.resolve_init derives it
    return f"{src[0]}:{parent_fp}:{mode}"


def fingerprint(run: Run, job: Job, head_init: str) -> str | None:
    """The job's fingerprint, from its parent's recorded one (None if the parent has none)."""
    pid = parent_id(job)
    parent_fp = run.job(pid).extra.get("fingerprint") if pid else None
    key = init_key(run, job, head_init, parent_fp)
    return None if key is None else training_fingerprint(run, job, key)


def planned_fingerprints(run: Run, head_init: str) -> dict[str, str]:
    """Every job's fingerprint before any training, computed through the parents (for a
    cluster submission that must submit each distinct training once)."""
    out: dict[str, str] = {}

    def fp(job: Job) -> str:
        if job.id not in out:
            pid = parent_id(job)
            key = init_key(run, job, head_init, fp(run.job(pid)) if pid else None)
            out[job.id] = training_fingerprint(run, job, key)
        return out[job.id]

    for job in run.jobs:
        fp(job)
    return out


def plan_fingerprints(runs: list[Run], head_init: str, share: bool) -> list[dict[str, str]]:
    """Per run, {job id: fingerprint}; without sharing every job is its own training."""
    return [planned_fingerprints(r, head_init) if share else {j.id: f"{r.run}/{j.id}" for j in r.jobs} for r in runs]


def to_train(runs: list[Run], selections: list[list[str]], fps: list[dict[str, str]]) -> list[tuple[Run, Job]]:
    """The selected jobs a plan trains: one per distinct training, none already done."""
    seen = {fp[j.id] for r, fp in zip(runs, fps) for j in r.jobs if j.status == "done"}
    out = []
    for r, ids, fp in zip(runs, selections, fps):
        for jid in ids:
            if fp[jid] not in seen:
                seen.add(fp[jid])
                out.append((r, r.job(jid)))
    return out
