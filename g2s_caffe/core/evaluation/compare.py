"""Put reproduced accuracies next to the paper's Tables 1-3, with how sure each number is;
or compare two evaluated runs/methods image by image (--paired A B).

RESULTS is a CSV with at least the columns ``attribute,accuracy`` (accuracy in percent,
attribute names as in the dataset's attribute file): what ``g2s eval`` writes, or numbers
from anywhere else (format: g2s_caffe/core/evaluation/results.py).  Optional columns: ``run`` (several runs
in one file, e.g. the seven step combinations of Table 1, named ``steps_1``, ``steps_1_2``
... ``steps_1_2_3``), ``dataset``, ``balanced_accuracy``; ``n``, ``tp``, ``tn`` (image
counts: each accuracy gets its 95 % Wilson interval; or ``accuracy_lo``/``accuracy_hi``
given directly); ``predictions`` (the run's per-image file: the means get bootstrap
intervals, and --paired works).  Without counts the output says that no interval can be
computed.

Writes, under --out: compare_<dataset>.md / .csv / .png (per attribute: ours with its
interval, the paper's, whether the paper's number lies inside our interval, the difference,
the other methods; the averages) and, when step-combination runs are present,
table1_<dataset>.md / .csv / .png.  With --paired A B: paired_<A>_vs_<B>.md / .csv / .png
instead (g2s_caffe/core/evaluation/paired.py).  Missing, extra or reordered attributes are listed in the
output and the files, never dropped silently.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from g2s_caffe.core import disk
from g2s_caffe.core.evaluation import published, stats
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.atomic import save_figure_atomic, write_atomic
from g2s_caffe.core.evaluation.results import RunResult, csv_text, read_results
from g2s_caffe.core.evaluation.tables import cell, error_bars, interval_text, markdown, notes_text, text_table

# Space for a full disk's message (core/disk.py): about twice what was measured on 2026-12-04
# (a 40-attribute comparison figure 136 KiB, its markdown table 10 KiB).
COMPARE_BYTES_PER_FIGURE = 256 << 10
COMPARE_BYTES_PER_TABLE = 32 << 10


def _expect_space(out: Path, files: list[Path]) -> None:
    figures = sum(f.suffix == ".png" for f in files)
    disk.expect(out, figures * COMPARE_BYTES_PER_FIGURE + (len(files) - figures) * COMPARE_BYTES_PER_TABLE,
                f"compare ({figures} figure(s), {len(files) - figures} table(s))", parts=files)

DATASETS = tuple(published.TABLE_FILES)
FULL_RUN = "steps_1_2_3"
NO_COUNTS = ("no interval can be computed without the image counts: RESULTS has neither n, tp, tn "
             "(as `g2s eval` writes them) nor accuracy_lo, accuracy_hi columns")
CI = f"{stats.LEVEL} CI"


# ------------------------------------------------------------------ intervals of means
@dataclass(frozen=True)
class MeanIntervals:
    accuracy: stats.Interval | None      # percent
    balanced: stats.Interval | None
    note: str | None                     # why there are none


def mean_intervals(ours: RunResult, attributes: list[str], resamples: int, seed: int) -> MeanIntervals:
    """Bootstrap intervals of the means over ``attributes`` from the run's per-image file."""
    from g2s_caffe.core.evaluation.metrics import summarize

    if ours.predictions is None:
        return MeanIntervals(None, None, f"means of run {ours.run!r}: no interval (the results give no "
                                         "per-image predictions; `g2s eval` writes them)")
    if not ours.predictions.is_file():
        return MeanIntervals(None, None, f"means of run {ours.run!r}: no interval (its predictions file "
                                         f"{ours.predictions} is missing; was RESULTS moved without the runs?)")
    pred = ours.load_predictions(attributes)
    s = summarize(pred.probs, pred.labels, attributes, resamples, seed)
    return MeanIntervals(s.mean_accuracy_interval.scaled(100), s.mean_balanced_interval.scaled(100), None)


