"""The methods the generic commands serve, each registered by its own package.

A method (G2S, ANet, LNets, the LNets+ANet cascade) is a subpackage of ``g2s_caffe/methods/``
whose ``__init__.py`` calls ``register(SomeMethod())`` and imports nothing heavy (no Caffe: `g2s
--help` lists every method's commands).  The generic commands (`g2s gen`, `eval`, `compare`,
`predict`) never name a method: they look the run's ``Run.method`` up here and call the
``Method`` interface below.  The registry finds the method packages itself, on first use, by
listing that folder (plugin discovery): adding a method touches no generic file, and no module
of the core imports a method.  docs/architecture.md draws the layers.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from g2s_caffe.core.errors import G2SError

if TYPE_CHECKING:
    from g2s_caffe.core.attributes import AttributeList
    from g2s_caffe.core.evaluation.evaluate import EvalResult
    from g2s_caffe.core.layout import PreparedDataset
    from g2s_caffe.core.runs import Run

METHODS_PACKAGE = "g2s_caffe.methods"     # the folder whose subpackages are the methods


@dataclass(frozen=True)
class Command:
    """One `g2s` subcommand: ``module`` has ``add_arguments(parser)`` and ``run(args)``."""
    name: str
    module: str
    help: str
    order: int          # place in `g2s --help`, which lists the commands in a reviewer's order


@dataclass(frozen=True)
class GenRequest:
    """What `g2s gen` asks every method for: its nets and solvers for one attribute list."""
    attrs: "AttributeList"
    out: Path
    dataset: str
    variant: str                 # "full" (the paper's nets) or "small" (CPU)
    data_root: str               # prefix of the Data layers' sources
    command: str                 # the canonical command line, first line of every file
    monitor_size: int | None     # images in the TEST-phase split; None: the dataset's standard size
    solver_mode: str | None      # CPU or GPU; None: the variant's
    every_dataset: bool          # --all: the committed tree of every packaged dataset
    args: argparse.Namespace     # the method's own `g2s gen` options (add_gen_arguments)

    def write_tree(self, generate: Callable[..., list[Path]], variants: dict, committed: tuple[str, ...]) -> list[Path]:
        """A method's tree for this request: ``generate(attrs, out, dataset, shape, solver,
        data_root, command, monitor_size, monitor_split)`` with the variant's preset from
        ``variants`` ({variant: (shape, solver)}, the solver mode given applied); with --all only
        for the datasets in ``committed``."""
        from g2s_caffe.core.config import merge
        from g2s_caffe.core.datasets import monitor_size, monitor_split

        if self.every_dataset and self.dataset not in committed:
            return []
        shape, solver = variants[self.variant]
        if self.solver_mode:
            solver = merge(solver, {"solver_mode": self.solver_mode}, "command line")
        return generate(self.attrs, self.out, self.dataset, shape, solver, self.data_root, self.command,
                        monitor_size(self.dataset, self.monitor_size), monitor_split(self.dataset))


class Evaluation(Protocol):
    """A run checked to be evaluable (all before any net runs); ``evaluate`` does it."""
    not_evaluated: list[str]     # attributes of the run left out (no finished net)

    def evaluate(self, data: "PreparedDataset", split: str, batch: int, resamples: int,
                 seed: int) -> "EvalResult": ...

    def write_extra(self, result: "EvalResult", out_dir: Path) -> None:
        """What the method adds beside the generic outputs (nothing by default)."""


class Method:
    """What a method tells the generic commands; a subclass overrides what applies to it."""
    id: str = ""                        # Run.method of its runs; the results CSV's "method" column
    title: str = ""
    order: int = 0                      # `g2s gen` writes the methods' trees in this order
    published_column: str | None = None  # its column of the paper's Tables 2/3 (published.py ids)
    commands: tuple[Command, ...] = ()
    gen_help: str = ""                  # what `g2s gen` writes for it (shown in `g2s gen --help`)
    predict_help: str = ""              # how `g2s predict` answers with its runs (`g2s predict --help`)
    predict_default: bool = False       # `g2s predict` without --run picks among these runs first
    preferred_run: str | None = None    # ... and this one among several

    # ---- `g2s gen`
    def add_gen_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Options of its own on `g2s gen` (after the generic ones)."""

    def gen_options(self, args: argparse.Namespace) -> list[str]:
        """Its options the user gave, as they appear in the canonical command line."""
        return []

    def generate(self, req: GenRequest) -> list[Path]:
        """Write its nets and solvers under req.out/<dataset>/; return the files."""
        return []

    # ---- `g2s eval`
    def evaluation(self, run: "Run", only_finished: bool) -> Evaluation:
        """The run checked to be evaluable, or a G2SError saying what to finish first."""
        raise G2SError(f"{run.root}: {self.title} runs have no attribute results to evaluate")

    def skip_evaluation(self, run: "Run", split: str) -> str | None:
        """Why `g2s eval` skips this run (it is evaluated elsewhere), or None."""
        return None

    # ---- `g2s predict`
    def predict(self, args: argparse.Namespace, run: "Run") -> int:
        """Find the faces in args.images and answer with the run's nets (0 when done)."""
        serves = [m.id for m in methods() if type(m).predict is not Method.predict]
        raise G2SError(f"{run.root}: a {self.id} run; `g2s predict` serves {', '.join(serves)} runs")

    # ---- manifests written before the method ids were what they are now
    def upgrade_manifest(self, manifest: dict) -> None:
        """Rewrite, in place, an old (format g2s-run/1) manifest of this method's runs."""


_METHODS: dict[str, Method] = {}
_discovered = False


def register(method: Method) -> Method:
    if not method.id:
        raise G2SError(f"{type(method).__name__}: a method needs an id")
    if method.id in _METHODS and type(_METHODS[method.id]) is not type(method):
        raise G2SError(f"method id {method.id!r} registered twice ({type(_METHODS[method.id]).__name__}, "
                       f"{type(method).__name__})")
    _METHODS[method.id] = method
    return method


def discover() -> None:
    """Import every subpackage of METHODS_PACKAGE once; each registers its method."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(METHODS_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            importlib.import_module(f"{METHODS_PACKAGE}.{info.name}")


def methods() -> list[Method]:
    """Every registered method, in their order."""
    discover()
    return sorted(_METHODS.values(), key=lambda m: (m.order, m.id))


def get(method_id: str) -> Method:
    discover()
    if method_id not in _METHODS:
        raise G2SError(f"method {method_id!r} is not known (known: {', '.join(sorted(_METHODS))}); "
                       "was the run written by a newer g2s-caffe?")
    return _METHODS[method_id]


def of_run(run: "Run") -> Method:
    return get(run.method)


def commands() -> list[Command]:
    return [c for m in methods() for c in m.commands]
