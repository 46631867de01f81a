"""Disk space: what is free, what a step will write, and a warning before it starts.

A step that knows roughly what it writes (prep: images x schemes x crop size; training:
snapshots x model size) calls ``expect`` before it starts: a WARNING when the folder's disk
cannot hold what is left to write, and the estimate is remembered, so that a full disk met
later (core/faults.py) says how much more the step needs.  What is left is the estimate minus
what its folders already hold, so a resumed step asks only for the rest.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
RERUN = "free space and rerun: finished work is kept"      # what every full-disk message ends with


def human(n: float) -> str:
    """Bytes for people: 0 B, 13.6 KiB, 2.5 GiB."""
    for unit in UNITS[:-1]:
        if abs(n) < 1024:
            break
        n /= 1024
    else:
        unit = UNITS[-1]
    return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"


def existing_ancestor(path: Path) -> Path:
    """``path`` itself when it exists, else its nearest existing parent folder."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """What an unprivileged user may still write on the filesystem holding ``path``."""
    return shutil.disk_usage(existing_ancestor(path)).free


def used_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (a file: its size; missing: 0).  Sizes, not blocks:
    LMDBs and caffemodels are dense, and a sparse estimate would be one more guess."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:        # removed meanwhile (a pruned snapshot)
                pass
    return total


@dataclass(frozen=True)
class Need:
    """About ``total`` bytes written under ``folder`` by a step (``what`` says how the figure
    comes about); ``parts``: the folders the step's output lives in, when not all of
    ``folder`` is its own (a run among others under --runs)."""
    folder: Path
    total: int
    what: str
    parts: tuple[Path, ...] = ()

    def more(self) -> int:
        """What is left to write: the estimate minus what is already there."""
        return max(0, self.total - sum(used_bytes(p) for p in (self.parts or (self.folder,))))

    def line(self) -> str:
        """The estimate, as a plan prints it."""
        return (f"disk: {self.what} needs about {human(self.more())} more in {self.folder} "
                f"({human(free_bytes(self.folder))} free)")

    def warning(self) -> str | None:
        """A line when the disk cannot hold what is left, else None."""
        more, free = self.more(), free_bytes(self.folder)
        if more <= free:
            return None
        return (f"WARNING: {self.folder} has {human(free)} free and {self.what} needs about {human(more)} more; "
                f"it will stop when the disk is full (then {RERUN})")


_NEEDS: list[Need] = []


def expect(folder: Path, total: int, what: str, parts=()) -> Need:
    """Remember a step's need (for a full disk's message) and warn now (stderr) if it cannot fit."""
    need = Need(Path(os.path.abspath(folder)), int(total), what, tuple(Path(p) for p in parts))
    _NEEDS.append(need)
    line = need.warning()
    if line:
        print(line, file=sys.stderr, flush=True)
    return need


def need_for(path: Path) -> Need | None:
    """The latest need whose folder holds ``path`` (the step that was writing it)."""
    path = Path(os.path.abspath(path))
    for need in reversed(_NEEDS):
        if path == need.folder or need.folder in path.parents:
            return need
    return None


def forget() -> None:
    """Drop the remembered needs (a new command starts)."""
    _NEEDS.clear()