def inside(interval: stats.Interval | None, paper) -> bool | None:
    """Whether the paper's printed number lies inside our interval (None: no interval or number)."""
    if interval is None or paper is None:
        return None
    return interval.contains(paper.value if hasattr(paper, "value") else float(paper))


# ------------------------------------------------------------------ the comparison
@dataclass
class Comparison:
    dataset: str
    run: str
    table: published.PublishedTable
    ours: RunResult
    columns: list[str]                       # CSV column ids after "attribute", in order
    rows: list[dict]                         # "attribute" + column id -> float | Cell | bool | None
    notes: list[str]
    summary: str                             # how many published numbers lie inside our intervals
    column: str = published.PAPER            # the published column this run reproduces


def _row(ours: RunResult, t: published.PublishedTable, a: str, others: list[str], has_bal: bool,
         column: str) -> dict:
    acc = ours.accuracy.get(a)
    iv = ours.accuracy_interval(a) if acc is not None else None
    paper = t.cells[column][a] if a in t.attributes else None
    row = {"attribute": a, "reproduced": acc, "reproduced_lo": iv.lo if iv else None,
           "reproduced_hi": iv.hi if iv else None, "paper": paper, "paper_inside": inside(iv, paper),
           "diff": None if acc is None or paper is None else acc - paper.value}
    if has_bal:
        biv = ours.balanced_ci.get(a)
        row.update(reproduced_balanced=ours.balanced.get(a), reproduced_balanced_lo=biv.lo if biv else None,
                   reproduced_balanced_hi=biv.hi if biv else None)
    row.update({m: t.cells[m][a] if a in t.attributes else None for m in others})
    return row


def _mean_row(label: str, mean: float, paper, comparable: bool, means: MeanIntervals, bal: float | None,
              has_bal: bool, other_values: dict) -> dict:
    iv = means.accuracy
    row = {"attribute": label, "reproduced": mean, "reproduced_lo": iv.lo if iv else None,
           "reproduced_hi": iv.hi if iv else None, "paper": paper,
           "paper_inside": inside(iv, paper) if comparable else None,
           "diff": mean - (paper.value if hasattr(paper, "value") else paper) if comparable else None}
    if has_bal:
        b = means.balanced
        row.update(reproduced_balanced=bal, reproduced_balanced_lo=b.lo if b else None,
                   reproduced_balanced_hi=b.hi if b else None)
    row.update(other_values)
    return row


def inside_summary(rows: list[dict], n_attrs: int, ours: RunResult) -> str:
    per_attr = [r["paper_inside"] for r in rows[:n_attrs] if r["paper_inside"] is not None]
    means = [r for r in rows[n_attrs:] if r["paper_inside"] is not None]
    if not per_attr and not means:
        return f"paper inside our interval: {NO_COUNTS}"
    text = (f"the paper's number lies inside our {stats.LEVEL} interval for {sum(per_attr)} of "
            f"{len(per_attr)} attributes" if per_attr else f"per attribute: {NO_COUNTS}")
    for r in means:
        text += f"; {r['attribute'].split(' (')[0].lower()}: {'inside' if r['paper_inside'] else 'outside'}"
    if not ours.predictions:
        text += " (means: no interval without per-image predictions)"
    return text


