"""The whole pipeline on the bundled synthetic-attribute dataset, in one command (`make demo`).

  g2s demo                   the set-up's 2,000-image demo dataset (data_prep/demo_data.py)
  g2s demo --quick           a 300-image dataset and a few iterations (the test suite's run)

Stages, each reused when a rerun finds it finished with the same settings:
  data    the demo dataset in raw CelebA layout (generated at set-up; --quick writes its own)
  prep    MTCNN detection, eye alignment, the 8 crops at 64 px, LMDBs, contact sheet (g2s prep)
  gen     the nets and solvers for the demo's attribute list (g2s gen --variant small)
  train   two runs: Step 1 alone, and Steps 1 -> 2 -> 3 (g2s train, random init)
  anet    the LNets+ANet baseline's ANet on the same data (g2s anet --variant small): identity
          pre-training on the demo's 8 people, attribute fine-tuning, SVMs on the val split, on
          the face boxes of `prep` (run anet_prep_boxes)
  lnets   the baseline's LNets (g2s lnets --variant small --weights-alexnet none): LNet_o and
          LNet_s fine-tuned with the attribute tags only, the face threshold
  lnets_anet  ANet again, on LNets' face windows (g2s anet --faces lnets): LNets+ANet end to end
  localize    LNets and our MTCNN port on the test images vs the annotation boxes (g2s localize:
          Fig. 7's curves, response-map pictures)
  eval    both runs and both ANet runs on the test split (g2s eval)
  report  the demo's Table 1 (per attribute: Step 1 alone vs all three steps, 95 % intervals, and
          which differences are real at 5 %: exact McNemar with Holm's correction, paired
          bootstrap of the mean difference; g2s_caffe/core/evaluation/paired.py), curves, report.md

The attributes are drawn onto real faces by the generator; the numbers show the pipeline
working end to end, not the paper's accuracies (report.md says what they do and do not show).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from g2s_caffe.methods.g2s import params as hp
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.evaluation.results import RESULT_COLUMNS

ATTRIBUTES_FILE = Path(__file__).resolve().parent / "data" / "attributes" / "demo.yaml"
DATASET = "demo"
IMAGE_SIZE = 64        # the small variant's stored crop (params.SMALL_NET)
RUNS = ("steps_1", "steps_1_2_3")
# The LNets+ANet baseline (g2s_caffe/methods/lnets_anet/): (table key, run = its results label and
# directory, column).  ANet on the face boxes of `g2s prep` (MTCNN), and the system end to end:
# ANet on the face windows LNets found, LNets trained with the attribute tags alone.
BASELINES = (("anet", "anet_prep_boxes", "ANet on prep boxes"),
             ("e2e", "lnets_anet", "LNets+ANet end to end"))
ANET_RUN = ANET_DIR = BASELINES[0][1]
ANET_COLUMN = BASELINES[0][2]
E2E_RUN = E2E_DIR = BASELINES[1][1]
E2E_COLUMN = BASELINES[1][2]
LNETS_DIR = "lnets"
LOCALIZATION = "localization"      # OUT/localization/: g2s localize on the test split
STAGES = ".stages"


@dataclass(frozen=True)
class Plan:
    """Sizes of one demo run.  ``count`` None = the set-up's dataset (demo_data defaults)."""
    count: int | None
    max_iter_step1: int
    max_iter_step23: int
    test_interval: int
    snapshot: int
    jobs: int
    # The baseline's budget, to keep `make demo` <= 15 min on 2 cores (measured 2026-12-03 on
    # this machine, quiet: the demo with 120 + 300 ANet and 800 + 150 LNets iterations took
    # 8 min 43 s, its LNets stage 176 s; LNets train at ~5.5 it/s when the machine is quiet,
    # 1.3-2.3 it/s when it is shared; docs/demo.md has the latest run).
    anet_pretrain: int = 120             # ANet's identity pre-training iterations (small variant);
    anet_finetune: int = 300             # ANet's attribute fine-tuning iterations; both ANet runs
    # ANet's fine-tuning rate: 10x the small variant's 0.001, which is meant for fine-tuning a
    # pre-trained net; after a few hundred pre-training iterations from random init 0.001 barely
    # moved the attributes (measured 2026-12-03, ANet on prep boxes, 120 + 300 iterations, the
    # demo's 300 test images: mean accuracy 72.30 % at 0.001, 83.30 % at 0.01; chance 67.03 %).
    anet_finetune_lr: float = 0.01
    # LNets (small, random init, batch 32): enough to localize (issue 23; docs/baseline.md): on
    # the val split LNet_o's box placed 78 % of the faces after 800 iterations, LNet_s added to it
    # only after 500 (the cascade 77 % with 150, 82 % with 500).
    lnet_o: int = 1200                   # LNet_o's fine-tuning iterations
    lnet_s: int = 500                    # LNet_s's, on LNet_o's head-shoulder regions
    # LNets' rate drops 10x every this many iterations (SMALL_LNET_SOLVER: 300): the loss fell
    # fastest right after a drop.
    lnet_stepsize: int = 400


