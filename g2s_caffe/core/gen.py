"""Write every method's nets and solvers for an attribute list: the committed prototxt/ tree.

  g2s gen --all                       the committed tree: prototxt/{celeba,lfwa}/...
  g2s gen --attributes my.yaml --dataset mine --out prototxt
  g2s gen --variant small --out /tmp/nets     the small variants (CPU demo/tests)

Every file starts with the command that regenerates it.  What each method writes:
"""
from __future__ import annotations

import argparse
from pathlib import Path

from g2s_caffe.core import disk, registry
from g2s_caffe.core.attributes import default_attributes, load_attributes
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.nets import VARIANT_SOLVER_MODE, VARIANTS

DEFAULT_OUT = "prototxt"
ALL_DATASETS = ("celeba", "lfwa")
DEFAULT_DATASET = "celeba"
GENERIC = ("attributes", "dataset", "data_root", "monitor_size")   # what --all leaves to the packaged lists


def description() -> str:
    """The module's text followed by each method's account of its files (`g2s gen --help`)."""
    return __doc__.rstrip() + "\n\n" + "\n\n".join(m.gen_help.strip() for m in registry.methods() if m.gen_help)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true",
                   help="regenerate the committed tree: celeba and lfwa, full VGG-16, packaged lists")
    p.add_argument("--attributes", metavar="FILE",
                   help="attributes YAML (names + Step-3 crop); None = the packaged list of --dataset")
    p.add_argument("--dataset", metavar="NAME",
                   help=f"dataset name; None = the attributes file's, else {DEFAULT_DATASET}")
    p.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help="output root")
    p.add_argument("--data-root", metavar="PREFIX",
                   help="prefix of the Data layer sources; None = data/<dataset>")
    p.add_argument("--monitor-size", metavar="N", type=int,
                   help="images in the TEST-phase split; None = CelebA val 19867, LFWA test 6880")
    p.add_argument("--variant", choices=VARIANTS, default="full",
                   help="full = the paper's VGG-16; small = the same nets, narrow and small, for CPU")
    for m in registry.methods():
        m.add_gen_arguments(p)
    modes = " / ".join(f"{v} {mode}" for v, mode in VARIANT_SOLVER_MODE.items())
    p.add_argument("--solver-mode", dest="solver_mode", metavar="MODE",
                   help=f"CPU or GPU; None = the variant's value: {modes}")


# Space for a full disk's message (core/disk.py): about twice what the committed tree holds per
# attribute (2026-12-04: 2.7 MiB for CelebA's 40 attributes, G2S and the baseline's nets).
GEN_BYTES_PER_ATTRIBUTE = 128 << 10


def outputs(args) -> list[Path]:
    return [Path(args.out)]


def command_line(args: argparse.Namespace) -> str:
    """The canonical command line that reproduces this run (non-default options only)."""
    if args.all:
        return " ".join(["g2s gen --all"] + ([f"--out {args.out}"] if args.out != DEFAULT_OUT else []))
    parts = ["g2s gen"]
    for flag, value in (("--attributes", args.attributes), ("--dataset", args.dataset),
                        ("--out", None if args.out == DEFAULT_OUT else args.out),
                        ("--data-root", args.data_root), ("--monitor-size", args.monitor_size),
                        ("--variant", None if args.variant == "full" else args.variant)):
        if value is not None:
            parts.append(f"{flag} {value}")
    for m in registry.methods():
        parts += m.gen_options(args)
    if args.solver_mode is not None:
        parts.append(f"--solver-mode {args.solver_mode}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    command = command_line(args)
    out = Path(args.out)
    if args.all:
        extra = [f for f in GENERIC if getattr(args, f)]
        extra += [opt for m in registry.methods() for opt in m.gen_options(args)]
        extra += ["--solver-mode"] if args.solver_mode is not None else []
        if extra or args.variant != "full":
            flags = ", ".join(e.split()[0] if e.startswith("--") else "--" + e.replace("_", "-") for e in extra)
            raise G2SError("--all regenerates the committed tree with the paper's settings; "
                           f"drop {flags or '--variant'} or leave out --all")
        todo = [(default_attributes(ds), ds) for ds in ALL_DATASETS]
    else:
        attrs = load_attributes(Path(args.attributes)) if args.attributes else None
        dataset = args.dataset or (attrs.dataset if attrs else DEFAULT_DATASET)
        todo = [(attrs or default_attributes(dataset), dataset)]
    n_attrs = sum(len(attrs) for attrs, _ in todo)
    disk.expect(out, n_attrs * GEN_BYTES_PER_ATTRIBUTE, f"gen ({n_attrs} attributes' nets and solvers)",
                parts=[out / dataset for _, dataset in todo])
    for attrs, dataset in todo:
        req = registry.GenRequest(attrs=attrs, out=out, dataset=dataset, variant=args.variant,
                                  data_root=args.data_root or f"data/{dataset}", command=command,
                                  monitor_size=args.monitor_size, solver_mode=args.solver_mode,
                                  every_dataset=args.all, args=args)
        files = [f for m in registry.methods() for f in m.generate(req)]
        print(f"{dataset}: {len(attrs)} attributes -> {len(files)} files under {out / dataset}")
    return 0
