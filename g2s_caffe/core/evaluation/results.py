"""The results CSV: one row per (run, attribute), written by `g2s eval`, read by `g2s compare`.

Columns (percentages in percent; ``_lo``/``_hi`` the 95 % interval beside each value)::

    run, dataset, split, attribute,
    accuracy, accuracy_lo, accuracy_hi                    Wilson interval of tp + tn of n
    balanced_accuracy, balanced_accuracy_lo, balanced_accuracy_hi     bootstrap over images
    n, positives, tp, tn, fp, fn, scheme,
    predictions                                           the run's per-image file
                                                          (g2s_caffe/core/evaluation/predictions.py), relative
                                                          to the CSV's directory
    method                                                Run.method (g2s, anet, lnets_anet, ...)

Any method writes these rows the same way (``result_rows``).  For reading, only
``attribute`` and ``accuracy`` are required, so numbers from elsewhere work; what else a
file has decides what can be said about it: ``n`` + ``tp`` + ``tn`` (or ``accuracy_lo`` /
``accuracy_hi``) give each accuracy its interval, ``predictions`` gives the means theirs and
allows paired tests.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from g2s_caffe.core.evaluation import stats
from g2s_caffe.core.errors import G2SError

RESULT_COLUMNS = ["run", "dataset", "split", "attribute",
                  "accuracy", "accuracy_lo", "accuracy_hi",
                  "balanced_accuracy", "balanced_accuracy_lo", "balanced_accuracy_hi",
                  "n", "positives", "tp", "tn", "fp", "fn", "scheme", "predictions", "method"]
DEFAULT_RUN = "results"
COUNT_COLUMNS = ("n", "tp", "tn")


def _pct(v: float) -> str:
    return f"{100 * v:.4f}"


def result_rows(run: str, dataset: str, split: str, summary, schemes: list[str], predictions: str,
                method: str = "") -> list[list]:
    """Rows of one run from a metrics.Summary; ``predictions``: the per-image file's path as
    it should appear in the CSV (relative to the CSV's directory); ``method``: Run.method."""
    rows = []
    for s, acc_ci, bal_ci, scheme in zip(summary.scores, summary.accuracy_intervals,
                                         summary.balanced_intervals, schemes):
        rows.append([run, dataset, split, s.name,
                     _pct(s.accuracy), _pct(acc_ci.lo), _pct(acc_ci.hi),
                     _pct(s.balanced_accuracy), _pct(bal_ci.lo), _pct(bal_ci.hi),
                     s.n, s.positives, s.tp, s.tn, s.fp, s.fn, scheme, predictions, method])
    return rows


def csv_text(header: list[str], rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def relative_to(target: Path, csv_path: Path) -> str:
    """``target`` as written in a CSV at ``csv_path``: relative to its directory, POSIX."""
    return Path(os.path.relpath(Path(target).resolve(), Path(csv_path).resolve().parent)).as_posix()


# ------------------------------------------------------------------ reading
@dataclass
class RunResult:
    run: str
    accuracy: dict[str, float] = field(default_factory=dict)          # attribute -> %
    balanced: dict[str, float] = field(default_factory=dict)          # attribute -> %
    order: list[str] = field(default_factory=list)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # attribute -> (n, right)
    positives: dict[str, int] = field(default_factory=dict)          # attribute -> labels == 1
    given_ci: dict[str, stats.Interval] = field(default_factory=dict)   # attribute -> % interval
    balanced_ci: dict[str, stats.Interval] = field(default_factory=dict)
    predictions: Path | None = None                                     # resolved path
    split: str = ""
    method: str | None = None      # whose published column it stands next to (column "method"; None: the paper's)

    def accuracy_interval(self, attribute: str) -> stats.Interval | None:
        """In percent: the file's own interval columns, else Wilson from its counts, else None."""
        if attribute in self.given_ci:
            return self.given_ci[attribute]
        if attribute in self.counts:
            n, right = self.counts[attribute]
            return stats.wilson_interval(right, n).scaled(100)
        return None

    def load_predictions(self, attributes: list[str]):
        """The per-image predictions of ``attributes``, checked against this file's accuracies."""
        from g2s_caffe.core.evaluation.metrics import score
        from g2s_caffe.core.evaluation.predictions import load_predictions

        if self.predictions is None:
            raise G2SError(f"run {self.run!r}: the results give no per-image predictions "
                           "(column 'predictions', written by `g2s eval`)")
        pred = load_predictions(self.predictions).columns(attributes)
        for s in score(pred.probs, pred.labels, attributes):
            if abs(100 * s.accuracy - self.accuracy[s.name]) > 0.01:
                raise G2SError(f"{self.predictions}: gives {100 * s.accuracy:.4f} % for {s.name}, the results "
                               f"file {self.accuracy[s.name]:.4f} % (run {self.run!r}); the two files are "
                               "from different evaluations (rerun g2s eval)")
        return pred


def _percent(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise G2SError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(v) or not 0 <= v <= 100:
        raise G2SError(f"{where}: {text} is not a percentage in [0, 100]")
    return v


def _count(text: str, where: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise G2SError(f"{where}: {text!r} is not a whole number") from None
    if v < 0:
        raise G2SError(f"{where}: {v} is negative")
    return v


def _interval(cell: dict, column: str, where: str) -> stats.Interval | None:
    lo, hi = cell.get(f"{column}_lo", ""), cell.get(f"{column}_hi", "")
    if not lo and not hi:
        return None
    if not lo or not hi:
        raise G2SError(f"{where}: {column}_lo and {column}_hi go together (one is empty)")
    iv = stats.Interval(_percent(lo, f"{where}: {column}_lo"), _percent(hi, f"{where}: {column}_hi"))
    if iv.lo > iv.hi:
        raise G2SError(f"{where}: {column}_lo {lo} is above {column}_hi {hi}")
    return iv


def _read_row(r: RunResult, cell: dict, name: str, where: str, csv_dir: Path) -> None:
    r.accuracy[name] = _percent(cell["accuracy"], f"{where}: accuracy of {name}")
    if cell.get("balanced_accuracy"):
        r.balanced[name] = _percent(cell["balanced_accuracy"], f"{where}: balanced_accuracy of {name}")
    for column, target in (("accuracy", r.given_ci), ("balanced_accuracy", r.balanced_ci)):
        iv = _interval(cell, column, f"{where}: {name}")
        if iv is not None:
            target[name] = iv
    if all(cell.get(c) for c in COUNT_COLUMNS):
        n, tp, tn = (_count(cell[c], f"{where}: {c} of {name}") for c in COUNT_COLUMNS)
        if n < 1 or tp + tn > n:
            raise G2SError(f"{where}: {name} has tp {tp} + tn {tn} right of n {n} images")
        if abs(100 * (tp + tn) / n - r.accuracy[name]) > 0.01:
            raise G2SError(f"{where}: accuracy {r.accuracy[name]} of {name} is not (tp + tn) / n = "
                           f"{100 * (tp + tn) / n:.4f}")
        r.counts[name] = (n, tp + tn)
        if cell.get("positives"):
            pos = _count(cell["positives"], f"{where}: positives of {name}")
            if pos > n:
                raise G2SError(f"{where}: {name} has {pos} positives of n {n} images")
            r.positives[name] = pos
    if cell.get("predictions"):
        p = Path(cell["predictions"])
        p = p if p.is_absolute() else csv_dir / p
        if r.predictions is not None and r.predictions != p:
            raise G2SError(f"{where}: run {r.run!r} names two prediction files ({r.predictions}, {p}); "
                           "one run has one")
        r.predictions = p
    r.split = r.split or cell.get("split", "")
    if cell.get("method"):
        if r.order and cell["method"] != r.method:
            raise G2SError(f"{where}: run {r.run!r} is method {r.method!r} above and {cell['method']!r} here; "
                           "one run is one method")
        r.method = cell["method"]
    r.order.append(name)


def read_results(path: Path) -> tuple[dict[str, RunResult], set[str]]:
    """Runs (in file order) and the dataset names the file mentions."""
    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: no such results file (write one with `g2s eval`, or a CSV "
                       "with the columns attribute,accuracy)")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    if not rows:
        raise G2SError(f"{path}:1: empty file; expected a header with attribute,accuracy")
    header = [h.strip() for h in rows[0]]
    for need in ("attribute", "accuracy"):
        if need not in header:
            raise G2SError(f"{path}:1: no {need!r} column (header: {','.join(header)}); "
                           "expected at least attribute,accuracy (accuracy in percent)")
    col = {h: i for i, h in enumerate(header)}
    runs: dict[str, RunResult] = {}
    datasets: set[str] = set()
    for lineno, row in enumerate(rows[1:], 2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise G2SError(f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}")
        cell = {h: row[i].strip() for h, i in col.items()}
        name = cell["attribute"]
        if not name:
            raise G2SError(f"{path}:{lineno}: empty attribute name")
        run = cell.get("run") or DEFAULT_RUN
        if cell.get("dataset"):
            datasets.add(cell["dataset"])
        r = runs.setdefault(run, RunResult(run))
        if name in r.accuracy:
            raise G2SError(f"{path}:{lineno}: attribute {name!r} appears twice"
                           + (f" for run {run!r}" if "run" in col else "")
                           + "; keep one row per attribute")
        _read_row(r, cell, name, f"{path}:{lineno}", path.resolve().parent)
    if not runs:
        raise G2SError(f"{path}: a header but no rows")
    every = [v for r in runs.values() for v in r.accuracy.values()]
    if max(every) <= 1.0:
        raise G2SError(f"{path}: every accuracy is <= 1; the column must be in percent "
                       "(multiply fractions by 100)")
    return runs, datasets
