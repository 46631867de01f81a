"""Choose each attribute's crop scheme from data instead of by hand (beyond the paper).

For every candidate scheme (default: all schemes the prepared data has), `g2s train` trains
the searched attributes' Step-3 nets briefly (--iters) on that scheme from the same initial
weights (--init, e.g. Model B = a run's step1/final.caffemodel, loaded by layer name like
Model A; none = the generator's fillers), one run per scheme under WORK/runs/<scheme>_iters<N>/; each
net is scored on the validation split with `g2s eval`'s code and the best scheme is kept.
Writes an attributes YAML that `g2s gen --attributes` (and `g2s train --attributes`) reads,
WORK/scores.csv with every (attribute, scheme) score, and a PNG heat map.  Rerunning the
same command resumes: scored pairs are kept, `g2s train` skips finished jobs.
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.attributes import AttributeList, default_attributes, load_attributes
from g2s_caffe.core.atomic import save_figure_atomic, write_atomic
from g2s_caffe.core.errors import G2SError

METRICS = ("accuracy", "balanced_accuracy")
SCORE_COLUMNS = ["attribute", "scheme", "iters", "accuracy", "balanced_accuracy"]


def score_job(run_dir: Path, attr: str, scheme: str, data: layout.PreparedDataset, split: str):
    """Validation (accuracy, balanced accuracy) in % of a finished Step-3 job of a search run."""
    from g2s_caffe.core.evaluation.evaluate import EvalNet, evaluate
    from g2s_caffe.core.runs import load_run

    run = load_run(run_dir)
    job = run.job(f"step3/{attr}")
    if job.status != "done" or job.final is None:
        raise G2SError(f"{run_dir}: job step3/{attr} did not finish ({job.status}); rerun the same command")
    res = evaluate(f"{attr}/{scheme}", [EvalNet(attr, None, scheme, run.path(job.deploy),
                                                run.path(job.final.path), run.path(job.train_val))],
                   data, split, show_progress=False)
    s = res.scores[0]
    return 100 * s.accuracy, 100 * s.balanced_accuracy


def train_scheme(data_dir: Path, attrs: AttributeList, names: list[str], scheme: str, args, work: Path) -> Path:
    """`g2s train --steps 3 --only step3/<a>...` of every attribute on ``scheme``: one run."""
    import argparse

    from g2s_caffe.methods.g2s.train import cli as train_cli

    yaml_path = work / "attributes" / f"{scheme}.yaml"
    write_atomic(yaml_path, f"dataset: {attrs.dataset}\nattributes:\n" + "".join(
        f"  - {{name: {a.name}, crop: {scheme}}}\n" for a in attrs.attributes))
    runs_dir = work / "runs" / f"{scheme}_iters{args.iters}"   # another --iters is another run
    argv = ["--data", str(data_dir), "--runs", str(runs_dir), "--attributes", str(yaml_path),
            "--steps", "3", "--only", ",".join(f"step3/{a}" for a in names),
            "--weights-a", str(args.init) if args.init else "none",
            "--set", f"solver.max_iter_step23={args.iters}"]
    if args.variant:
        argv += ["--variant", args.variant]
    if args.config:
        argv += ["--config", str(args.config)]
    if args.jobs:
        argv += ["--jobs", str(args.jobs)]
    parser = argparse.ArgumentParser(prog="g2s train")
    train_cli.add_arguments(parser)
    rc = train_cli.run(parser.parse_args(argv))   # G2SErrors propagate with the trainer's own message
    if rc:
        raise G2SError(f"g2s train for scheme {scheme} failed (exit {rc}); see {runs_dir}")
    return runs_dir / "steps_3"


def _read_scores(path: Path) -> dict[tuple[str, str, int], tuple[float, float]]:
    if not path.is_file():
        return {}
    out = {}
    with path.open(newline="") as f:
        r = csv.DictReader(f)
        for row in r:
            try:
                out[(row["attribute"], row["scheme"], int(row["iters"]))] = (
                    float(row["accuracy"]), float(row["balanced_accuracy"]))
            except (KeyError, ValueError, TypeError):
                raise G2SError(f"{path}:{r.line_num}: malformed score row; delete the file to start over") from None
    return out


def _write_scores(path: Path, scores: dict) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCORE_COLUMNS)
    for (a, s, it), (acc, bal) in sorted(scores.items()):
        w.writerow([a, s, it, f"{acc:.4f}", f"{bal:.4f}"])
    write_atomic(path, buf.getvalue())


def choose(attrs: AttributeList, names: list[str], schemes: list[str], scores: dict, iters: int,
           metric: str) -> dict[str, str]:
    """Best scheme per attribute (ties: the current map's scheme, then alphabetical)."""
    k = METRICS.index(metric)
    out = {}
    for a in names:
        current = attrs.attributes[attrs.index(a)].crop
        out[a] = max(schemes, key=lambda s: (scores[(a, s, iters)][k], s == current, -ord(s)))
    return out


def render_yaml(attrs: AttributeList, chosen: dict[str, str], schemes: list[str], scores: dict, iters: int,
                metric: str, split: str, command: str) -> str:
    k = METRICS.index(metric)
    lines = [f"# Written by `{command}` (g2s_caffe/methods/g2s/crop_search.py).",
             f"# Each searched attribute's crop is the scheme with the best {split} {metric} after "
             f"{iters} fine-tuning iterations",
             f"# among {', '.join(schemes)}; attributes not searched keep the crop of {attrs.source}.",
             f"dataset: {attrs.dataset}", "attributes:"]
    for a in attrs.attributes:
        if a.name in chosen:
            per = ", ".join(f"{s} {scores[(a.name, s, iters)][k]:.2f}" for s in schemes)
            was = "" if chosen[a.name] == a.crop else f" (was {a.crop})"
            lines.append(f"  - {{name: {a.name}, crop: {chosen[a.name]}}}   # {per}{was}")
        else:
            lines.append(f"  - {{name: {a.name}, crop: {a.crop}}}   # not searched")
    return "\n".join(lines) + "\n"


def plot(names: list[str], schemes: list[str], scores: dict, iters: int, metric: str,
         chosen: dict[str, str], defaults: dict[str, str], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = METRICS.index(metric)
    m = np.array([[scores[(a, s, iters)][k] for s in schemes] for a in names])
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(schemes), 1.2 + 0.3 * len(names)))
    im = ax.imshow(m, aspect="auto", cmap="viridis")
    lo, hi = float(m.min()), float(m.max())
    for i, a in enumerate(names):
        for j, s in enumerate(schemes):
            mark = ("*" if s == chosen[a] else "") + ("d" if s == defaults[a] else "")
            light = hi > lo and (m[i, j] - lo) / (hi - lo) > 0.6   # viridis is yellow at the top
            ax.text(j, i, f"{m[i, j]:.1f}{mark}", ha="center", va="center", fontsize=7,
                    color="black" if light else "white")
    ax.set_xticks(range(len(schemes)))
    ax.set_xticklabels(schemes)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("crop scheme (* chosen, d the default map's)")
    ax.set_title(f"validation {metric} (%) after {iters} iterations")
    fig.colorbar(im, ax=ax)
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="prepared dataset directory (g2s prep)")
    p.add_argument("--attributes", type=Path, default=None,
                   help="attributes YAML to start from; None = the packaged list of the data's dataset")
    p.add_argument("--only", nargs="+", metavar="ATTR", default=None, help="search only these attributes")
    p.add_argument("--schemes", default=None, help="candidate schemes, e.g. abcdefgh; None = all prepared")
    p.add_argument("--iters", type=int, default=500, help="fine-tuning iterations per (attribute, scheme)")
    p.add_argument("--init", type=Path, default=None,
                   help="initial weights of every fine-tune (e.g. Model B: RUNS/steps_1_2_3/step1/final.caffemodel); "
                        "None = the generator's fillers")
    p.add_argument("--variant", choices=("full", "small"), default=None,
                   help="net size (g2s train --variant); None = the config's (full)")
    p.add_argument("--config", type=Path, default=None, help="a TrainConfig YAML passed to g2s train")
    p.add_argument("--jobs", type=int, default=None, help="concurrent CPU training jobs (g2s train --jobs)")
    p.add_argument("--split", default="val", choices=layout.SPLITS, help="split the schemes are scored on")
    p.add_argument("--metric", choices=METRICS, default="accuracy", help="what 'best' means")
    p.add_argument("--work", type=Path, default=Path("runs/crop_search"),
                   help="working directory (generated nets, scores.csv for resuming)")
    p.add_argument("--out", type=Path, default=None,
                   help="attributes YAML to write; None = WORK/attributes.yaml")


