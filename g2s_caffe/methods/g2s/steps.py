"""Steps 1-3 in a run: run names, job ids, and each attribute's final net (Table 1's combinations).

A G2S run trains one combination of the paper's steps: ``RUNS/steps_1_2_3/`` with jobs
``step1``, ``step2/<attr>``, ``step3/<attr>`` (``run_name``, ``job_id``); the steps are in the
manifest's ``config["steps"]``.  The final net of an attribute is the job of the run's highest
step: a Step-1-only run answers with the joint net for every attribute (``attr_index`` = its
column in the deploy net's ``prob`` of shape (N, T, 2)); otherwise the attribute's own Step-2/3
net (``prob`` of shape (N, 2), ``attr_index`` None).
"""
from __future__ import annotations

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.runs import MANIFEST, Job, Run, finished

ALL_STEPS = (1, 2, 3)


def run_name(steps) -> str:
    steps = sorted(set(int(s) for s in steps))
    if not steps or any(s not in ALL_STEPS for s in steps):
        raise G2SError(f"steps {steps}: expected a non-empty subset of 1, 2, 3")
    return "steps_" + "_".join(str(s) for s in steps)


def job_id(step: int, attribute: str | None) -> str:
    return "step1" if step == 1 else f"step{step}/{attribute}"


def steps_of(run: Run) -> list[int]:
    return [int(s) for s in run.config["steps"]]


def final_nets(run: Run, require_done: bool = True) -> list[tuple[str, int | None, Job]]:
    """[(attribute, attr_index in the net's prob or None, job)] in attribute order: each
    attribute's net of the run's highest step.  With ``require_done`` an unfinished job
    is a G2SError (finish the run first: rerun `g2s train` with the same arguments)."""
    top = max(steps_of(run))
    out = []
    for t, name in enumerate(run.attribute_names):
        if top == 1:
            out.append((name, t, run.job("step1")))
        else:
            out.append((name, None, run.job(job_id(top, name))))
    if require_done:
        todo = sorted({j.id for _, _, j in out if not finished(j)})
        if todo:
            raise G2SError(f"{run.root / MANIFEST}: {len(todo)} job(s) not finished "
                           f"({', '.join(todo[:5])}{' ...' if len(todo) > 5 else ''}); "
                           "rerun the same `g2s train` command to finish them")
    return out


def unfinished_attributes(run: Run) -> list[tuple[str, str]]:
    """(attribute, job id) of every attribute whose final net is not finished yet, e.g. all
    but A and B of a run trained with ``g2s train --attributes A,B``."""
    return [(name, job.id) for name, _, job in final_nets(run, require_done=False) if not finished(job)]
