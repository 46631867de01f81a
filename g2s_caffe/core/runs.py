"""The run-directory contract between the trainer (writer) and evaluation (reader).

One run is one combination of the paper's steps (Table 1) trained into ``RUNS/<run>/``::

    RUNS/<run>/manifest.json           this module's Run, written atomically after every change
    RUNS/<run>/<job dir>/              one per job: step1, step2/<attr>, step3/<attr>
        solver.prototxt train_val.prototxt deploy.prototxt   the run copies (data re-rooted)
        init.caffemodel                                      derived init (Steps 2/3), if any
        snapshots/<job>_iter_N.{caffemodel,solverstate}      Caffe's snapshots (last K kept)
        final.caffemodel                                     the finished weights
        train.log  curves.csv  curves.png

``run`` is ``"steps_" + "_".join(sorted steps)`` (``steps_1_2_3``, ``steps_2``, ...).

Paths in the manifest are relative to the run directory when they lie inside it, absolute
otherwise (Model A; weights inherited from a sibling run).  ``Run.path(p)`` resolves them.

The final net of an attribute is the job of the run's highest step: a Step-1-only run
answers with the joint net for every attribute (``attr_index`` = its column in the deploy
net's ``prob`` of shape (N, T, 2)); otherwise the attribute's own Step-2/3 net (``prob`` of
shape (N, 2), ``attr_index`` None).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from g2s_caffe.core.errors import G2SError

FORMAT = "g2s-run/1"
MANIFEST = "manifest.json"
STATUSES = ("pending", "running", "done", "failed")
ALL_STEPS = (1, 2, 3)


def run_name(steps) -> str:
    steps = sorted(set(int(s) for s in steps))
    if not steps or any(s not in ALL_STEPS for s in steps):
        raise G2SError(f"steps {steps}: expected a non-empty subset of 1, 2, 3")
    return "steps_" + "_".join(str(s) for s in steps)


def job_id(step: int, attribute: str | None) -> str:
    return "step1" if step == 1 else f"step{step}/{attribute}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)


@dataclass
class Init:
    """Where a job's initial weights come from.  ``source`` is "A", "B", "C:<attr>" or
    "random" (written as "from" in JSON); ``derived`` is surgery's description when the
    file was built from the source (Steps 2/3), else None (Caffe loads it by name)."""
    path: str | None
    sha256: str | None
    source: str
    derived: dict | None = None

    def to_json(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "from": self.source, "derived": self.derived}

    @classmethod
    def from_json(cls, d: dict) -> "Init":
        return cls(d.get("path"), d.get("sha256"), d["from"], d.get("derived"))


@dataclass
class Final:
    path: str
    sha256: str
    iteration: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Final":
        return cls(d["path"], d["sha256"], int(d["iteration"]))


@dataclass
class Job:
    id: str
    step: int
    attribute: str | None
    attr_index: int | None
    scheme: str
    dir: str
    solver: str
    train_val: str
    deploy: str
    log: str
    seed: int
    status: str = "pending"
    init: Init | None = None
    final: Final | None = None
    started: str | None = None
    finished: str | None = None
    gpu: Any = None
    gpu_mem_mb: float | None = None
    extra: dict = field(default_factory=dict)   # resume history, snapshots, errors

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["init"] = self.init.to_json() if self.init else None
        d["final"] = self.final.to_json() if self.final else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Job":
        d = dict(d)
        d["init"] = Init.from_json(d["init"]) if d.get("init") else None
        d["final"] = Final.from_json(d["final"]) if d.get("final") else None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Run:
    root: Path                 # the run directory (not stored: the manifest may move with it)
    run: str
    dataset: str
    data: str                  # absolute path of the prepared dataset
    attributes: list[dict]     # [{"name", "crop"}] in label order (= Step 1's column order)
    steps: list[int]
    weights_a: dict
    config: dict
    caffe: dict
    git_commit: str | None
    created: str
    jobs: list[Job]
    format: str = FORMAT
    # Which method's run this is: "g2s" (Steps 1-3) or "lnets_anet" (the baseline).  The job
    # machinery (g2s_caffe.core.jobs) is the same; evaluation reads a run the way its method says.
    method: str = "g2s"
    # Stages of a method that are not `caffe train` jobs (e.g. the baseline's data and SVM
    # stages): name -> {"status", "outputs": {name: {"path", "sha256"}}, "inputs": {...}, ...}.
    stages: dict = field(default_factory=dict)

    # -------------------------------------------------------------- lookups
    @property
    def attribute_names(self) -> list[str]:
        return [a["name"] for a in self.attributes]

    def job(self, jid: str) -> Job:
        for j in self.jobs:
            if j.id == jid:
                return j
        raise G2SError(f"{self.root / MANIFEST}: no job {jid!r} (jobs: {', '.join(j.id for j in self.jobs)})")

    def path(self, rel: str | None) -> Path | None:
        """A manifest path as an absolute Path (relative ones are inside the run)."""
        if rel is None:
            return None
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    def rel(self, path: Path) -> str:
        """How a path is stored: relative when inside the run directory."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    @property
    def complete(self) -> bool:
        return all(j.status == "done" for j in self.jobs)

    def final_nets(self, require_done: bool = True) -> list[tuple[str, int | None, Job]]:
        """[(attribute, attr_index in the net's prob or None, job)] in attribute order: each
        attribute's net of the run's highest step.  With ``require_done`` an unfinished job
        is a G2SError (finish the run first: rerun `g2s train` with the same arguments)."""
        top = max(self.steps)
        out = []
        for t, name in enumerate(self.attribute_names):
            if top == 1:
                out.append((name, t, self.job("step1")))
            else:
                out.append((name, None, self.job(job_id(top, name))))
        if require_done:
            todo = sorted({j.id for _, _, j in out if not finished(j)})
            if todo:
                raise G2SError(f"{self.root / MANIFEST}: {len(todo)} job(s) not finished "
                               f"({', '.join(todo[:5])}{' ...' if len(todo) > 5 else ''}); "
                               "rerun the same `g2s train` command to finish them")
        return out

    def unfinished_attributes(self) -> list[tuple[str, str]]:
        """(attribute, job id) of every attribute whose final net is not finished yet, e.g. all
        but A and B of a run trained with ``g2s train --attributes A,B``."""
        return [(name, job.id) for name, _, job in self.final_nets(require_done=False) if not finished(job)]

    # -------------------------------------------------------------- JSON
    def to_json(self) -> dict:
        return {"format": self.format, "method": self.method, "run": self.run, "dataset": self.dataset,
                "data": self.data,
                "attributes": self.attributes, "steps": self.steps, "weights_a": self.weights_a,
                "config": self.config, "caffe": self.caffe, "git_commit": self.git_commit,
                "created": self.created, "jobs": [j.to_json() for j in self.jobs], "stages": self.stages}

    @classmethod
    def from_json(cls, root: Path, d: dict) -> "Run":
        where = Path(root) / MANIFEST
        if d.get("format") != FORMAT:
            raise G2SError(f"{where}: format {d.get('format')!r}, expected {FORMAT!r}")
        try:
            return cls(root=Path(root), run=d["run"], dataset=d["dataset"], data=d["data"],
                       attributes=list(d["attributes"]), steps=[int(s) for s in d["steps"]],
                       weights_a=d["weights_a"], config=d.get("config", {}), caffe=d.get("caffe", {}),
                       git_commit=d.get("git_commit"), created=d["created"],
                       jobs=[Job.from_json(j) for j in d["jobs"]], method=d.get("method", "g2s"),
                       stages=dict(d.get("stages", {})))
        except (KeyError, TypeError) as e:
            raise G2SError(f"{where}: malformed run manifest ({type(e).__name__}: {e})") from e