def outputs(args) -> list[Path]:
    return [args.work] + ([args.out.parent] if args.out else [])


def run(args) -> int:
    from tqdm import tqdm

    if args.iters < 1:
        raise G2SError(f"--iters must be >= 1, got {args.iters}")
    if args.init is not None and not args.init.is_file():
        raise G2SError(f"{args.init}: no such weights file")
    data = layout.open_prepared(args.data)
    dataset = str(data.manifest.get("dataset", "custom"))
    attrs = load_attributes(args.attributes) if args.attributes else default_attributes(dataset)
    missing = [a for a in attrs.names if a not in data.attributes]
    if missing:
        raise G2SError(f"{attrs.source}: attribute(s) {', '.join(missing)} are not in {args.data} "
                       f"(it has {', '.join(data.attributes)})")
    if attrs.names != data.attributes:
        raise G2SError(f"{attrs.source}: the attribute list must be the data's, in its order "
                       f"({', '.join(data.attributes)}); the nets read label columns by position")
    names = args.only or attrs.names
    for a in names:
        attrs.index(a)
    schemes = list(args.schemes) if args.schemes else data.schemes
    for s in schemes:
        if s not in data.schemes:
            raise G2SError(f"{args.data}: crop scheme {s!r} was not prepared (prepared: {''.join(data.schemes)})")
    data.count(args.split)
    if args.split == "test":
        print("warning: choosing crop schemes on the test split makes its test accuracy optimistic")
    work = args.work.resolve()
    score_path = work / "scores.csv"
    scores = _read_scores(score_path)
    total = len(names) * len(schemes)
    done = sum((a, s, args.iters) in scores for a in names for s in schemes)
    print(f"crop-search: {len(names)} attribute(s) x {len(schemes)} scheme(s), {args.iters} iterations each; "
          f"{done} of {total} already scored")
    with tqdm(total=total, initial=done, desc="crop-search", unit="net") as bar:
        for s in schemes:
            todo = [a for a in names if (a, s, args.iters) not in scores]
            if not todo:
                continue
            run_dir = train_scheme(args.data.resolve(), attrs, todo, s, args, work)
            for a in todo:
                bar.set_postfix_str(f"{a} on {s}")
                scores[(a, s, args.iters)] = score_job(run_dir, a, s, data, args.split)
                _write_scores(score_path, scores)   # resume point
                bar.update(1)

    chosen = choose(attrs, names, schemes, scores, args.iters, args.metric)
    defaults = {a: attrs.attributes[attrs.index(a)].crop for a in names}
    out = args.out or work / "attributes.yaml"
    command = f"g2s crop-search --data {args.data} --iters {args.iters} --metric {args.metric}"
    write_atomic(out, render_yaml(attrs, chosen, schemes, scores, args.iters, args.metric, args.split, command))
    png = plot(names, schemes, scores, args.iters, args.metric, chosen, defaults, work / "crop_search.png")
    k = METRICS.index(args.metric)
    print(f"{'attribute':<22} chosen  {args.metric:>8}  default  {args.metric:>8}")
    for a in names:
        d = defaults[a]
        d_score = f"{scores[(a, d, args.iters)][k]:8.2f}" if d in schemes else "     n/a"
        print(f"{a:<22} {chosen[a]:>6}  {scores[(a, chosen[a], args.iters)][k]:8.2f}  {d:>7}  {d_score}")
    comparable = [a for a in names if defaults[a] in schemes]
    if comparable:
        best = np.mean([scores[(a, chosen[a], args.iters)][k] for a in comparable])
        base = np.mean([scores[(a, defaults[a], args.iters)][k] for a in comparable])
        print(f"mean {args.split} {args.metric}: searched {best:.2f} vs default map {base:.2f} "
              f"over {len(comparable)} attribute(s) (chosen on this split: confirm on test with g2s eval)")
    print(f"wrote {out}, {score_path}, {png}; use it: g2s gen --attributes {out}")
    return 0