def compare_run(ours: RunResult, dataset: str, resamples: int = stats.RESAMPLES, seed: int = stats.SEED) -> Comparison:
    t = published.load_table(dataset)
    column = published.column_of_method(ours.method)
    if column not in t.methods:
        raise G2SError(f"run {ours.run!r} (method {ours.method}): {published.TABLE_NAMES[dataset]} has no "
                       f"{published.METHOD_LABELS.get(column, column)} column")
    names = list(t.attributes)
    present = [a for a in names if a in ours.accuracy]
    missing = [a for a in names if a not in ours.accuracy]
    extra = [a for a in ours.order if a not in names]
    others = [m for m in t.methods if m != column]
    has_bal = bool(ours.balanced)
    columns = ["reproduced", "reproduced_lo", "reproduced_hi", "paper", "paper_inside", "diff"]
    columns += ["reproduced_balanced", "reproduced_balanced_lo", "reproduced_balanced_hi"] if has_bal else []
    columns += others
    if not present:
        raise G2SError(f"run {ours.run!r}: none of its {len(ours.accuracy)} attributes is one of "
                       f"{dataset}'s ({', '.join(names[:3])}, ...); is --dataset right?")
    notes = _attribute_notes(ours, dataset, names, missing, extra)
    for m, printed, mean in t.average_disagreements():
        notes.append(f"paper: {published.TABLE_NAMES[dataset]} prints {printed} as the average of "
                     f"{published.METHOD_LABELS[m]}, but its column's mean is {mean:.2f}")
    if not ours.counts and not ours.given_ci:
        notes.append(f"intervals: {NO_COUNTS}")
    means = mean_intervals(ours, present, resamples, seed)
    if means.note:
        notes.append(means.note)

    rows = [_row(ours, t, a, others, has_bal, column) for a in names]
    mean_ours = sum(ours.accuracy[a] for a in present) / len(present)
    bal = [ours.balanced[a] for a in present if a in ours.balanced]
    mean_bal = sum(bal) / len(bal) if bal else None
    rows.append(_mean_row("Average (paper: as printed)", mean_ours, t.averages[column], not missing,
                          means, mean_bal, has_bal, {m: t.averages[m] for m in others}))
    if missing:
        # Like for like: every column averaged over the attributes this run has.
        mean_of = lambda m: sum(t.value(m, a) for a in present) / len(present)
        rows.append(_mean_row(f"Average over the {len(present)} attributes present", mean_ours,
                              mean_of(column), True, means, mean_bal, has_bal,
                              {m: mean_of(m) for m in others}))
        notes.append(f"average: over the {len(present)} attributes present; the paper's printed "
                     f"average covers all {len(names)}")
    summary = inside_summary(rows, len(names), ours)
    rows += [_row(ours, t, a, others, has_bal, column) for a in extra]
    return Comparison(dataset, ours.run, t, ours, columns, rows, notes, summary, column)


def _attribute_notes(ours: RunResult, dataset: str, names: list[str], missing: list[str],
                     extra: list[str]) -> list[str]:
    notes = []
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
    return notes


def interval_note(resamples: int, seed: int) -> str:
    return (f"Intervals: {stats.LEVEL}; an accuracy: Wilson score interval of its image counts; "
            f"balanced accuracies and means over attributes: percentile bootstrap over the test images "
            f"({resamples} resamples, seed {seed}). \"paper inside\": the paper's printed number lies inside "
            "our interval.")


def display(c: Comparison) -> tuple[list[str], list[list]]:
    """Titles and rows for Markdown / text: each value with its interval in one cell."""
    has_bal = "reproduced_balanced" in c.columns
    others = [k for k in c.columns if k in published.METHOD_LABELS]
    titles = ["attribute", f"reproduced ({c.run}) [{CI}]", published.METHOD_LABELS[c.column],
              "paper inside", "diff (reproduced - paper)"]
    titles += [f"reproduced balanced acc. [{CI}]"] if has_bal else []
    titles += [published.METHOD_LABELS[m] for m in others]
    rows = []
    for r in c.rows:
        out = [r["attribute"], interval_text(r["reproduced"], _iv(r, "reproduced")), r["paper"],
               r["paper_inside"], r["diff"]]
        if has_bal:
            out.append(interval_text(r.get("reproduced_balanced"), _iv(r, "reproduced_balanced")))
        rows.append(out + [r[m] for m in others])
    return titles, rows


def side_by_side(comps: list[Comparison]) -> tuple[list[str], list[list]]:
    """Per attribute and for the average: each run's reproduced accuracy [CI] next to its method's
    published number (one pair of columns per run)."""
    titles = ["attribute"]
    for c in comps:
        titles += [f"reproduced ({c.run}) [{CI}]", published.METHOD_LABELS[c.column]]
    by_run = [{r["attribute"]: r for r in c.rows} for c in comps]
    labels = [r["attribute"] for r in comps[0].rows]
    rows = []
    for label in labels:
        out = [label]
        for by in by_run:
            r = by.get(label)
            out += [interval_text(r["reproduced"], _iv(r, "reproduced")), r["paper"]] if r else [None, None]
        rows.append(out)
    return titles, rows