# Sized for <= 15 minutes on 2 CPU cores (measured: see docs/demo.md); the solver policy is the
# paper's ("inv", lr_mult 1/3/5/8), only the iteration counts shrink.
FULL = Plan(count=None, max_iter_step1=1500, max_iter_step23=300, test_interval=100, snapshot=500, jobs=2)
# The test suite's run.  Steps 1+2+3 must beat chance on most attributes (tests/test_demo.py):
# 400 / 60 G2S iterations did on 7 of 10 with dataset seeds 2018 and 7, 150 / 30 on 3 and 6.
QUICK = Plan(count=300, max_iter_step1=400, max_iter_step23=60, test_interval=50, snapshot=50, jobs=2,
             anet_pretrain=60, anet_finetune=40, lnet_o=40, lnet_s=30)


# ------------------------------------------------------------------ stage bookkeeping
def _stamp(out: Path, stage: str) -> Path:
    return out / STAGES / f"{stage}.json"


def _done(out: Path, stage: str, params: dict) -> bool:
    try:
        return json.loads(_stamp(out, stage).read_text())["params"] == json.loads(json.dumps(params))
    except (OSError, ValueError, KeyError):
        return False


def _finish(out: Path, stage: str, params: dict, seconds: float) -> None:
    write_atomic(_stamp(out, stage), json.dumps({"params": params, "seconds": round(seconds, 1)}, indent=2))


def _stage(out: Path, name: str, params: dict, fn, log) -> None:
    if _done(out, name, params):
        log(f"[demo] {name}: finished before, reused")
        return
    log(f"[demo] {name} ...")
    t0 = time.time()
    fn()
    _finish(out, name, params, time.time() - t0)
    log(f"[demo] {name}: {time.time() - t0:.0f} s")


def _g2s(argv: list[str]) -> None:
    """Run another g2s subcommand in this process; its failure stops the demo, named."""
    from g2s_caffe.cli import build_parser, commands

    if argv[0] not in {c.name for c in commands()}:
        raise G2SError(f"`g2s {argv[0]}` is not available in this checkout; the demo needs it")
    args = build_parser().parse_args(argv)
    rc = int(args._run(args) or 0)
    if rc:
        raise G2SError(f"`g2s {' '.join(argv)}` failed (exit {rc}); rerun `g2s demo` to resume")


# ------------------------------------------------------------------ stages
def stage_data(out: Path, plan: Plan, seed: int) -> Path:
    from data_prep import demo_data

    if plan.count is None and seed == demo_data.DEFAULT_SEED:
        # The set-up's copy (data_prep/assets.py); generated here if set-up has not run yet.
        return demo_data.ensure_demo_data()
    return demo_data.generate(out / "celeba", seed, plan.count or demo_data.DEFAULT_COUNT)


def stage_prep(root: Path, prepared: Path, workers: int) -> dict:
    from data_prep.celeba import read_celeba
    from data_prep.prep import attribute_record, prepare
    from g2s_caffe.core.attributes import load_attributes
    from g2s_caffe.core.crops import CROP_SCHEMES

    index = read_celeba(root)
    attrs = load_attributes(ATTRIBUTES_FILE)
    if index.attributes != attrs.names:
        raise G2SError(f"{root}: attributes {index.attributes} are not {ATTRIBUTES_FILE}'s {attrs.names}; "
                       "regenerate the demo dataset (make setup)")
    index.dataset = DATASET
    # The CelebA layout under another dataset name ("demo"), so not through `g2s prep celeba`.
    return prepare(index, prepared, schemes=list(CROP_SCHEMES), image_size=IMAGE_SIZE, workers=workers,
                   extra_params={"aligned": False, "missing": "error", "demo_attributes": str(ATTRIBUTES_FILE)},
                   attribute_list=attribute_record(attrs))


def gen_argv(out: Path, prepared: Path, plan: Plan, monitor_size: int) -> list[str]:
    return ["gen", "--attributes", str(ATTRIBUTES_FILE), "--dataset", DATASET, "--variant", "small",
            "--out", str(out / "prototxt"), "--data-root", str(prepared.resolve()),
            "--monitor-size", str(monitor_size), "--image-size", str(IMAGE_SIZE),
            "--max-iter-step1", str(plan.max_iter_step1), "--max-iter-step23", str(plan.max_iter_step23),
            "--test-interval", str(plan.test_interval), "--snapshot", str(plan.snapshot)]


