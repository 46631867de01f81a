"""The `g2s` command: one subcommand per user task.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int | None`` (and may provide ``description()`` for its --help, and
``outputs(args) -> list[Path]``: the folders it writes, checked before it starts; a full disk,
a folder it may not write and Ctrl-C end in one line under any command: core/faults.py).
Modules import Caffe lazily (inside ``run``), so ``g2s --help`` is fast.  The generic commands are listed here;
each method adds its own (core/registry.py), and `g2s --help` shows them all in a reviewer's
order.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from g2s_caffe import __version__
from g2s_caffe.core import disk, faults, registry
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.registry import Command

# The commands that serve every method (or none): data preparation, evaluation, comparison,
# prediction, nets, face detection, the demo.
COMMANDS: tuple[Command, ...] = (
    Command("prep", "data_prep.prep", "detect, align and crop CelebA/LFWA into per-scheme LMDBs (paper §2.2, §3.1)", 10),
    Command("eval", "g2s_caffe.core.evaluation.evaluate",
            "evaluate runs' final nets on a split: probabilities, accuracy, balanced accuracy", 20),
    Command("compare", "g2s_caffe.core.evaluation.compare",
            "put accuracies next to the paper's Tables 1-3 (Markdown, CSV, PNG)", 30),
    Command("predict", "g2s_caffe.core.predict",
            "detect faces in photographs and predict their attributes with a run's nets", 40),
    Command("gen", "g2s_caffe.core.gen", "write the nets and solvers of Steps 1-3 for an attribute list (prototxt/)", 60),
    Command("detect", "data_prep.detect_cli", "find faces, 5 landmarks and scores in images (MTCNN on Caffe)", 110),
    Command("demo", "g2s_caffe.demo", "the whole pipeline on the bundled synthetic-attribute dataset (make demo)", 120),
)


def commands() -> list[Command]:
    """Every `g2s` subcommand, the methods' included, in `g2s --help` order."""
    return sorted(COMMANDS + tuple(registry.commands()), key=lambda c: c.order)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults in --help and keep the description's line breaks."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="g2s", formatter_class=_Formatter,
        description="General-to-specific facial attribute detection (Sun & Yu, BMVC 2018) on BVLC Caffe.")
    parser.add_argument("--version", action="version", version=f"g2s-caffe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for c in commands():
        mod = importlib.import_module(c.module)
        text = mod.description() if hasattr(mod, "description") else (mod.__doc__ or c.help)
        p = sub.add_parser(c.name, help=c.help, description=text.strip(), formatter_class=_Formatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _outputs=getattr(mod, "outputs", None))
    return parser


def main(argv: list[str] | None = None) -> int:
    # Caffe's glog is chatty on stderr; keep warnings and errors unless the user asks.
    os.environ.setdefault("GLOG_minloglevel", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    disk.forget()
    roots: list = []
    try:
        roots = args._outputs(args) if args._outputs else []
        faults.check_writable(roots)        # before any work
        return int(args._run(args) or 0)
    except G2SError as e:
        print(f"g2s {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"g2s {args.command}: {faults.interrupted_line(roots)}", file=sys.stderr)
        return 130
    except Exception as e:
        line = faults.explain(e, roots)
        if line is None:
            raise
        print(f"g2s {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