def _iv(row: dict, key: str) -> stats.Interval | None:
    lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    return None if lo is None or hi is None else stats.Interval(lo, hi)


def to_csv(c: Comparison) -> str:
    return csv_text(["attribute", *c.columns], ([cell(r.get(k)) for k in ["attribute", *c.columns]] for r in c.rows))


# ------------------------------------------------------------------ Table 1
TABLE1_COLUMNS = ["steps", "run", "reproduced", "reproduced_lo", "reproduced_hi", "paper", "paper_inside",
                  "diff", "attributes"]
TABLE1_TITLES = ["steps", "run", f"reproduced [{CI}]", "paper (Table 1)", "paper inside", "diff", "attributes"]


def table1_rows(runs: dict[str, RunResult], dataset: str, resamples: int = stats.RESAMPLES,
                seed: int = stats.SEED) -> tuple[list[dict], list[str]]:
    """Table 1 for the step-combination runs present: one dict per row of TABLE1_COLUMNS."""
    names = list(published.load_table(dataset).attributes)
    rows, notes = [], []
    for row in published.load_steps():
        r = runs.get(row.run_name)
        paper = row.accuracy[dataset]
        out = dict.fromkeys(TABLE1_COLUMNS)
        out.update(steps=row.paper_label, run=row.run_name, paper=paper)
        rows.append(out)
        present = [a for a in names if a in r.accuracy] if r else []
        if r is not None and not present:
            notes.append(f"{row.run_name}: none of the {dataset} attributes; left out of Table 1")
        if not present:
            continue
        mean = sum(r.accuracy[a] for a in present) / len(present)
        full = len(present) == len(names)
        if not full:
            notes.append(f"{row.run_name}: averaged over {len(present)} of {len(names)} attributes "
                         "(not comparable with the paper's average)")
        means = mean_intervals(r, present, resamples, seed)
        if means.note:
            notes.append(means.note)
        iv = means.accuracy
        out.update(reproduced=mean, reproduced_lo=iv.lo if iv else None, reproduced_hi=iv.hi if iv else None,
                   paper_inside=inside(iv, paper) if full else None, diff=mean - paper.value if full else None,
                   attributes=len(present))
    not_run = [r["run"] for r in rows if r["reproduced"] is None]
    if not_run:
        notes.append(f"not run: {', '.join(not_run)}")
    others = [n for n in runs if published.steps_of_run(n) is None]
    if others:
        notes.append(f"runs that are not step combinations (not in Table 1): {', '.join(others)}")
    return rows, notes


def table1_display(rows: list[dict]) -> list[list]:
    return [[r["steps"], r["run"], interval_text(r["reproduced"], _iv(r, "reproduced")), r["paper"],
             r["paper_inside"], r["diff"], r["attributes"]] for r in rows]


def _table1_csv(rows: list[dict]) -> str:
    return csv_text(TABLE1_COLUMNS, ([cell(r[k]) for k in TABLE1_COLUMNS] for r in rows))