def train_argv(out: Path, prepared: Path, plan: Plan, steps: str) -> list[str]:
    return ["train", "--data", str(prepared), "--runs", str(out / "runs"), "--dataset", DATASET,
            "--steps", steps, "--attributes", str(ATTRIBUTES_FILE), "--weights-a", "none",
            "--nets", str(out / "prototxt"), "--variant", "small", "--jobs", str(plan.jobs),
            "--set", f"solver.max_iter_step1={plan.max_iter_step1}",
            "--set", f"solver.max_iter_step23={plan.max_iter_step23}",
            "--set", f"solver.test_interval={plan.test_interval}",
            "--set", f"solver.snapshot={plan.snapshot}"]


def anet_argv(out: Path, prepared: Path, plan: Plan, faces: str = "prep") -> list[str]:
    return ["anet", "--data", str(prepared), "--runs", str(out / "runs"), "--dataset", DATASET,
            "--attributes", str(ATTRIBUTES_FILE), "--variant", "small", "--faces", faces,
            "--set", f"solver.max_iter_pretrain={plan.anet_pretrain}",
            "--set", f"solver.max_iter_finetune={plan.anet_finetune}",
            "--set", f"solver.base_lr_finetune={plan.anet_finetune_lr}",
            "--set", f"solver.test_interval={plan.test_interval}",
            "--set", f"solver.snapshot={plan.snapshot}"]


def lnets_argv(out: Path, prepared: Path, plan: Plan) -> list[str]:
    """Small LNets from random init (no AlexNet at this size), attribute tags only."""
    return ["lnets", "--data", str(prepared), "--runs", str(out / "runs"), "--dataset", DATASET,
            "--attributes", str(ATTRIBUTES_FILE), "--variant", "small", "--weights-alexnet", "none",
            "--set", f"solver.max_iter_lnet_o={plan.lnet_o}", "--set", f"solver.max_iter_lnet_s={plan.lnet_s}",
            "--set", f"solver.stepsize={plan.lnet_stepsize}",
            "--set", f"solver.test_interval={plan.test_interval}", "--set", f"solver.snapshot={plan.snapshot}"]


def localize_argv(out: Path, prepared: Path) -> list[str]:
    return ["localize", "--lnets", str(out / "runs" / LNETS_DIR), "--data", str(prepared), "--split", "test",
            "--out", str(out / LOCALIZATION)]


def anet_cells(results: dict, a: str, n: int, majority: int) -> dict:
    """The baseline columns of an attribute's row (None where the results hold no such run)."""
    out = {}
    for key, run, _ in BASELINES:
        res = results.get(run)
        if res is None:
            out.update({key: None, f"{key}_lo": None, f"{key}_hi": None, f"{key}_above_chance": None,
                        f"{key}_bal": None})
            continue
        if a not in res.counts:
            raise G2SError(f"run {run} has no result (with image counts) for attribute {a}")
        right = res.counts[a][1]
        iv = res.accuracy_interval(a)
        out.update({key: 100.0 * right / n, f"{key}_lo": iv.lo, f"{key}_hi": iv.hi,
                    f"{key}_above_chance": right > majority, f"{key}_bal": res.balanced.get(a)})
    return out


# ------------------------------------------------------------------ the demo's Table 1
def read_eval(path: Path) -> dict:
    """run -> results.RunResult of g2s eval's results CSV; both demo runs must be there."""
    from g2s_caffe.core.evaluation.results import read_results

    runs, _ = read_results(path)
    missing = [r for r in RUNS if r not in runs]
    if missing:
        raise G2SError(f"{path}: no results for run(s) {', '.join(missing)}")
    return runs


def demo_paired(results: dict, path: Path):
    """Step 1 alone (A) vs Steps 1+2+3 (B) on the same test images (g2s_caffe/core/evaluation/paired.py)."""
    from g2s_caffe.core.evaluation import stats
    from g2s_caffe.core.evaluation.compare import paired_runs

    return paired_runs(results, RUNS[0], RUNS[1], path, stats.DEFAULT_CORRECTION, stats.RESAMPLES, stats.SEED)


