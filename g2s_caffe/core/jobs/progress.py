"""Caffe's own log lines, parsed: per-job state for the live lines and the curves.

Lines read (Caffe 1.0 solver.cpp / sgd_solver.cpp, after glog's prefix):
  Iteration 40 (2.1 iter/s, 9.5s/20 iters), loss = 0.61      smoothed training loss
  Iteration 40, lr = 9.998e-05                               the policy's rate
  Iteration 200, Testing net (#0)                            a TEST pass starts
      Test net output #0: accuracy_Smiling = 0.91            one TEST output
      Train net output #0: loss_Smiling = 0.6 (* 1 = 0.6 loss)
  Restoring previous solver status from ...                  a resume
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

LOSS_RE = re.compile(r"Iteration (\d+)(?: \(([\d.e+-]+) iter/s[^)]*\))?, loss = ([-\d.e+naif]+)")
LR_RE = re.compile(r"Iteration (\d+), lr = ([-\d.e+]+)")
TEST_START_RE = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
TEST_OUT_RE = re.compile(r"Test net output #\d+: (\S+) = ([-\d.e+naif]+)")
TRAIN_OUT_RE = re.compile(r"Train net output #\d+: (\S+) = ([-\d.e+naif]+)")
RESTORE_RE = re.compile(r"Restoring previous solver status from (\S+)")


@dataclass
class LogRecord:
    """Everything parsed from one log so far (restarts included: a resume logs iterations
    again from the snapshot on; later values replace earlier ones)."""
    train: dict[int, dict[str, float]] = field(default_factory=dict)   # iter -> {loss, lr, name...}
    test: dict[int, dict[str, float]] = field(default_factory=dict)    # iter -> {output: value}
    restores: list[str] = field(default_factory=list)
    last_iter: int = 0
    loss_lines: int = 0                          # loss lines fed, in file order
    last_loss: tuple[int, float] | None = None   # (iteration, loss) of the newest one
    last_finite_iter: int | None = None          # iteration of the newest finite loss
    first_bad_iter: int | None = None            # first non-finite loss after it, if any
    _test_iter: int | None = None
    _loss_iter: int | None = None

    def feed(self, line: str) -> None:
        m = LOSS_RE.search(line)
        if m:
            it = int(m.group(1))
            row = self.train.setdefault(it, {})
            row["loss"] = float(m.group(3))
            self.loss_lines += 1
            self.last_loss = (it, row["loss"])
            if math.isfinite(row["loss"]):
                self.last_finite_iter, self.first_bad_iter = it, None
            elif self.first_bad_iter is None:
                self.first_bad_iter = it
            if m.group(2):
                row["iter_per_s"] = float(m.group(2))
            self.last_iter, self._loss_iter = it, it
            return
        m = LR_RE.search(line)
        if m:
            it = int(m.group(1))
            self.train.setdefault(it, {})["lr"] = float(m.group(2))
            self.last_iter = it
            return
        m = TEST_START_RE.search(line)
        if m:
            self._test_iter = int(m.group(1))
            self.test[self._test_iter] = {}
            return
        m = TEST_OUT_RE.search(line)
        if m and self._test_iter is not None:
            self.test[self._test_iter][m.group(1)] = float(m.group(2))
            return
        m = TRAIN_OUT_RE.search(line)
        if m and self._loss_iter is not None:
            self.train[self._loss_iter][m.group(1)] = float(m.group(2))
            return
        m = RESTORE_RE.search(line)
        if m:
            self.restores.append(m.group(1))

    def latest(self, key: str) -> float | None:
        for it in sorted(self.train, reverse=True):
            if key in self.train[it]:
                return self.train[it][key]
        return None


def parse_log(text: str) -> LogRecord:
    rec = LogRecord()
    for line in text.splitlines():
        rec.feed(line)
    return rec


class LogTail:
    """Follows a growing log file; ``poll()`` feeds the new complete lines to a LogRecord."""

    def __init__(self, path, record: LogRecord | None = None):
        self.path, self.pos, self.buf = path, 0, b""
        self.record = record or LogRecord()

    def poll(self) -> LogRecord:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except FileNotFoundError:
            return self.record
        self.pos += len(chunk)
        data = self.buf + chunk
        *lines, self.buf = data.split(b"\n")
        for line in lines:
            self.record.feed(line.decode("utf-8", "replace"))
        return self.record


@dataclass
class Speed:
    """it/s from our own clock over the iterations seen since the job (re)started."""
    t0: float = field(default_factory=time.monotonic)
    it0: int | None = None

    def rate(self, it: int) -> float | None:
        if self.it0 is None:
            self.it0, self.t0 = it, time.monotonic()
            return None
        dt = time.monotonic() - self.t0
        return (it - self.it0) / dt if dt > 0 and it > self.it0 else None


def fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}"


def job_line(job_id: str, it: int, max_iter: int, loss: float | None, lr: float | None,
             rate: float | None, gpu=None) -> str:
    eta = (max_iter - it) / rate if rate else None
    parts = [f"[{job_id}]", f"it {it}/{max_iter}",
             f"loss {loss:.4g}" if loss is not None else "loss -",
             f"lr {lr:.3g}" if lr is not None else "lr -",
             f"{rate:.2f} it/s" if rate else "- it/s", f"ETA {fmt_eta(eta)}"]
    if gpu is not None:
        parts.append(f"gpu {gpu}")
    return " ".join(parts)