# ------------------------------------------------------------------ pictures
def plot_comparison(c: Comparison, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(c.table.attributes)
    by = {r["attribute"]: r for r in c.rows}
    ours = np.array([c.ours.accuracy.get(a, np.nan) for a in names])
    ivs = [_iv(by[a], "reproduced") for a in names]
    paper = np.array([c.table.value(c.column, a) for a in names])
    x = np.arange(len(names))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(10, 0.38 * len(names)), 8.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1.3]})
    for m in c.table.methods:
        if m != c.column:
            ax.plot(x, [c.table.value(m, a) for a in names], ".", ms=5, alpha=0.6,
                    label=published.METHOD_LABELS[m])
    ax.bar(x - 0.2, paper, 0.4, color="#888888", label=published.METHOD_LABELS[c.column])
    bar = dict(capsize=1.5, error_kw={"elinewidth": 0.8, "ecolor": "black"})
    ax.bar(x + 0.2, np.nan_to_num(ours, nan=0.0), 0.4, color="#1f77b4", yerr=error_bars(ours, ivs), **bar,
           label=f"reproduced ({c.run}), {CI}" if any(ivs) else f"reproduced ({c.run}), no intervals")
    lo = np.nanmin(np.concatenate([ours, paper, [min(c.table.value(m, a) for m in c.table.methods
                                                     for a in names)]]))
    bottom = max(0.0, math.floor(lo / 5) * 5 - 5)
    ax.set_ylim(bottom, 100)
    for i in np.flatnonzero(np.isnan(ours)):
        ax.text(x[i] + 0.2, bottom + 1, "missing", rotation=90, fontsize=7, color="red", ha="center")
    ax.set_ylabel("accuracy (%)")
    avg = c.rows[len(names)]
    ax.set_title(f"{published.TABLE_NAMES[c.dataset]} ({c.dataset}): reproduced average "
                 f"{interval_text(avg['reproduced'], _iv(avg, 'reproduced'))}% (over "
                 f"{int(np.sum(~np.isnan(ours)))} of {len(names)}) vs paper "
                 f"{c.table.averages[c.column].text}%\n{c.summary}", fontsize=9)
    ax.legend(fontsize=7, ncol=4, loc="lower left")
    diff = ours - paper
    div = [None if iv is None else iv.shifted(-p) for iv, p in zip(ivs, paper)]
    colours = ["#bbbbbb" if by[a]["paper_inside"] else ("#2ca02c" if d >= 0 else "#d62728")
               for a, d in zip(names, np.nan_to_num(diff))]
    ax2.bar(x, np.nan_to_num(diff), color=colours, yerr=error_bars(diff, div), **bar)
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_ylabel("reproduced - paper")
    ax2.set_title("grey: the paper's number lies inside our interval", fontsize=8)
    ax2.set_xticks(x)
    ax2.set_xticklabels(names, rotation=90, fontsize=8)
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)


def plot_table1(rows: list[dict], dataset: str, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(rows))
    ours = [r["reproduced"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, [r["paper"].value for r in rows], 0.4, color="#888888", label="paper (Table 1)")
    ax.bar(x + 0.2, [v if v is not None else 0 for v in ours], 0.4, color="#1f77b4", capsize=2,
           yerr=error_bars(ours, [_iv(r, "reproduced") for r in rows]), label=f"reproduced ({CI})")
    for i, r in enumerate(rows):
        if r["reproduced"] is None:
            ax.text(i + 0.2, 1, "not run", rotation=90, fontsize=8, color="red", ha="center", va="bottom")
    vals = [v for v in ours if v is not None] + [r["paper"].value for r in rows]
    vals += [r["reproduced_lo"] for r in rows if r["reproduced_lo"] is not None]
    ax.set_ylim(max(0, math.floor(min(vals) / 5) * 5 - 5), 100)
    ax.set_xticks(x)
    ax.set_xticklabels([r["steps"] for r in rows], rotation=20)
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
                   help="CSV with attribute,accuracy (percent) [run,dataset,balanced_accuracy,n,tp,tn,predictions]")
    p.add_argument("--dataset", choices=("auto", *DATASETS), default="auto",
                   help="which paper table; auto: the file's dataset column, else celeba")
    p.add_argument("--run", default=None,
                   help=f"which run of RESULTS to compare per attribute; None = the only run, else {FULL_RUN}")
    p.add_argument("--ablations", default="auto", metavar="FILE|auto|none",
                   help="results CSV with step-combination runs for Table 1; auto: the runs in RESULTS")
    p.add_argument("--paired", nargs=2, metavar=("A", "B"), default=None,
                   help="instead: compare runs A and B of RESULTS image by image (McNemar per attribute, "
                        "paired bootstrap of the mean difference B - A); needs their per-image predictions")
    p.add_argument("--correction", choices=stats.CORRECTIONS, default=stats.DEFAULT_CORRECTION,
                   help="--paired: adjustment of the per-attribute p-values (holm: family-wise error; "
                        "bh: Benjamini-Hochberg false-discovery rate)")
    p.add_argument("--resamples", type=int, default=stats.RESAMPLES, help="bootstrap resamples of the test images")
    p.add_argument("--seed", type=int, default=stats.SEED,
                   help="bootstrap seed (fixed: reruns give the same intervals)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory; None = RESULTS' directory / compare")
    p.add_argument("--format", choices=("table", "csv", "markdown"), default="table",
                   help="what to print; csv: one column per method, interval columns beside each value")