def finished(job: Job) -> bool:
    """The job is done and its final weights are recorded."""
    return job.status == "done" and job.final is not None


def load_run(root: Path) -> Run:
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise G2SError(f"{path}: no run manifest; {root} is not a training run (run `g2s train`)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise G2SError(f"{path}: not valid JSON ({e})") from e
    return Run.from_json(root, data)


def save_run(run: Run) -> Path:
    """Write the manifest atomically (temp file + fsync + rename): a kill -9 leaves either
    the old or the new manifest, never half of one."""
    run.root.mkdir(parents=True, exist_ok=True)
    path = run.root / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(run.to_json(), f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def list_runs(runs_root: Path) -> list[Run]:
    """Every run directory (one with a manifest) directly under ``runs_root``, by name."""
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        raise G2SError(f"{runs_root}: no such runs directory")
    return [load_run(p) for p in sorted(runs_root.iterdir()) if (p / MANIFEST).is_file()]


# ------------------------------------------------------------------ concurrent writers
class locked:
    """``with locked(run_root):`` holds an exclusive flock on RUNS/<run>/.lock, so drivers
    that share a run (cluster array tasks on a shared filesystem) update the manifest one
    at a time; the lock goes away with the process, also on kill -9."""

    def __init__(self, root: Path):
        self.path = Path(root) / ".lock"

    def __enter__(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def commit_job(root: Path, job: Job) -> Run:
    """Replace one job's entry in the manifest on disk (re-read under the lock, so entries
    other processes wrote meanwhile are kept); return the run as now saved."""
    with locked(root):
        run = load_run(root)
        for i, j in enumerate(run.jobs):
            if j.id == job.id:
                run.jobs[i] = job
                break
        else:
            raise G2SError(f"{Path(root) / MANIFEST}: no job {job.id!r}")
        save_run(run)
        return run


def commit_stage(root: Path, name: str, entry: dict) -> Run:
    """Replace one stage's entry (``Run.stages[name]``) in the manifest on disk, under the lock."""
    with locked(root):
        run = load_run(root)
        run.stages[name] = entry
        save_run(run)
        return run
