"""Bookkeeping of a run's non-Caffe stages (``Run.stages``): when a finished one is kept.

Each entry: ``{"status": "running" | "done", "started", "finished", "inputs": {...},
"outputs": {name: {"path", "sha256"}}, ...}``.  ``inputs`` names everything the stage was made
from; a rerun keeps a finished stage only when its inputs are the same and its outputs are
still there (files: with their recorded sha256), else the stage is redone.
"""
from __future__ import annotations

import json

from g2s_caffe.core.jobs.provenance import now
from g2s_caffe.core.runs import Run, commit_stage, sha256_file


def as_json(d: dict) -> dict:
    """``d`` as it reads back from the manifest (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(d))


def reusable(run: Run, name: str, inputs: dict) -> bool:
    e = run.stages.get(name) or {}
    if e.get("status") != "done" or e.get("inputs") != as_json(inputs):
        return False
    for out in e.get("outputs", {}).values():
        path = run.path(out["path"])
        if not path.exists() or (path.is_file() and sha256_file(path) != out["sha256"]):
            return False
    return True


class Stage:
    """One non-Caffe stage of a run, recorded in ``Run.stages[name]``::

        stage = Stage(run, "features", inputs, f"features of {split}")
        if stage.kept():
            return run
        run = stage.start()          # marked running, with its inputs
        ...
        return stage.done(outputs=..., images=...)
    """

    def __init__(self, run: Run, name: str, inputs: dict, label: str):
        self.run, self.name, self.inputs, self.label = run, name, inputs, label
        self.started: str | None = None

    def kept(self, note: str = "") -> bool:
        """True (and said) when the finished stage stays as it is (``reusable``)."""
        if not reusable(self.run, self.name, self.inputs):
            return False
        print(f"{self.run.run}: {self.label} finished before, kept{note}")
        return True

    def start(self) -> Run:
        self.started = now()
        self.run = commit_stage(self.run.root, self.name,
                                {"status": "running", "started": self.started, "inputs": self.inputs})
        return self.run

    def done(self, **fields) -> Run:
        self.run = commit_stage(self.run.root, self.name, {"status": "done", "started": self.started,
                                                           "finished": now(), "inputs": self.inputs, **fields})
        return self.run