def demo_table(results: dict, names: list[str], paired) -> list[dict]:
    """Per attribute: chance (the test split's majority class), Step 1 alone, Steps 1-3, each
    with its 95 % interval, and whether their difference is real (paired McNemar, Holm)."""
    by = {x.name: x for x in paired.attributes}
    rows = []
    for a in names:
        for r in RUNS:
            if a not in results[r].accuracy:
                raise G2SError(f"run {r} has no result for attribute {a}")
            if a not in results[r].counts or a not in results[r].positives:
                raise G2SError(f"run {r}: no image counts for attribute {a} (rerun g2s eval)")
        if a not in by:
            raise G2SError(f"the paired comparison has no attribute {a}")
        one, three = results[RUNS[0]], results[RUNS[1]]
        n, pos = three.counts[a][0], three.positives[a]
        majority = max(pos, n - pos)
        # From the counts, not the rounded percentages: "above chance" = more images right
        # than always answering the majority class.
        right = {r: results[r].counts[a][1] for r in RUNS}
        iv1, iv3 = one.accuracy_interval(a), three.accuracy_interval(a)
        rows.append({"attribute": a, "n": n, "positives": pos, "chance": 100.0 * majority / n,
                     "step1": 100.0 * right["steps_1"] / n, "step1_lo": iv1.lo, "step1_hi": iv1.hi,
                     "steps123": 100.0 * right["steps_1_2_3"] / n, "steps123_lo": iv3.lo, "steps123_hi": iv3.hi,
                     "diff": 100.0 * (right["steps_1_2_3"] - right["steps_1"]) / n,
                     "p_mcnemar": by[a].p, "p_adjusted": by[a].p_adjusted, "real": by[a].real(paired.alpha),
                     "step1_above_chance": right["steps_1"] > majority,
                     "steps123_above_chance": right["steps_1_2_3"] > majority,
                     "step1_bal": one.balanced[a], "steps123_bal": three.balanced[a],
                     **anet_cells(results, a, n, majority)})
    return rows


def table_markdown(rows: list[dict], paired) -> str:
    from g2s_caffe.core.evaluation.tables import interval_text
    from g2s_caffe.core.evaluation.stats import Interval

    c = {"holm": "Holm", "bh": "BH"}[paired.correction]
    lines = ["| attribute | test images (positive) | chance (majority) | Step 1 alone [95 % CI] | "
             f"Steps 1+2+3 [95 % CI] | diff | p (McNemar, {c}-adjusted) | real at 5 % | balanced: Step 1 | "
             f"balanced: Steps 1+2+3 | {ANET_COLUMN} [95 % CI] | balanced | {E2E_COLUMN} [95 % CI] | balanced |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        flag = lambda k: interval_text(r[k], Interval(r[k + "_lo"], r[k + "_hi"])) + (
            "" if r[k + "_above_chance"] else " (not above chance)")
        lines.append(f"| {r['attribute']} | {r['n']} ({r['positives']}) | {r['chance']:.2f} | {flag('step1')} | "
                     f"{flag('steps123')} | {r['diff']:+.2f} | {r['p_adjusted']:.3g} | "
                     f"{'real' if r['real'] else 'noise'} | {r['step1_bal']:.2f} | {r['steps123_bal']:.2f} |"
                     + "".join(f" {flag(k)} | {r[k + '_bal']:.2f} |" if r.get(k) is not None else " not run | |"
                               for k, _, _ in BASELINES))
    m, b = paired.accuracy, paired.balanced
    pct = lambda v, iv, **k: interval_text(100 * v, iv.scaled(100), **k)
    chance = sum(r["chance"] for r in rows) / len(rows)
    lines.append(f"| **mean** | | {chance:.2f} | {pct(m.a, m.a_interval)} | {pct(m.b, m.b_interval)} | "
                 f"{pct(m.diff, m.interval, signed=True)} | | {'real' if m.real else 'noise'} | "
                 f"{100 * b.a:.2f} | {100 * b.b:.2f} | " + anet_mean_cells(rows))
    return "\n".join(lines) + "\n"


def anet_mean_cells(rows: list[dict]) -> str:
    """The baseline columns' mean row: the plain means over attributes (they are not one of the
    two paired runs, so no bootstrap interval here; per attribute each has its Wilson interval)."""
    cells = []
    for k, _, _ in BASELINES:
        if any(r.get(k) is None for r in rows):
            cells.append("not run | |")
        else:
            cells.append(f"{sum(r[k] for r in rows) / len(rows):.2f} | {sum(r[k + '_bal'] for r in rows) / len(rows):.2f} |")
    return " ".join(cells)


