"""What the methods' training commands share: their common arguments, and a request resolved
from them (prepared data, dataset, attribute list, GPUs) with the checks made before any job
starts.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dataclasses import dataclass
from typing import Any

from g2s_caffe.core.errors import G2SError


@dataclass(frozen=True)
class TrainingRequest:
    """What every training command resolves before it writes anything; a method's own
    request adds its fields."""
    dataset: str
    data: Any                      # core.layout.PreparedDataset
    attrs: Any                     # core.attributes.AttributeList
    runs: Path                     # where the run directories go (--runs)
    cfg: Any                       # the method's config dataclass
    gpus: tuple[int, ...]          # () = CPU
    nets: Path | None              # a `g2s gen` tree (--nets); None = generate the nets into the run


def resolve_attributes(arg: str | None, dataset: str, prepared: list[str], recorded: dict | None = None):
    """(AttributeList, names Steps 2/3 are restricted to or None).  Without a file: the list
    the prepared manifest records (``recorded``: g2s prep --attributes, any subset or order),
    else the packaged list of ``dataset``."""
    from g2s_caffe.core.attributes import DEFAULT_DATASETS, default_attributes, load_attributes, parse_attributes

    restrict = None
    if arg and (arg.endswith((".yaml", ".yml")) or Path(arg).is_file()):
        attrs = load_attributes(Path(arg))
    else:
        if arg:
            restrict = [n for n in arg.split(",") if n]
        if recorded:
            attrs = parse_attributes({k: recorded[k] for k in ("dataset", "attributes") if k in recorded},
                                     f"the prepared manifest's attribute_list (from {recorded.get('source')})")
        elif dataset not in DEFAULT_DATASETS:
            raise G2SError(f"dataset {dataset!r} has no packaged attribute list; pass --attributes FILE "
                           "(YAML: attributes: [{name, crop}, ...] in the label order of the prepared data)")
        else:
            attrs = default_attributes(dataset)
    if attrs.names != prepared:
        raise G2SError(f"{attrs.source}: attributes ({len(attrs)}: {', '.join(attrs.names[:4])}...) are not "
                       f"the prepared data's label columns ({len(prepared)}: {', '.join(prepared[:4])}...); "
                       "pass the attributes file the data was prepared with")
    if restrict:
        for n in restrict:
            attrs.index(n)   # G2SError for an unknown name
    return attrs, restrict


def parse_gpus(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        gpus = tuple(int(g) for g in text.split(",") if g.strip())
    except ValueError:
        raise G2SError(f"--gpus {text!r}: expected GPU ids like 0,1") from None
    if len(set(gpus)) != len(gpus) or any(g < 0 for g in gpus):
        raise G2SError(f"--gpus {text!r}: ids must be distinct and >= 0")
    return gpus


def add_common_arguments(p: argparse.ArgumentParser, run_dir: str) -> None:
    """The data arguments of a method's training command (before its own)."""
    p.add_argument("--data", metavar="DIR", required=True, help="prepared dataset (g2s prep --out DIR)")
    p.add_argument("--runs", metavar="DIR", required=True, help=f"where the run directory {run_dir}/ goes")
    p.add_argument("--dataset", help="dataset name; None = the prepared manifest's")
    p.add_argument("--attributes", metavar="FILE", help="attributes YAML; None = the prepared manifest's list, "
                   "else the packaged list of --dataset")
    p.add_argument("--variant", choices=("full", "small"), help="None = config variant (full)")


def add_run_arguments(p: argparse.ArgumentParser, nets: str, gpu_use: str, config_class: str, config_file: str,
                      example: str) -> None:
    """The run-control arguments of a method's training command (after its own)."""
    p.add_argument("--nets", metavar="DIR", type=Path,
                   help=f"a `g2s gen` tree with {nets}/ nets; None = generate them into the run from --variant")
    p.add_argument("--gpus", metavar="ID", help=f"GPU id for {gpu_use} (one); None = CPU")
    p.add_argument("--keep-snapshots", type=int, metavar="K", help="None = config keep_snapshots (2)")
    p.add_argument("--config", metavar="YAML", help=f"a YAML of {config_class} (see {config_file})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"config override, e.g. {example}; repeatable")


def load_config(default, args):
    """A method's run config: ``default`` merged with --config, --set and the command's own
    options (--keep-snapshots, --variant), checked."""
    from g2s_caffe.core.config import from_command_line

    return from_command_line(default, args.config, args.set,
                             {"keep_snapshots": args.keep_snapshots, "variant": args.variant}).check()


def common_request(args, command: str):
    """(prepared data, dataset, attributes, gpus) of a one-GPU training command (`g2s COMMAND`)."""
    from g2s_caffe.core.layout import open_prepared

    data = open_prepared(Path(args.data))
    dataset = args.dataset or data.manifest.get("dataset")
    attrs, _ = resolve_attributes(args.attributes, dataset, data.attributes, data.manifest.get("attribute_list"))
    gpus = parse_gpus(args.gpus)
    if len(gpus) > 1:
        raise G2SError(f"--gpus {args.gpus}: g2s {command} trains on one GPU (its two jobs run one after the other)")
    return data, dataset, attrs, gpus


def check_jobs(run, req) -> None:
    """Pre-flight: batches fit their splits, the solvers snapshot (what a rerun resumes from)."""
    from caffe.proto import caffe_pb2

    from g2s_caffe.core.nets.protofiles import read_text_proto
    from g2s_caffe.core.jobs.runcopy import phase_of

    if req.gpus and (run.caffe.get("build_info") or {}).get("cmake_flags", {}).get("CPU_ONLY") == "ON":
        raise G2SError(f"--gpus given, but the Caffe at {run.caffe.get('prefix')} is a CPU_ONLY build; leave out "
                       "--gpus (CPU) or build Caffe with CUDA")
    for job in run.jobs:
        net = read_text_proto(run.path(job.train_val), caffe_pb2.NetParameter())
        for layer in net.layer:
            if layer.type != "Data":
                continue
            split = req.train_split if phase_of(layer) == "train" else req.monitor_split
            count = req.data.count(split)
            if layer.data_param.batch_size > count:
                raise G2SError(f"{run.path(job.train_val)}: layer {layer.name!r} batch {layer.data_param.batch_size} "
                               f"is larger than its split ({count} images in {split}); lower the batch "
                               "(--set solver.batch_size=N / solver.test_batch_size=N)")
