"""G2S's nets and solvers for Steps 1-3 from an attribute list (`g2s gen`, g2s_caffe/core/gen.py).

Tree: OUT/<dataset>/step1/{train_val,deploy,solver}.prototxt and
OUT/<dataset>/step{2,3}/<attribute>/{train_val,deploy,solver}.prototxt; every file starts
with the command that regenerates it.

Design.
* Multi-label input: per phase two Data layers over LMDBs with identical keys (see
  g2s_caffe/core/layout.py): "data" (JPEG face crops; random crop + mirror in TRAIN, centre crop in
  TEST, VGG-Face BGR mean) and "labels" (T floats per image).  Step 1 and 2 read crop scheme
  "a", Step 3 the attribute's scheme from the attributes file.  Both Data layers also emit the
  row index (Datum.label); those tops go to a Silence layer.  The TEST phase reads the
  monitor split: CelebA "val"; LFWA has no validation split, so its TEST phase reads "test"
  for monitoring only (no model selection on it).
* Heads: the VGG-Face trunk names (conv1_1 .. fc7) so Model A loads by name; Step 1's
  head "fc8_joint" (2T outputs) is sliced into "fc8_<attr>" pairs, each with a
  SoftmaxWithLoss "loss_<attr>" of weight 1 (their sum is Eq. 1) and a TEST "accuracy_<attr>".
  Steps 2/3: head "fc8_attr" (2 outputs), "loss" and TEST "accuracy" on the attribute's
  label column.  Deploy nets: Input "data", output "prob" (N, T, 2) for Step 1, (N, 2) else.
* lr_mult 1 (conv), 3/5/8 (fc6/fc7/fc8); biases follow core/nets/params.py: Caffe's usual
  2x the weight's lr_mult and no weight decay (the paper says nothing about biases).
* Solver (§3.1): SGD, effective batch 128 (``--iter-size k`` runs k forwards of 128/k),
  base_lr 1e-4, momentum 0.9, weight decay 5e-4, "inv" with gamma 1e-4 and power 0.5,
  120k / 40k iterations, fixed random_seed.
* Step-2 head init (g2s_caffe/methods/g2s/surgery.py): by default fc8_attr gets the attribute's two rows
  of Model B's fc8_joint ("copy", the faithful reading of feature inheritance); "random"
  leaves it at its N(0, 0.01) filler.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.attributes import AttributeList
from g2s_caffe.core.config import merge
from g2s_caffe.core.crops import GENERAL_SCHEME
from g2s_caffe.core.datasets import monitor_size as standard_monitor_size, monitor_split
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.nets.render import HEADER_MARK, SUFFIX, render
from g2s_caffe.methods.g2s import params as hp

FILES = ("train_val", "deploy", "solver")
GENERATOR = "g2s_caffe/methods/g2s/gen.py"

# Knobs that override the variant's preset: (flag, NetShape/SolverSettings field, type, help).
NET_KNOBS = (
    ("--width-mult", "width_mult", float, "conv channel multiplier"),
    ("--fc-dim", "fc_dim", int, "fc6/fc7 outputs"),
    ("--crop-size", "crop_size", int, "network input (random/centre crop)"),
    ("--image-size", "image_size", int, "stored face image size (must match the prepared data)"),
    ("--input-scale", "input_scale", float, "pixel scale after mean subtraction (1 = VGG-Face's 0-255)"),
)
SOLVER_KNOBS = (
    ("--batch-size", "batch_size", int, "effective batch"),
    ("--base-lr", "base_lr", float, "starting learning rate of the 'inv' policy"),
    ("--iter-size", "iter_size", int, "forwards per update; per-forward batch = batch/iter"),
    ("--test-batch-size", "test_batch_size", int, "TEST-phase batch"),
    ("--max-iter-step1", "max_iter_step1", int, "Step 1 iterations"),
    ("--max-iter-step23", "max_iter_step23", int, "Step 2 and 3 iterations"),
    ("--test-interval", "test_interval", int, "iterations between TEST passes"),
    ("--snapshot", "snapshot", int, "iterations between snapshots"),
    ("--seed", "seed", int, "solver random_seed"),
)


def _monitor_note(dataset: str) -> str:
    split = monitor_split(dataset)
    if split == "val":
        return ""
    return (f"# The TEST phase reads the {split!r} split: {dataset} has no validation split, so it "
            "is for monitoring only (no model selection on it).\n")


def generate_tree(attrs: AttributeList, out: Path, dataset: str, net_cfg: hp.NetShape,
                  solver_cfg: hp.SolverSettings, data_root: str, command: str,
                  monitor_size: int | None = None) -> list[Path]:
    """Write OUT/<dataset>/step1 and step{2,3}/<attr> nets and solvers; return the files.

    ``command`` (e.g. "g2s gen --all") becomes each file's first line.  Solver ``net:``
    paths are ``out`` as given (relative paths stay relative: run from the repo root).
    Generated files under OUT/<dataset> that this run did not write (attributes no longer
    in the list) are removed.
    """
    from g2s_caffe.methods.g2s import nets, solvers

    if net_cfg.crop_size > net_cfg.image_size or net_cfg.crop_size < 1:
        raise G2SError(f"--crop-size {net_cfg.crop_size} must be between 1 and --image-size "
                       f"{net_cfg.image_size}")
    if net_cfg.width_mult <= 0 or net_cfg.fc_dim < 1:
        raise G2SError("--width-mult must be > 0 and --fc-dim >= 1")
    monitor_size = standard_monitor_size(dataset, monitor_size)
    batch = solvers.forward_batch(solver_cfg)
    header = f"# {command}"
    note = _monitor_note(dataset)
    root = Path(out) / dataset
    names = attrs.names
    written: list[Path] = []

    def data(scheme: str) -> nets.DataSpec:
        return nets.DataSpec(data_root, "train", monitor_split(dataset), scheme, batch,
                             solver_cfg.test_batch_size)

    def emit(folder: Path, train_val, deploy, max_iter: int, snapshot_prefix: str) -> None:
        net_path = (folder / f"train_val{SUFFIX}").as_posix()
        solver = solvers.solver(net_path, snapshot_prefix, max_iter, monitor_size, solver_cfg)
        for stem, message in zip(FILES, (train_val, deploy, solver)):
            path = folder / f"{stem}{SUFFIX}"
            write_atomic(path, render(message, header, GENERATOR, "" if stem == "deploy" else note))
            written.append(path)

    emit(root / "step1", nets.step1_net(names, net_cfg, data(GENERAL_SCHEME), f"{dataset}_step1"),
         nets.step1_net(names, net_cfg, None, f"{dataset}_step1"), solver_cfg.max_iter_step1,
         f"runs/{dataset}/step1/snapshots/step1")
    for step in (2, 3):
        for t, attr in enumerate(attrs.attributes):
            scheme = GENERAL_SCHEME if step == 2 else attr.crop
            name = f"{dataset}_step{step}_{attr.name}"
            emit(root / f"step{step}" / attr.name,
                 nets.attribute_net(names, t, net_cfg, data(scheme), name),
                 nets.attribute_net(names, t, net_cfg, None, name), solver_cfg.max_iter_step23,
                 f"runs/{dataset}/step{step}/{attr.name}/snapshots/step{step}_{attr.name}")
    _remove_stale(root, set(written))
    return written


def _remove_stale(root: Path, keep: set[Path]) -> None:
    for path in sorted(root.glob(f"step*/**/*{SUFFIX}")):
        if path not in keep and path.read_text().startswith(HEADER_MARK):
            path.unlink()
    for folder in sorted(root.glob("step*/*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


# ---------------------------------------------------------------- `g2s gen` hooks (method.py)
def add_gen_arguments(p: argparse.ArgumentParser) -> None:
    """The size and solver knobs: each overrides the variant's preset."""
    for flag, field, tp, help_line in NET_KNOBS + SOLVER_KNOBS:
        defaults = " / ".join(f"{v} {getattr(cfg, field)}" for v, cfgs in hp.VARIANTS.items()
                              for cfg in cfgs if hasattr(cfg, field))
        p.add_argument(flag, dest=field, type=tp, metavar=field.split("_")[-1].upper(),
                       help=f"{help_line}; None = the variant's value: {defaults}")


def gen_options(args: argparse.Namespace) -> list[str]:
    return [f"{flag} {getattr(args, field)}" for flag, field, _, _ in NET_KNOBS + SOLVER_KNOBS
            if getattr(args, field) is not None]


def settings(args: argparse.Namespace, variant: str, solver_mode: str | None) -> tuple[hp.NetShape, hp.SolverSettings]:
    """The variant's net shape and solver settings with the knobs given on the command line."""
    net, solver = hp.VARIANTS[variant]
    pick = lambda knobs: {f: getattr(args, f) for _, f, _, _ in knobs if getattr(args, f, None) is not None}
    solver_over = pick(SOLVER_KNOBS) | ({"solver_mode": solver_mode} if solver_mode else {})
    return merge(net, pick(NET_KNOBS), "command line"), merge(solver, solver_over, "command line")


def generate(req) -> list[Path]:
    net_cfg, solver_cfg = settings(req.args, req.variant, req.solver_mode)
    return generate_tree(req.attrs, req.out, req.dataset, net_cfg, solver_cfg, req.data_root, req.command,
                         req.monitor_size)