def table_csv(rows: list[dict], paired) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if k.startswith("p_") else f"{v:.4f}" if isinstance(v, float) else v)
                    for k, v in r.items()})
    m = paired.accuracy
    mean = {k: "" for k in rows[0]}
    mean.update(attribute="mean", n=paired.images, chance=f"{sum(r['chance'] for r in rows) / len(rows):.4f}",
                step1=f"{100 * m.a:.4f}", step1_lo=f"{100 * m.a_interval.lo:.4f}",
                step1_hi=f"{100 * m.a_interval.hi:.4f}",
                steps123=f"{100 * m.b:.4f}", steps123_lo=f"{100 * m.b_interval.lo:.4f}",
                steps123_hi=f"{100 * m.b_interval.hi:.4f}", diff=f"{100 * m.diff:.4f}", real=m.real,
                step1_bal=f"{100 * paired.balanced.a:.4f}", steps123_bal=f"{100 * paired.balanced.b:.4f}")
    for k, _, _ in BASELINES:
        if all(r.get(k) is not None for r in rows):
            mean.update({k: f"{sum(r[k] for r in rows) / len(rows):.4f}",
                         f"{k}_bal": f"{sum(r[k + '_bal'] for r in rows) / len(rows):.4f}"})
    w.writerow(mean)
    return buf.getvalue()


def plot_table(rows: list[dict], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from g2s_caffe.core.atomic import save_figure_atomic
    from g2s_caffe.core.evaluation.stats import Interval
    from g2s_caffe.core.evaluation.tables import error_bars

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(7, 0.8 * len(rows) + 2), 4.2))
    bar = dict(capsize=2, error_kw={"elinewidth": 0.8, "ecolor": "black"})
    keys = [("step1", "Step 1 alone"), ("steps123", "Steps 1+2+3")]
    keys += [(k, column) for k, _, column in BASELINES if all(r.get(k) is not None for r in rows)]
    width = 0.8 / len(keys)
    series = [((i - (len(keys) - 1) / 2) * width, k, label) for i, (k, label) in enumerate(keys)]
    for dx, k, label in series:
        vals = [r[k] for r in rows]
        ax.bar(x + dx, vals, width, yerr=error_bars(vals, [Interval(r[k + "_lo"], r[k + "_hi"]) for r in rows]),
               label=f"{label} (95 % Wilson interval)", **bar)
    for i, r in enumerate(rows):
        ax.hlines(r["chance"], i - 0.45, i + 0.45, colors="k", linestyles="dashed",
                  label="chance (majority class)" if i == 0 else None)
        if r["real"]:
            ax.text(i, min(101, max(r["step1_hi"], r["steps123_hi"]) + 0.5), "*", ha="center", fontsize=14)
    ax.set_xticks(x, [r["attribute"] for r in rows], rotation=35, ha="right")
    ax.set_ylabel("test accuracy (%)")
    low = min(min(r["chance"] for r in rows), min(r["step1_lo"] for r in rows),
              min((r[k + "_lo"] for r in rows for k, _, _ in BASELINES if r.get(k + "_lo") is not None),
                  default=100))
    ax.set_ylim(max(0, low - 10), 103)
    ax.set_title("Demo (synthetic attributes on real faces): Step 1 alone vs all three steps\n"
                 "* = difference real at 5 % (exact McNemar, Holm over the attributes)", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def collect_curves(out: Path) -> list[Path]:
    """Each job's curves.png (written by g2s train) under OUT/curves/<run>/."""
    got = []
    for run in (*RUNS, ANET_DIR, LNETS_DIR, E2E_DIR):
        for png in sorted((out / "runs" / run).rglob("curves.png")):
            job = png.parent.relative_to(out / "runs" / run)
            dst = out / "curves" / run / f"{str(job).replace('/', '_')}.png"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, dst)
            got.append(dst)
    return got


def significance_text(rows: list[dict], paired) -> str:
    """Which of the demo's differences are real at 5 % and which are noise, in words."""
    from g2s_caffe.core.evaluation import stats
    from g2s_caffe.core.evaluation.tables import interval_text

    real = [r["attribute"] for r in rows if r["real"]]
    noise = [r["attribute"] for r in rows if not r["real"]]
    m = paired.accuracy
    widest = max(r["step1_hi"] - r["step1_lo"] for r in rows) / 2
    return (f"- Mean accuracy, Steps 1+2+3 minus Step 1 alone: "
            f"{interval_text(100 * m.diff, m.interval.scaled(100), signed=True)} points (paired bootstrap over "
            f"the {paired.images} test images, {paired.resamples} resamples, seed {paired.seed}): "
            f"{'real' if m.real else 'noise'} at 5 %.\n"
            f"- Per attribute (exact McNemar test on the {paired.images} paired decisions, p adjusted by "
            f"{stats.CORRECTION_LABELS[paired.correction]} over the {len(rows)} attributes): real at 5 %: "
            f"{len(real)} ({', '.join(real) or 'none'}); noise: {len(noise)} ({', '.join(noise) or 'none'}).\n"
            f"- With {rows[0]['n']} test images one image is {100 / rows[0]['n']:.2f} points and an accuracy's "
            f"95 % interval reaches +-{widest:.1f} points (Wilson).  These intervals cover the choice of test "
            "images only: a rerun on another machine (other BLAS kernels, so other rounding during training) "
            "trains other nets and can move single attributes by more.\n")


