"""Choose each attribute's crop scheme from data instead of by hand (beyond the paper).

For every attribute and every candidate scheme (default: all schemes the prepared data has),
fine-tune the attribute's Step-3 net briefly (--iters) from the same initial weights (--init,
e.g. Model B = a run's step1/final.caffemodel; none = from the generator's fillers), score it
on the validation split with `g2s eval`'s code, and keep the best scheme.  Writes an
attributes YAML that `g2s gen --attributes` reads, a CSV of every (attribute, scheme) score
and a PNG heat map.  Each finished (attribute, scheme) is recorded in WORK/scores.csv, so an
interrupted search resumes where it stopped.

Training runs in-process through pycaffe's solver (the same Caffe, the same generated nets
and solver settings as `g2s train`, with max_iter = --iters and no TEST passes).
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from . import layout
from .attributes import AttributeList, default_attributes, load_attributes
from .compare import save_figure_atomic, write_atomic
from .errors import G2SError

METRICS = ("accuracy", "balanced_accuracy")
SCORE_COLUMNS = ["attribute", "scheme", "iters", "accuracy", "balanced_accuracy"]


def _solver_for(src: Path, dst: Path, iters: int, work: Path) -> Path:
    """The generated solver with max_iter = iters, no TEST net (no test_iter: Caffe then builds
    none, so the monitor split need not exist), no snapshots."""
    from google.protobuf import text_format
    from caffe.proto import caffe_pb2

    sp = caffe_pb2.SolverParameter()
    text_format.Merge(src.read_text(), sp)
    sp.max_iter = iters
    sp.ClearField("test_iter")
    sp.ClearField("test_interval")
    sp.snapshot = 0
    sp.snapshot_after_train = False
    sp.snapshot_prefix = str(work / "snap")
    sp.display = 0
    dst.write_text(text_format.MessageToString(sp))
    return dst


def train_and_score(net_dir: Path, attr: str, scheme: str, data: layout.PreparedDataset, split: str,
                    iters: int, init: Path | None, work: Path):
    """Fine-tune one Step-3 net for ``iters`` iterations and score it on ``split``."""
    import caffe

    from .evaluate import EvalNet, evaluate

    work.mkdir(parents=True, exist_ok=True)
    solver_path = _solver_for(net_dir / "solver.prototxt", work / "solver.prototxt", iters, work)
    solver = caffe.get_solver(str(solver_path))
    if init is not None:
        solver.net.copy_from(str(init))   # by layer name, like `caffe train --weights`
    solver.step(iters)
    weights = work / "weights.caffemodel"
    solver.net.save(str(weights))
    del solver
    res = evaluate(f"{attr}/{scheme}", [EvalNet(attr, None, scheme, net_dir / "deploy.prototxt", weights,
                                                net_dir / "train_val.prototxt")],
                   data, split, show_progress=False)
    s = res.scores[0]
    weights.unlink()   # only the score is kept: a search over 8 schemes x 40 attributes is big
    return 100 * s.accuracy, 100 * s.balanced_accuracy


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
    lines = [f"# Written by `{command}` (g2s_caffe/crop_search.py).",
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
    for i, a in enumerate(names):
        for j, s in enumerate(schemes):
            mark = ("*" if s == chosen[a] else "") + ("d" if s == defaults[a] else "")
            ax.text(j, i, f"{m[i, j]:.1f}{mark}", ha="center", va="center", fontsize=7, color="white")
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
                   help="attributes YAML to start from (default: the packaged list of the data's dataset)")
    p.add_argument("--only", nargs="+", metavar="ATTR", default=None, help="search only these attributes")
    p.add_argument("--schemes", default=None, help="candidate schemes, e.g. abcdefgh (default: all prepared)")
    p.add_argument("--iters", type=int, default=500, help="fine-tuning iterations per (attribute, scheme)")
    p.add_argument("--init", type=Path, default=None,
                   help="initial weights for every fine-tune (e.g. Model B: RUNS/steps_1_2_3/step1/final.caffemodel)")
    p.add_argument("--variant", choices=("full", "small"), default="full", help="net size, as in g2s gen")
    p.add_argument("--split", default="val", choices=layout.SPLITS, help="split the schemes are scored on")
    p.add_argument("--metric", choices=METRICS, default="accuracy", help="what 'best' means")
    p.add_argument("--work", type=Path, default=Path("runs/crop_search"),
                   help="working directory (generated nets, scores.csv for resuming)")
    p.add_argument("--out", type=Path, default=None,
                   help="attributes YAML to write (default: WORK/attributes.yaml)")


def run(args) -> int:
    from tqdm import tqdm

    from . import gen
    from . import params as hp

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
    net_cfg, solver_cfg = hp.VARIANTS[args.variant]
    if net_cfg.image_size != data.image_size:
        raise G2SError(f"{args.data}: images are {data.image_size} px but the {args.variant} nets expect "
                       f"{net_cfg.image_size}; prepare the data with --image-size {net_cfg.image_size}")
    work = args.work.resolve()
    score_path = work / "scores.csv"
    scores = _read_scores(score_path)
    todo = [(a, s) for a in names for s in schemes if (a, s, args.iters) not in scores]
    bar = tqdm(total=len(names) * len(schemes), initial=len(names) * len(schemes) - len(todo),
               desc="crop-search", unit="fine-tune")
    generated: set[str] = set()
    for a, s in todo:
        if s not in generated:
            # Every attribute's Step-3 net on scheme s: one generated tree per scheme.
            per = AttributeList(attrs.dataset, tuple(type(x)(x.name, s) for x in attrs.attributes), attrs.source)
            # monitor_size 1: the search's solvers have no TEST net (see _solver_for).
            gen.generate_tree(per, work / "nets" / s, dataset, net_cfg, solver_cfg,
                              str(Path(args.data).resolve()), f"g2s crop-search (scheme {s})", 1)
            generated.add(s)
        bar.set_postfix_str(f"{a} on {s}")
        scores[(a, s, args.iters)] = train_and_score(work / "nets" / s / dataset / "step3" / a, a, s, data,
                                                     args.split, args.iters, args.init, work / "tmp")
        _write_scores(score_path, scores)   # resume point
        bar.update(1)
    bar.close()

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
