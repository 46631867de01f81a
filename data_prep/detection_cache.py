"""Per-image detection + alignment results, appended as JSON lines and reread on resume.

One file per split (``OUT/.cache/<split>.jsonl``), one object per image: its final state
(detected / fallback / discarded / missing), the reason, the chosen face and its Alignment.
A kill -9 (or a full disk) can leave at most a torn last line: ``load`` drops it (truncating
the file back to the last complete line) and that image is simply detected again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from g2s_caffe.core.faults import writing


class DetectionCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self._fh = None

    def load(self) -> "DetectionCache":
        if not self.path.exists():
            return self
        data = self.path.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                break
            self.entries[e["name"]] = e
            good += len(line)
        if good != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)
        return self

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __getitem__(self, name: str) -> dict:
        return self.entries[name]

    def add(self, entry: dict) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        with writing(self.path):
            self._fh.write(json.dumps(entry, sort_keys=True) + "\n")
        self.entries[entry["name"]] = entry

    def flush(self) -> None:
        if self._fh is not None:
            with writing(self.path):
                self._fh.flush()
                os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Flush and close; the file is closed even when the flush fails (a full disk)."""
        if self._fh is not None:
            try:
                self.flush()
            finally:
                fh, self._fh = self._fh, None
                with writing(self.path):
                    fh.close()


def close_all(caches) -> None:
    """Close every cache, then raise the first failure (if any)."""
    failure = None
    for cache in caches:
        try:
            cache.close()
        except OSError as e:
            failure = failure or e
    if failure:
        raise failure
