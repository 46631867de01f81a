"""The `g2s` command: one subcommand per user task.

Each subcommand lives in its own module, which provides
``add_arguments(parser)`` and ``run(args) -> int | None``.  Modules import Caffe lazily
(inside ``run``), so ``g2s --help`` is fast.  Only commands that work are listed here.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from g2s_caffe import __version__
from g2s_caffe.core.errors import G2SError

# (name, module, one line for `g2s --help`)
COMMANDS: list[tuple[str, str, str]] = [
    ("prep", "data_prep.prep", "detect, align and crop CelebA/LFWA into per-scheme LMDBs (paper §2.2, §3.1)"),
    ("eval", "g2s_caffe.core.evaluation.evaluate", "evaluate runs' final nets on a split: probabilities, accuracy, balanced accuracy"),
    ("compare", "g2s_caffe.core.evaluation.compare", "put accuracies next to the paper's Tables 1-3 (Markdown, CSV, PNG)"),
    ("predict", "g2s_caffe.methods.g2s.predict", "detect faces in photographs and predict their attributes with a run's nets"),
    ("crop-search", "g2s_caffe.methods.g2s.crop_search", "choose each attribute's crop scheme by brief fine-tunes on the validation split"),
    ("gen", "g2s_caffe.methods.g2s.gen", "write the nets and solvers of Steps 1-3 for an attribute list (prototxt/)"),
    ("train", "g2s_caffe.methods.g2s.train.cli", "train Steps 1-3 with caffe train: resumable runs, ablations, GPUs, Slurm/k8s"),
    ("lnets", "g2s_caffe.methods.lnets.cli", "train the LNets+ANet baseline's LNets: face localization from attribute tags"),
    ("localize", "g2s_caffe.methods.lnets.localize_cli", "localize faces with trained LNets: windows, pictures, Fig. 7 vs MTCNN"),
    ("anet", "g2s_caffe.methods.anet.cli", "train the LNets+ANet baseline's ANet (on prep boxes or LNets' faces), SVMs"),
    ("detect", "data_prep.detect_cli", "find faces, 5 landmarks and scores in images (MTCNN on Caffe)"),
    ("demo", "g2s_caffe.demo", "the whole pipeline on the bundled synthetic-attribute dataset (make demo)"),
]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults in --help and keep the description's line breaks."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="g2s", formatter_class=_Formatter,
        description="General-to-specific facial attribute detection (Sun & Yu, BMVC 2018) on BVLC Caffe.")
    parser.add_argument("--version", action="version", version=f"g2s-caffe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, modname, help_line in COMMANDS:
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=help_line, description=(mod.__doc__ or help_line).strip(),
                           formatter_class=_Formatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Caffe's glog is chatty on stderr; keep warnings and errors unless the user asks.
    os.environ.setdefault("GLOG_minloglevel", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except G2SError as e:
        print(f"g2s {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"g2s {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