def lnets_text(out: Path, plan: Plan) -> str:
    """The report's LNets section, from the files the stages wrote."""
    from g2s_caffe.core.runs import load_run
    from g2s_caffe.core.evaluation.tables import interval_text
    from g2s_caffe.core.evaluation.stats import Interval

    loc = json.loads((out / LOCALIZATION / "summary.json").read_text())
    th = load_run(out / "runs" / LNETS_DIR).stages["threshold"]
    faces = json.loads((out / "runs" / E2E_DIR / "eval" / "test" / "lnets_anet.json").read_text())["faces"]
    lines = []
    pct_iv = lambda v: interval_text(100 * v["value"], Interval(100 * v["ci95"][0], 100 * v["ci95"][1]))
    for det, sm in loc.items():
        rec = sm["recall_vs_iou_at_fppi_0.1"]
        lines.append(f"| {det} | {pct_iv(sm['tpr_at_fppi_0.1'])} | {pct_iv(sm['top1_hit_rate'])} | "
                     f"{100 * rec['0.3']:.1f} | {100 * rec['0.5']:.1f} | {100 * rec['0.7']:.1f} | "
                     f"{100 * sm['max_tpr']:.1f} |")
    pct = lambda v: "-" if v is None else f"{v:.2f}"
    return f"""## LNets: faces localized from attribute tags alone
Face threshold (`runs/{LNETS_DIR}/threshold/threshold.png`, Fig. 3(b)): {th['threshold']:.4g}, from {th['faces']} face
images (val) vs {th['backgrounds']} background images (crops away from the faces, face-free registry
photos): balanced accuracy {100 * th['balanced_accuracy']:.1f} %, the two histograms
{'separate' if th['separable'] else 'overlap'}.

Localization on the {loc[next(iter(loc))]['images']} test images against the annotation boxes (Fig. 7; `{LOCALIZATION}/loc_eval.png`,
`roc.csv`, `recall_vs_iou.csv`; response maps: `{LOCALIZATION}/pictures.png`):

| detector | TPR at FPPI 0.1, IoU >= 0.5 [95 % CI] | top-1 hit rate, IoU >= 0.5 [95 % CI] | recall at FPPI 0.1, IoU >= 0.3 | IoU >= 0.5 | IoU >= 0.7 | highest TPR |
|---|---|---|---|---|---|---|
{chr(10).join(lines)}

Intervals: TPR, bootstrap over the test images; top-1 hit rate (each image's highest-scored box
on its face, any score), Wilson.  LNets give one box per image, the face the cascade found,
scored by the image's score: the curve sweeps the face threshold.  MTCNN was trained with face
boxes and landmarks (WIDER FACE, CelebA), LNets here with 10 attribute tags from random weights
({plan.lnet_o} + {plan.lnet_s} iterations): the paper's LNets start from ImageNet (its Fig. 7(c)
shows LNets without pre-training localize much worse).  The demo's faces sit near the middle of their
images: a fixed box there finds about half of them (docs/baseline.md), the bar LNets' boxes are
to be read against.  End to end, LNets found no face (score below the threshold) in
{faces['no_face']} of the {faces['images']} test images; by the no-face rule (docs/choices.md) their
attributes are predicted from the face box anyway: mean accuracy {pct(faces['mean_accuracy_no_face'])} % there,
{pct(faces['mean_accuracy_face'])} % on the others.

"""


def anet_people(out: Path) -> str:
    try:
        from g2s_caffe.core.runs import load_run

        return str(load_run(out / "runs" / ANET_DIR).stages["data"]["identities"])
    except (G2SError, KeyError):
        return "?"


