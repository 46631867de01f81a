"""Put reproduced accuracies next to the paper's Tables 1-3.

RESULTS is a CSV with at least the columns ``attribute,accuracy`` (accuracy in percent,
attribute names as in the dataset's attribute file): what ``g2s eval`` writes, or numbers
from anywhere else.  Optional columns: ``run`` (several runs in one file, e.g. the seven
step combinations of Table 1, named ``steps_1``, ``steps_1_2`` ... ``steps_1_2_3``),
``dataset``, ``balanced_accuracy`` (percent); other columns are ignored.

Writes, under --out: compare_<dataset>.md / .csv / .png (per attribute: ours, the paper's,
the difference, the other methods; the averages) and, when step-combination runs are
present, table1_<dataset>.md / .csv / .png.  Missing, extra or reordered attributes are
listed in the output and the files, never dropped silently.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import published
from .errors import G2SError

DATASETS = tuple(published.TABLE_FILES)
FULL_RUN = "steps_1_2_3"


# ------------------------------------------------------------------ atomic files
def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write a file so that it appears complete or not at all (temp file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_figure_atomic(fig, path: Path, dpi: int = 110) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return write_atomic(path, buf.getvalue())


# ------------------------------------------------------------------ reading RESULTS
@dataclass
class RunResult:
    run: str
    accuracy: dict[str, float] = field(default_factory=dict)          # attribute -> %
    balanced: dict[str, float] = field(default_factory=dict)          # attribute -> %
    order: list[str] = field(default_factory=list)


def _percent(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise G2SError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(v) or not 0 <= v <= 100:
        raise G2SError(f"{where}: {text} is not a percentage in [0, 100]")
    return v


def read_results(path: Path) -> tuple[dict[str, RunResult], set[str]]:
    """Runs (in file order) and the dataset names the file mentions."""
    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: no such results file (write one with `g2s eval`, or a CSV "
                       "with the columns attribute,accuracy)")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    rows = list(reader)
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
        run = cell.get("run") or "results"
        if cell.get("dataset"):
            datasets.add(cell["dataset"])
        r = runs.setdefault(run, RunResult(run))
        if name in r.accuracy:
            raise G2SError(f"{path}:{lineno}: attribute {name!r} appears twice"
                           + (f" for run {run!r}" if "run" in col else "")
                           + "; keep one row per attribute")
        r.accuracy[name] = _percent(cell["accuracy"], f"{path}:{lineno}: accuracy of {name}")
        if cell.get("balanced_accuracy"):
            r.balanced[name] = _percent(cell["balanced_accuracy"],
                                        f"{path}:{lineno}: balanced_accuracy of {name}")
        r.order.append(name)
    if not runs:
        raise G2SError(f"{path}: a header but no rows")
    every = [v for r in runs.values() for v in r.accuracy.values()]
    if max(every) <= 1.0:
        raise G2SError(f"{path}: every accuracy is <= 1; the column must be in percent "
                       "(multiply fractions by 100)")
    return runs, datasets


# ------------------------------------------------------------------ the comparison
@dataclass
class Comparison:
    dataset: str
    run: str
    table: published.PublishedTable
    ours: RunResult
    columns: list[str]                       # output column ids, in order
    rows: list[list]                         # [row label, value per column (float|None)]
    notes: list[str]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, published.Cell):
        return v.text   # a published number, as printed
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def compare_run(ours: RunResult, dataset: str) -> Comparison:
    t = published.load_table(dataset)
    names = list(t.attributes)
    present = [a for a in names if a in ours.accuracy]
    missing = [a for a in names if a not in ours.accuracy]
    extra = [a for a in ours.order if a not in names]
    others = [m for m in t.methods if m != published.PAPER]
    has_bal = bool(ours.balanced)
    columns = ["reproduced", "paper", "diff"] + (["reproduced_balanced"] if has_bal else []) + others
    notes = []
    if not present:
        raise G2SError(f"run {ours.run!r}: none of its {len(ours.accuracy)} attributes is one of "
                       f"{dataset}'s ({', '.join(names[:3])}, ...); is --dataset right?")
    if missing:
        notes.append(f"missing: {len(missing)} of {len(names)} {dataset} attributes have no result "
                     f"in run {ours.run!r}: {', '.join(missing)}")
    if extra:
        notes.append(f"extra: {len(extra)} attribute(s) of run {ours.run!r} are not in the paper's "
                     f"{dataset} table (shown below the averages, not averaged): {', '.join(extra)}")
    ordered = [a for a in ours.order if a in names]
    if not missing and not extra and ordered != names:
        notes.append(f"order: run {ours.run!r} lists the {dataset} attributes in a different order "
                     "(matched by name)")
    for m, printed, mean in t.average_disagreements():
        notes.append(f"paper: {published.TABLE_NAMES[dataset]} prints {printed} as the average of "
                     f"{published.METHOD_LABELS[m]}, but its column's mean is {mean:.2f}")

    def row_for(a: str) -> list:
        acc = ours.accuracy.get(a)
        paper = t.cells[published.PAPER][a] if a in names else None
        vals = [acc, paper, None if acc is None or paper is None else acc - paper.value]
        if has_bal:
            vals.append(ours.balanced.get(a))
        vals += [t.cells[m][a] if a in names else None for m in others]
        return [a, *vals]

    rows = [row_for(a) for a in names]
    mean_ours = sum(ours.accuracy[a] for a in present) / len(present)
    avg_paper = t.averages[published.PAPER]
    avg = ["Average (paper: as printed)", mean_ours, avg_paper,
           mean_ours - avg_paper.value if not missing else None]
    if has_bal:
        bal = [ours.balanced[a] for a in present if a in ours.balanced]
        avg.append(sum(bal) / len(bal) if bal else None)
    avg += [t.averages[m] for m in others]
    rows.append(avg)
    if missing:
        # Like for like: every column averaged over the attributes this run has.
        sub = [f"Average over the {len(present)} attributes present", mean_ours]
        p = sum(t.value(published.PAPER, a) for a in present) / len(present)
        sub += [p, mean_ours - p]
        if has_bal:
            sub.append(avg[4])
        sub += [sum(t.value(m, a) for a in present) / len(present) for m in others]
        rows.append(sub)
        notes.append(f"average: over the {len(present)} attributes present; the paper's printed "
                     f"average covers all {len(names)}")
    rows += [row_for(a) for a in extra]
    return Comparison(dataset, ours.run, t, ours, columns, rows, notes)


def column_titles(c: Comparison) -> list[str]:
    titles = {"reproduced": f"reproduced ({c.run})", "paper": published.METHOD_LABELS[published.PAPER],
              "diff": "diff (reproduced - paper)", "reproduced_balanced": "reproduced balanced acc."}
    return ["attribute"] + [titles.get(k) or published.METHOD_LABELS[k] for k in c.columns]


def to_csv(c: Comparison) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["attribute", *c.columns])
    for r in c.rows:
        w.writerow([r[0], *(_fmt(v) for v in r[1:])])
    return buf.getvalue()


def _markdown(titles: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join(["---"] + ["---:"] * (len(titles) - 1)) + "|"]
    for r in rows:
        lines.append("| " + " | ".join([str(r[0]), *(_fmt(v) for v in r[1:])]) + " |")
    return "\n".join(lines) + "\n"


def _text_table(titles: list[str], rows: list[list]) -> str:
    cells = [titles] + [[str(r[0]), *(_fmt(v) for v in r[1:])] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(titles))]
    out = []
    for k, row in enumerate(cells):
        out.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"


def _notes_text(notes: list[str], bullet: str) -> str:
    return "".join(f"{bullet}{n}\n" for n in notes)


# ------------------------------------------------------------------ Table 1
def table1_rows(runs: dict[str, RunResult], dataset: str) -> tuple[list[list], list[str]]:
    """Table 1 for the step-combination runs present: [label, run, ours, paper, diff, n attrs]."""
    names = list(published.load_table(dataset).attributes)
    rows, notes = [], []
    for row in published.load_steps():
        r = runs.get(row.run_name)
        paper = row.accuracy[dataset].value
        if r is None:
            rows.append([row.paper_label, row.run_name, None, row.accuracy[dataset], None, None])
            continue
        present = [a for a in names if a in r.accuracy]
        if not present:
            notes.append(f"{row.run_name}: none of the {dataset} attributes; left out of Table 1")
            rows.append([row.paper_label, row.run_name, None, row.accuracy[dataset], None, None])
            continue
        mean = sum(r.accuracy[a] for a in present) / len(present)
        if len(present) < len(names):
            notes.append(f"{row.run_name}: averaged over {len(present)} of {len(names)} attributes "
                         "(not comparable with the paper's average)")
        rows.append([row.paper_label, row.run_name, mean, row.accuracy[dataset],
                     mean - paper if len(present) == len(names) else None, len(present)])
    not_run = [r[1] for r in rows if r[2] is None]
    if not_run:
        notes.append(f"not run: {', '.join(not_run)}")
    others = [n for n in runs if published.steps_of_run(n) is None]
    if others:
        notes.append(f"runs that are not step combinations (not in Table 1): {', '.join(others)}")
    return rows, notes


TABLE1_COLUMNS = ["steps", "run", "reproduced", "paper", "diff", "attributes"]


def _table1_csv(rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TABLE1_COLUMNS)
    for r in rows:
        w.writerow([r[0], *(_fmt(v) for v in r[1:])])
    return buf.getvalue()


# ------------------------------------------------------------------ pictures
def plot_comparison(c: Comparison, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(c.table.attributes)
    ours = np.array([c.ours.accuracy.get(a, np.nan) for a in names])
    paper = np.array([c.table.value(published.PAPER, a) for a in names])
    x = np.arange(len(names))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(10, 0.38 * len(names)), 8.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1.3]})
    for m in c.table.methods:
        if m != published.PAPER:
            ax.plot(x, [c.table.value(m, a) for a in names], ".", ms=5, alpha=0.6,
                    label=published.METHOD_LABELS[m])
    ax.bar(x - 0.2, paper, 0.4, color="#888888", label=published.METHOD_LABELS[published.PAPER])
    ax.bar(x + 0.2, np.nan_to_num(ours, nan=0.0), 0.4, color="#1f77b4", label=f"reproduced ({c.run})")
    lo = np.nanmin(np.concatenate([ours, paper, [min(c.table.value(m, a) for m in c.table.methods
                                                     for a in names)]]))
    bottom = max(0.0, math.floor(lo / 5) * 5 - 5)
    ax.set_ylim(bottom, 100)
    for i in np.flatnonzero(np.isnan(ours)):
        ax.text(x[i] + 0.2, bottom + 1, "missing", rotation=90, fontsize=7, color="red", ha="center")
    ax.set_ylabel("accuracy (%)")
    mean_ours = float(np.nanmean(ours))
    ax.set_title(f"{published.TABLE_NAMES[c.dataset]} ({c.dataset}): reproduced average "
                 f"{mean_ours:.2f}% (over {int(np.sum(~np.isnan(ours)))} of {len(names)}) "
                 f"vs paper {c.table.averages[published.PAPER].text}%")
    ax.legend(fontsize=7, ncol=4, loc="lower left")
    diff = ours - paper
    ax2.bar(x, np.nan_to_num(diff), color=np.where(diff >= 0, "#2ca02c", "#d62728"))
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_ylabel("reproduced - paper")
    ax2.set_xticks(x)
    ax2.set_xticklabels(names, rotation=90, fontsize=8)
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)


def plot_table1(rows: list[list], dataset: str, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, [r[3].value for r in rows], 0.4, color="#888888", label="paper (Table 1)")
    ax.bar(x + 0.2, [r[2] if r[2] is not None else 0 for r in rows], 0.4, color="#1f77b4", label="reproduced")
    for i, r in enumerate(rows):
        if r[2] is None:
            ax.text(i + 0.2, 1, "not run", rotation=90, fontsize=8, color="red", ha="center", va="bottom")
    vals = [r[2] for r in rows if r[2] is not None] + [r[3].value for r in rows]
    ax.set_ylim(max(0, math.floor(min(vals) / 5) * 5 - 5), 100)
    ax.set_xticks(x)
    ax.set_xticklabels([r[0] for r in rows], rotation=20)
    ax.set_ylabel("average accuracy (%)")
    ax.set_title(f"Table 1 ({dataset}): training-step combinations")
    ax.legend(fontsize=8)
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ command
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, metavar="RESULTS",
                   help="CSV with attribute,accuracy (percent) [run,dataset,balanced_accuracy]")
    p.add_argument("--dataset", choices=("auto", *DATASETS), default="auto",
                   help="which paper table; auto: the file's dataset column, else celeba")
    p.add_argument("--run", default=None,
                   help=f"which run of RESULTS to compare per attribute; None = the only run, else {FULL_RUN}")
    p.add_argument("--ablations", default="auto", metavar="FILE|auto|none",
                   help="results CSV with step-combination runs for Table 1; auto: the runs in RESULTS")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory; None = RESULTS' directory / compare")
    p.add_argument("--format", choices=("table", "csv", "markdown"), default="table",
                   help="what to print; csv: one column per method, machine-readable")


def _pick_dataset(arg: str, datasets: set[str]) -> tuple[str, str | None]:
    if arg != "auto":
        if datasets and datasets != {arg}:
            return arg, f"dataset: --dataset {arg} but RESULTS says {', '.join(sorted(datasets))}"
        return arg, None
    known = datasets & set(DATASETS)
    if len(datasets) == 1 and known:
        return known.pop(), None
    if datasets:
        raise G2SError(f"RESULTS names dataset(s) {', '.join(sorted(datasets))}; pass --dataset celeba|lfwa")
    return "celeba", "dataset: RESULTS has no dataset column; compared with CelebA (pass --dataset lfwa for LFWA)"


def run(args) -> int:
    runs, datasets = read_results(args.results)
    dataset, note = _pick_dataset(args.dataset, datasets)
    if args.run:
        if args.run not in runs:
            raise G2SError(f"{args.results}: no run {args.run!r} (runs: {', '.join(runs)})")
        name = args.run
    elif len(runs) == 1:
        name = next(iter(runs))
    elif FULL_RUN in runs:
        name = FULL_RUN
    else:
        raise G2SError(f"{args.results}: {len(runs)} runs ({', '.join(runs)}); pick one with --run")
    comp = compare_run(runs[name], dataset)
    if note:
        comp.notes.insert(0, note)

    if args.ablations == "none":
        abl_runs = {}
    elif args.ablations == "auto":
        abl_runs = runs
    else:
        abl_runs, _ = read_results(Path(args.ablations))
    t1 = None
    if any(published.steps_of_run(n) for n in abl_runs):
        t1 = table1_rows(abl_runs, dataset)

    out = args.out or args.results.resolve().parent / "compare"
    titles = column_titles(comp)
    md = [f"# Reproduced vs published: {dataset} ({published.TABLE_NAMES[dataset]}), run {comp.run}\n",
          f"Source: {args.results}. Accuracies in percent.\n"]
    if comp.notes:
        md += ["## Notes\n", _notes_text(comp.notes, "- ")]
    md += ["## Per attribute\n", _markdown(titles, comp.rows)]
    written = [write_atomic(out / f"compare_{dataset}.csv", to_csv(comp)),
               plot_comparison(comp, out / f"compare_{dataset}.png")]
    if t1:
        rows, notes = t1
        t1_titles = ["steps", "run", "reproduced", "paper (Table 1)", "diff", "attributes"]
        md += ["\n## Table 1: training-step combinations (average accuracy)\n",
               _notes_text(notes, "- ") + "\n" if notes else "", _markdown(t1_titles, rows)]
        written += [write_atomic(out / f"table1_{dataset}.csv", _table1_csv(rows)),
                    plot_table1(rows, dataset, out / f"table1_{dataset}.png")]
    written.insert(0, write_atomic(out / f"compare_{dataset}.md", "\n".join(md)))

    if args.format == "csv":
        sys.stdout.write(to_csv(comp))
        for n in comp.notes:
            print(f"note: {n}", file=sys.stderr)
    elif args.format == "markdown":
        sys.stdout.write("\n".join(md))
    else:
        sys.stdout.write(_text_table(titles, comp.rows))
        sys.stdout.write(_notes_text(comp.notes, "note: "))
        if t1:
            print("\nTable 1 (average accuracy, %):")
            sys.stdout.write(_text_table(["steps", "run", "reproduced", "paper", "diff", "attributes"], t1[0]))
            sys.stdout.write(_notes_text(t1[1], "note: "))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
