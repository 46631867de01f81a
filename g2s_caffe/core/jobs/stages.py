"""Bookkeeping of a run's non-Caffe stages (``Run.stages``): when a finished one is kept.

Each entry: ``{"status": "running" | "done", "started", "finished", "inputs": {...},
"outputs": {name: {"path", "sha256"}}, ...}``.  ``inputs`` names everything the stage was made
from; a rerun keeps a finished stage only when its inputs are the same and its outputs are
still there (files: with their recorded sha256), else the stage is redone.
"""
from __future__ import annotations

import json

from g2s_caffe.core.runs import Run, sha256_file


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
