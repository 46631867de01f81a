"""The run-directory contract between a method's trainer (writer) and evaluation (reader).

One run is one training of one method (``Run.method``: G2S's step combinations, ANet, LNets,
...) into ``RUNS/<run>/``::

    RUNS/<run>/manifest.json           this module's Run, written atomically after every change
    RUNS/<run>/<job dir>/              one per `caffe train` job (the method names them)
        solver.prototxt train_val.prototxt deploy.prototxt   the run copies (data re-rooted)
        init.caffemodel                                      a derived init, if any
        snapshots/<job>_iter_N.{caffemodel,solverstate}      Caffe's snapshots (last K kept)
        final.caffemodel                                     the finished weights
        train.log  curves.csv  curves.png

plus the outputs of the method's other stages (``Run.stages``).  ``Run.pretrained`` records the
weights the run starts from (G2S: Model A; LNets: BVLC AlexNet; or random init); what only
the method reads stays in ``Run.config``.

Paths in the manifest are relative to the run directory when they lie inside it, absolute
otherwise (pretrained weights; weights inherited from a sibling run).  ``Run.path(p)``
resolves them.  Format 1 manifests (with G2S's ``steps`` and ``weights_a`` at the top) are
read and upgraded (``upgrade``); they are written back in format 2.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError

FORMAT = "g2s-run/2"
OLD_FORMATS = ("g2s-run/1",)
MANIFEST = "manifest.json"
STATUSES = ("pending", "running", "done", "failed")


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
    attributes: list[dict]     # [{"name", "crop"}] in label order (the prepared labels' columns)
    pretrained: dict           # {"path", "sha256"} of the weights it starts from, or {"random_init": True, ...}
    config: dict
    caffe: dict
    git_commit: str | None
    created: str
    jobs: list[Job]
    # Which method's run this is, a registry id (g2s_caffe/core/registry.py).  The job machinery
    # (core/jobs) is the same for all; evaluation reads a run the way its method says.
    method: str
    format: str = FORMAT
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

    # -------------------------------------------------------------- JSON
    def to_json(self) -> dict:
        return {"format": self.format, "method": self.method, "run": self.run, "dataset": self.dataset,
                "data": self.data, "attributes": self.attributes, "pretrained": self.pretrained,
                "config": self.config, "caffe": self.caffe, "git_commit": self.git_commit,
                "created": self.created, "jobs": [j.to_json() for j in self.jobs], "stages": self.stages}

    @classmethod
    def from_json(cls, root: Path, d: dict) -> "Run":
        where = Path(root) / MANIFEST
        if d.get("format") in OLD_FORMATS:
            d = upgrade(d, where)
        if d.get("format") != FORMAT:
            raise G2SError(f"{where}: format {d.get('format')!r}, expected {FORMAT!r}")
        try:
            return cls(root=Path(root), run=d["run"], dataset=d["dataset"], data=d["data"],
                       attributes=list(d["attributes"]), pretrained=d["pretrained"], config=d.get("config", {}),
                       caffe=d.get("caffe", {}), git_commit=d.get("git_commit"), created=d["created"],
                       jobs=[Job.from_json(j) for j in d["jobs"]], method=d["method"],
                       stages=dict(d.get("stages", {})))
        except (KeyError, TypeError) as e:
            raise G2SError(f"{where}: malformed run manifest ({type(e).__name__}: {e})") from e


FORMAT_1_METHOD = "g2s"       # format 1 manifests without a "method" were G2S's


def upgrade(d: dict, where: Path) -> dict:
    """A format 1 manifest as format 2: ``weights_a`` is ``pretrained``, the G2S ``steps`` go
    into ``config``; then the method's own upgrade (registry.Method.upgrade_manifest)."""
    from g2s_caffe.core import registry

    d = json.loads(json.dumps(d))
    try:
        d["pretrained"] = d.pop("weights_a")
        steps = d.pop("steps", [])
    except KeyError as e:
        raise G2SError(f"{where}: malformed run manifest (format 1 without {e})") from e
    d["method"] = d.get("method") or FORMAT_1_METHOD
    if steps:
        d.setdefault("config", {})["steps"] = [int(s) for s in steps]
    registry.get(d["method"]).upgrade_manifest(d)
    d["format"] = FORMAT
    return d


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
    the old or the new manifest, never half of one; a full disk leaves the old one and no
    temporary file."""
    return write_atomic(run.root / MANIFEST, json.dumps(run.to_json(), indent=2) + "\n", fsync=True)


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
