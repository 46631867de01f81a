"""Which jobs a run has and where each job's initial weights come from (Table 1 ablations).

Fig. 1: Model A (VGG-Face) -> Step 1 (joint, all attributes) = Model B -> Step 2 (one net
per attribute, general crop) = Model C_i -> Step 3 (attribute's own crop).  A run trains any
non-empty subset of the steps; a left-out step is bridged by the weights before it:
Step 2 without Step 1 starts from A; Step 3 without Step 2 starts from B, or from A when
Step 1 is left out too.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from g2s_caffe.core.attributes import AttributeList
from g2s_caffe.core.crops import GENERAL_SCHEME
from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.g2s.steps import ALL_STEPS, job_id, run_name

# Table 1's seven combinations, in the table's order (single steps, pairs, all three).
ABLATIONS: tuple[tuple[int, ...], ...] = tuple(
    c for r in (1, 2, 3) for c in itertools.combinations(ALL_STEPS, r))


@dataclass(frozen=True)
class JobSpec:
    id: str
    step: int
    attribute: str | None
    attr_index: int | None
    scheme: str
    init_from: str          # "A", "B", "C:<attr>"
    depends: tuple[str, ...]


def parse_steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(sorted({int(s) for s in text.split(",") if s.strip()}))
    except ValueError:
        raise G2SError(f"--steps {text!r}: expected a comma-separated subset of 1,2,3 (e.g. 1,2,3)") from None
    run_name(steps)   # validates
    return steps


def init_source(step: int, steps: tuple[int, ...], attribute: str | None) -> str:
    """Where a job of ``step`` in a run of ``steps`` starts from."""
    if step == 1:
        return "A"
    if step == 2:
        return "B" if 1 in steps else "A"
    if 2 in steps:
        return f"C:{attribute}"
    return "B" if 1 in steps else "A"


def plan_jobs(attrs: AttributeList, steps: tuple[int, ...]) -> list[JobSpec]:
    """All jobs of a run, each after the jobs it depends on."""
    jobs = []
    if 1 in steps:
        jobs.append(JobSpec("step1", 1, None, None, GENERAL_SCHEME, "A", ()))
    for step in (2, 3):
        if step not in steps:
            continue
        for t, attr in enumerate(attrs.attributes):
            src = init_source(step, steps, attr.name)
            dep = ("step1",) if src == "B" else (job_id(2, attr.name),) if src.startswith("C:") else ()
            scheme = GENERAL_SCHEME if step == 2 else attr.crop
            jobs.append(JobSpec(job_id(step, attr.name), step, attr.name, t, scheme, src, dep))
    return jobs


def select(jobs: list[JobSpec], only: list[str] | None) -> list[JobSpec]:
    """The jobs named by --only (ids like step2/Smiling); every name must exist."""
    if not only:
        return jobs
    ids = {j.id for j in jobs}
    wanted = [o for item in only for o in item.split(",") if o]
    bad = [o for o in wanted if o not in ids]
    if bad:
        raise G2SError(f"--only {', '.join(bad)}: no such job in this run "
                       f"(jobs: {', '.join(sorted(ids))[:400]})")
    return [j for j in jobs if j.id in set(wanted)]