def outputs(args) -> list[Path]:
    return [args.out or args.results.resolve().parent / "compare"]


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


def _pick_run(runs: dict[str, RunResult], wanted: str | None, results: Path) -> str:
    if wanted:
        if wanted not in runs:
            raise G2SError(f"{results}: no run {wanted!r} (runs: {', '.join(runs)})")
        return wanted
    if len(runs) == 1:
        return next(iter(runs))
    if FULL_RUN in runs:
        return FULL_RUN
    raise G2SError(f"{results}: {len(runs)} runs ({', '.join(runs)}); pick one with --run")


def paired_runs(runs: dict[str, RunResult], name_a: str, name_b: str, results: Path, correction: str,
                resamples: int, seed: int):
    """compare_paired on two runs of one results file, from their per-image predictions."""
    from g2s_caffe.core.evaluation.paired import compare_paired

    for n in (name_a, name_b):
        if n not in runs:
            raise G2SError(f"{results}: no run {n!r} to pair (runs: {', '.join(runs)})")
    if name_a == name_b:
        raise G2SError(f"--paired {name_a} {name_b}: pick two different runs")
    a, b = runs[name_a], runs[name_b]
    return compare_paired(a.load_predictions(a.order), b.load_predictions(b.order), name_a, name_b,
                          correction, stats.ALPHA, resamples, seed)


