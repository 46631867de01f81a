"""A run's manifest and its jobs' run copies: the steps every method's training driver shares.

``create_or_load``: the first call creates the run (its jobs' run copies written, the manifest
saved); a rerun loads it and checks it is the same run (same method, same ``identity``: the
settings that must not change between a run and its rerun), else a G2SError naming what
differs.  ``write_job``: one `caffe train` job's files (train_val, solver, deploy, extras) under
RUNS/<run>/<dir>/ with its snapshot folder, and its manifest entry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs.provenance import caffe_info, git_commit, now
from g2s_caffe.core.jobs.runner import LOG, SNAPSHOT_DIR
from g2s_caffe.core.nets.protofiles import write_text_proto
from g2s_caffe.core.runs import MANIFEST, Job, Run, load_run, locked, save_run

RUN_FILES = ("train_val", "solver", "deploy")     # every job's run copies, <name>.prototxt


def create_or_load(root: Path, method: str, identity: dict, create: Callable[[], Run]) -> Run:
    """The run at ``root``: ``create()`` on the first call (saved here), else the saved one,
    checked to be the same run."""
    with locked(root):
        if (root / MANIFEST).is_file():
            run = load_run(root)
            old = run.config.get("identity")
            if run.method != method or old != identity:
                diff = sorted(k for k in identity if (old or {}).get(k) != identity[k])
                raise G2SError(f"{root / MANIFEST}: this run was started with different settings "
                               f"({', '.join(diff) or 'another method'}); rerun with the original arguments, "
                               "or use another --runs directory")
            return run
        run = create()
        save_run(run)
        return run


def new_run(root: Path, name: str, method: str, dataset: str, data: Path, attributes: list[dict],
            pretrained: dict, config: dict, jobs: list[Job]) -> Run:
    """A Run with this machine's provenance (Caffe build, git commit, time)."""
    return Run(root=root, run=name, dataset=dataset, data=str(Path(data).resolve()), attributes=attributes,
               pretrained=pretrained, config=config, caffe=caffe_info(), git_commit=git_commit(), created=now(),
               jobs=jobs, method=method)


def write_job(root: Path, rel: str, jid: str, messages: dict, head: str, seed: int, extra: dict,
              step: int = 0, attribute: str | None = None, attr_index: int | None = None,
              scheme: str = "") -> Job:
    """Write ``messages`` ({file stem: NetParameter | SolverParameter}, RUN_FILES and any
    extras) into RUNS/<run>/<rel>/ with ``head`` on top; the job's manifest entry."""
    missing = [f for f in RUN_FILES if f not in messages]
    if missing:
        raise G2SError(f"job {jid}: no {', '.join(missing)} run copy")
    job_dir = root / rel
    (job_dir / SNAPSHOT_DIR).mkdir(parents=True, exist_ok=True)
    for stem, message in messages.items():
        write_text_proto(job_dir / f"{stem}.prototxt", message, head)
    return Job(id=jid, step=step, attribute=attribute, attr_index=attr_index, scheme=scheme, dir=rel,
               solver=f"{rel}/solver.prototxt", train_val=f"{rel}/train_val.prototxt",
               deploy=f"{rel}/deploy.prototxt", log=f"{rel}/{LOG}", seed=int(seed), extra=extra)