def write_report(out: Path, rows: list[dict], paired, manifest: dict, plan: Plan, seed: int, seconds: dict,
                 curves: list[Path], data_root: Path) -> Path:
    from data_prep.demo_data import MAX_ROLL_DEG
    states = {s: v.get("states", {}) for s, v in manifest["splits"].items()}
    below = [r["attribute"] for r in rows for k in ("step1", "steps123") if not r[k + "_above_chance"]]
    m = paired.accuracy
    rel = lambda p: os.path.relpath(p, out)
    text = f"""# g2s demo: the whole pipeline on a synthetic-attribute dataset

**This is not CelebA and these are not the paper's numbers.**  The images are real face
photographs (8 people, from scikit-image and the insightface 2.1 wheel) cut out and re-composed
with random rotation (+-{MAX_ROLL_DEG} deg), scale, position, background, illumination, noise and JPEG
quality; the {len(rows)} attributes were *drawn onto them* by `data_prep/demo_data.py` (seed {seed}),
each independently, so every label is known exactly.  Dataset: `{data_root}` (raw CelebA layout).

## What ran
1. `prep`: MTCNN (Caffe) on every image, eye alignment, the paper's 8 crops at {IMAGE_SIZE} px, LMDBs.
   Images per state: {json.dumps(states)}.
   Train/val images without an accepted detection are dropped (paper §3.1); test images fall back
   to the annotation files' box and landmarks.  Report: `{rel(out / 'prepared')}/<split>/report.csv`;
   crops: `{rel(out / 'prepared' / 'contact_sheet.png')}`.
2. `gen`: nets and solvers for this attribute list (`{ATTRIBUTES_FILE.name}`: a new attribute list, each with
   its Step-3 crop scheme): `{rel(out / 'prototxt')}/`, the *small* variant (VGG-16 layout at 1/16 width,
   56-px input).
3. `train`: random init instead of VGG-Face (`--weights-a none`), the paper's solver policy, iterations
   scaled down: Step 1 {plan.max_iter_step1}, Steps 2/3 {plan.max_iter_step23} each.  Two runs: Step 1 alone
   and Steps 1 -> 2 -> 3 (Step 1 is trained once: the second run reuses the first's, the same
   training by fingerprint).  Manifests: `runs/<run>/manifest.json`; curves: `curves/` ({len(curves)} plots).
4. `anet`: the LNets+ANet baseline's ANet (`g2s anet --variant small`, `runs/{ANET_DIR}/`): identity
   pre-training on the train split's people ({anet_people(out)} of them: the demo's faces come from 8 real
   people) from random init, {plan.anet_pretrain} iterations; attribute fine-tuning on random patches of the
   face region, {plan.anet_finetune} iterations; one linear SVM per attribute on every patch's feature of
   the val split.  Column "{ANET_COLUMN}": ANet reads the face boxes of `prep` (MTCNN, eye-aligned),
   enlarged by scheme c: ANet alone, on another method's boxes.
5. `lnets`: the baseline's LNets (`g2s lnets --variant small --weights-alexnet none`, `runs/{LNETS_DIR}/`):
   LNet_o fine-tuned on the whole images ({plan.lnet_o} iterations), LNet_s on LNet_o's head-shoulder
   windows ({plan.lnet_s} iterations), from random init (no ImageNet AlexNet at this size) and with the
   attribute tags as their only supervision (no box, no landmark); then the face threshold.
6. `lnets_anet`: ANet again (`g2s anet --faces lnets`, `runs/{E2E_DIR}/`, the same iterations), on the
   face window LNets found in each raw image: column "{E2E_COLUMN}", the system as its authors ran it.
7. `localize`: LNets and our MTCNN port on the test images against the annotation boxes
   (`g2s localize`, `{LOCALIZATION}/`).
8. `eval`: both runs and both ANet runs on the test split (`eval_test.csv`, `runs/<run>/eval/test/`).

## The demo's Table 1 (test accuracy, %, with 95 % intervals)
{table_markdown(rows, paired)}
Intervals: an attribute's accuracy, Wilson score interval of its {rows[0]['n']} test images; the means,
percentile bootstrap over the test images.  "real at 5 %": the difference between the two runs on
the same images is unlikely to be chance (below); "noise": the test images cannot tell them apart.
Mean: Step 1 alone {100 * m.a:.2f} %, all three steps {100 * m.b:.2f} % ({100 * m.diff:+.2f}).
{"Every attribute is above chance in both runs." if not below else
 "NOT above chance: " + ", ".join(sorted(set(below))) + "."}
Picture: `table1_demo.png` (error bars: the intervals; * = real at 5 %).

## Which differences are real
{significance_text(rows, paired)}

{lnets_text(out, plan)}
## Where the attributes are
By construction the hat sits above the face box and the necktie below it: Steps 1 and 2 read the
face box (crop a) and see at most the hat's brim and none of the tie; Step 3 reads each attribute's
own crop (`{ATTRIBUTES_FILE.name}`: d for the hat, e for the tie), which holds them.  An attribute
at chance in "Step 1 alone" may therefore be one the general crop cannot see.

## What these numbers show, and what they do not
- They show that every stage runs on real photographs with real Caffe: detection and alignment
  cope with the variation, the crops hold the attributes, nets generated for a new attribute list
  train and are evaluated per attribute, and the three-step chain is compared with Step 1 alone
  the same way as in the paper's Table 1.
- They do not measure facial-attribute recognition: the attributes are painted-on, clearly visible
  patterns, there are only 8 identities, the nets are tiny and start from random weights (no
  VGG-Face at this size: inputs scaled by {hp.SMALL_NET.input_scale:g} and base_lr {hp.SMALL_SOLVER.base_lr:g}
  instead of the paper's {hp.BASE_LR:g}, which is meant for fine-tuning), and training is a few
  hundred iterations: attributes marked "not above chance" were not learnt in that time, or not
  visible in the crop.  Whether Steps 2-3 help here says little about CelebA or LFWA; the
  differences marked "noise" above are within what {rows[0]['n']} test images can resolve.

Stage times (s, this run; reused stages keep their first time): {json.dumps(seconds)}.
"""
    return write_atomic(out / "report.md", text)