def run_paired(args) -> int:
    from g2s_caffe.core.evaluation.paired import CSV_COLUMNS, csv_rows, display_rows, plot_paired, summary_lines

    runs, _ = read_results(args.results)
    name_a, name_b = args.paired
    c = paired_runs(runs, name_a, name_b, args.results, args.correction, args.resamples, args.seed)
    out = args.out or args.results.resolve().parent / "compare"
    stem = f"paired_{name_a}_vs_{name_b}"
    titles, rows = display_rows(c)
    lines = summary_lines(c)
    md = (f"# Paired comparison on the same test images: B = {name_b} vs A = {name_a}\n\nSource: {args.results}. "
          "Accuracies in percent.\n\n" + notes_text(lines, "- ") + "\n" + markdown(titles, rows))
    csv_out = csv_text(CSV_COLUMNS, csv_rows(c))
    _expect_space(out, [out / f"{stem}.{ext}" for ext in ("md", "csv", "png")])
    written = [write_atomic(out / f"{stem}.md", md), write_atomic(out / f"{stem}.csv", csv_out),
               plot_paired(c, out / f"{stem}.png")]
    if args.format == "csv":
        sys.stdout.write(csv_out)
        sys.stderr.write(notes_text(lines, "note: "))
    elif args.format == "markdown":
        sys.stdout.write(md)
    else:
        sys.stdout.write(text_table(titles, rows) + notes_text(lines, ""))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def run(args) -> int:
    if args.resamples < 1:
        raise G2SError(f"--resamples must be >= 1, got {args.resamples}")
    if args.paired:
        return run_paired(args)
    runs, datasets = read_results(args.results)
    dataset, note = _pick_dataset(args.dataset, datasets)
    main_run = _pick_run(runs, args.run, args.results)
    comp = compare_run(runs[main_run], dataset, args.resamples, args.seed)
    if note:
        comp.notes.insert(0, note)
    # Other methods' runs in the same file (the LNets+ANet baseline): each next to its own
    # published column, and all of them side by side.
    others = [] if args.run else [compare_run(r, dataset, args.resamples, args.seed)
                                  for n, r in runs.items() if n != main_run and r.method != runs[main_run].method]

    if args.ablations == "none":
        abl_runs = {}
    elif args.ablations == "auto":
        abl_runs = runs
    else:
        abl_runs, _ = read_results(Path(args.ablations))
    t1 = None
    if any(published.steps_of_run(n) for n in abl_runs):
        t1 = table1_rows(abl_runs, dataset, args.resamples, args.seed)

    out = args.out or args.results.resolve().parent / "compare"
    titles, rows = display(comp)
    md = [f"# Reproduced vs published: {dataset} ({published.TABLE_NAMES[dataset]}), run {comp.run}\n",
          f"Source: {args.results}. Accuracies in percent. {interval_note(args.resamples, args.seed)}\n",
          f"**Summary:** {comp.summary}.\n"]
    if comp.notes:
        md += ["## Notes\n", notes_text(comp.notes, "- ")]
    md += ["## Per attribute\n", markdown(titles, rows)]
    _expect_space(out, [out / f"compare_{dataset}.{ext}" for ext in ("md", "csv", "png")]
                  + [out / f"compare_{dataset}_{o.run}.{ext}" for o in others for ext in ("md", "csv", "png")]
                  + ([out / f"table1_{dataset}.{ext}" for ext in ("csv", "png")] if t1 else []))
    written = [write_atomic(out / f"compare_{dataset}.csv", to_csv(comp)),
               plot_comparison(comp, out / f"compare_{dataset}.png")]
    if others:
        sb_titles, sb_rows = side_by_side([comp, *others])
        md += ["\n## Methods side by side (reproduced on the same data, and as published)\n",
               notes_text([f"{o.run}: {o.summary}" for o in others]
                          + [f"which differences are real: g2s compare {args.results} --paired {o.run} {comp.run}"
                             for o in others], "- "), "\n", markdown(sb_titles, sb_rows)]
        for o in others:
            o_titles, o_rows = display(o)
            written += [write_atomic(out / f"compare_{dataset}_{o.run}.csv", to_csv(o)),
                        plot_comparison(o, out / f"compare_{dataset}_{o.run}.png"),
                        write_atomic(out / f"compare_{dataset}_{o.run}.md",
                                     f"# Reproduced vs published: {dataset}, run {o.run}\n\n**Summary:** {o.summary}.\n\n"
                                     + (notes_text(o.notes, "- ") + "\n" if o.notes else "") + markdown(o_titles, o_rows))]
    if t1:
        t1_rows, t1_notes = t1
        md += ["\n## Table 1: training-step combinations (average accuracy)\n",
               notes_text(t1_notes, "- ") + "\n" if t1_notes else "", markdown(TABLE1_TITLES, table1_display(t1_rows))]
        written += [write_atomic(out / f"table1_{dataset}.csv", _table1_csv(t1_rows)),
                    plot_table1(t1_rows, dataset, out / f"table1_{dataset}.png")]
    written.insert(0, write_atomic(out / f"compare_{dataset}.md", "\n".join(md)))

    if args.format == "csv":
        sys.stdout.write(to_csv(comp))
        for n in [comp.summary, *comp.notes]:
            print(f"note: {n}", file=sys.stderr)
    elif args.format == "markdown":
        sys.stdout.write("\n".join(md))
    else:
        sys.stdout.write(text_table(titles, rows))
        sys.stdout.write(f"summary: {comp.summary}\n")
        sys.stdout.write(notes_text(comp.notes, "note: "))
        if t1:
            print(f"\nTable 1 (average accuracy, %, {CI}):")
            sys.stdout.write(text_table(TABLE1_TITLES, table1_display(t1[0])))
            sys.stdout.write(notes_text(t1[1], "note: "))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
