"""A resumable map over many images: results in JSON chunk files, each written atomically.

LNets' per-image work outside Caffe's training (the threshold's scores, the faces ANet reads,
the localization of a whole split) is long on a real dataset.  ``resumable_map`` runs ``fn``
on the items in order and writes every ``chunk`` results to ``folder/chunk_<k>.json`` (temp +
os.replace); a rerun after a kill -9 keeps the chunks already there and continues with the
first missing one.  The folder is tagged (``tag.json``) with everything the results depend on
(weights' sha256, settings, the item list's hash); chunks of another tag are thrown away.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Callable, Sequence

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError

TAG = "tag.json"


def items_sha256(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def resumable_map(folder: Path, tag: dict, names: Sequence[str], fn: Callable[[int], dict], chunk: int = 256,
                  desc: str = "images", show: bool = True) -> list[dict]:
    """[fn(i) for i in range(len(names))], resumably (module docstring).  ``fn`` returns a
    JSON-serialisable dict; ``names`` identify the items (their hash is part of the tag)."""
    from tqdm import tqdm

    folder = Path(folder)
    tag = json.loads(json.dumps({**tag, "items": items_sha256(list(names)), "chunk": chunk}, sort_keys=True))
    tag_file = folder / TAG
    if folder.is_dir():
        try:
            old = json.loads(tag_file.read_text())
        except (OSError, ValueError):
            old = None
        if old != tag:
            shutil.rmtree(folder)               # results of other inputs
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(tag_file, json.dumps(tag, sort_keys=True))
    n = len(names)
    out: list[dict] = []
    with tqdm(total=n, desc=desc, unit="img", disable=not show, file=sys.stderr, mininterval=1.0) as bar:
        for k, start in enumerate(range(0, n, chunk)):
            path = folder / f"chunk_{k:05d}.json"
            part = None
            if path.is_file():
                try:
                    part = json.loads(path.read_text())
                except ValueError:
                    part = None
                if part is not None and [r.get("name") for r in part] != list(names[start:start + chunk]):
                    part = None
            if part is None:
                part = []
                for i in range(start, min(n, start + chunk)):
                    r = fn(i)
                    part.append({"name": names[i], **r})
                    bar.update(1)
                write_atomic(path, json.dumps(part))
            else:
                bar.update(len(part))
            out += part
    if len(out) != n:
        raise G2SError(f"{folder}: {len(out)} results for {n} images; delete {folder} and rerun")
    return out