# ------------------------------------------------------------------ command
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output directory (rerun to resume)")
    p.add_argument("--quick", action="store_true",
                   help=f"a {QUICK.count}-image dataset and {QUICK.max_iter_step1}/{QUICK.max_iter_step23} iterations "
                        "(a smoke run, minutes; its accuracies mean little)")
    p.add_argument("--seed", type=int, default=None, help="dataset seed; None = the set-up's (demo_data.DEFAULT_SEED)")
    p.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                   help="processes for detection and cropping")


def outputs(args) -> list[Path]:
    return [args.out]


def run(args) -> int:
    from data_prep import demo_data

    plan = QUICK if args.quick else FULL
    seed = demo_data.DEFAULT_SEED if args.seed is None else args.seed
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, flush=True)
    t_all = time.time()

    data_root = stage_data(out, plan, seed)
    prepared = out / "prepared"
    base = {"plan": asdict(plan), "seed": seed, "data": str(data_root), "generator": demo_data.GENERATOR_VERSION}
    _stage(out, "prep", base, lambda: stage_prep(data_root, prepared, args.workers), log)

    from g2s_caffe.core.layout import open_prepared
    data = open_prepared(prepared)
    monitor = data.count("val")
    _stage(out, "gen", {**base, "argv": gen_argv(out, prepared, plan, monitor)},
           lambda: _g2s(gen_argv(out, prepared, plan, monitor)), log)
    for steps in ("1", "1,2,3"):
        argv = train_argv(out, prepared, plan, steps)
        _stage(out, f"train_{steps.replace(',', '_')}", {**base, "argv": argv}, lambda argv=argv: _g2s(argv), log)
    _stage(out, "anet", {**base, "argv": anet_argv(out, prepared, plan)}, lambda: _g2s(anet_argv(out, prepared, plan)),
           log)
    _stage(out, "lnets", {**base, "argv": lnets_argv(out, prepared, plan)}, lambda: _g2s(lnets_argv(out, prepared, plan)),
           log)
    e2e = anet_argv(out, prepared, plan, faces="lnets")
    _stage(out, "lnets_anet", {**base, "argv": e2e}, lambda: _g2s(e2e), log)
    _stage(out, "localize", {**base, "argv": localize_argv(out, prepared)}, lambda: _g2s(localize_argv(out, prepared)),
           log)
    eval_csv = out / "eval_test.csv"
    eval_argv = ["eval", "--runs", str(out / "runs"), "--split", "test", "--out", str(eval_csv)]
    # The results format is part of the stage: an eval_test.csv of an older format is redone.
    _stage(out, "eval", {**base, "argv": eval_argv, "columns": RESULT_COLUMNS}, lambda: _g2s(eval_argv), log)

    from g2s_caffe.core.attributes import load_attributes
    names = load_attributes(ATTRIBUTES_FILE).names
    results = read_eval(eval_csv)
    for run_name in (ANET_RUN, E2E_RUN):
        if run_name not in results:
            raise G2SError(f"{eval_csv}: no results for {run_name} (the ANet run {out / 'runs' / run_name}); "
                           "rerun `g2s demo`")
    paired = demo_paired(results, eval_csv)
    rows = demo_table(results, names, paired)
    write_atomic(out / "table1_demo.md", table_markdown(rows, paired))
    write_atomic(out / "table1_demo.csv", table_csv(rows, paired))
    plot_table(rows, out / "table1_demo.png")
    curves = collect_curves(out)
    seconds = {}
    for p in sorted((out / STAGES).glob("*.json")):
        seconds[p.stem] = json.loads(p.read_text()).get("seconds")
    report = write_report(out, rows, paired, data.manifest, plan, seed, seconds, curves, data_root)
    log(table_markdown(rows, paired))
    log(significance_text(rows, paired))
    log(f"[demo] done in {time.time() - t_all:.0f} s: {report}")
    return 0
