"""Run copies: the train_val / solver files a `caffe train` job reads, made from generated ones.

Shared by the methods' training drivers: the generated nets read their
LMDBs under a placeholder root and carry the paper's batch sizes and iteration counts; a run
copy re-roots every Data source into the run's data folder, applies the config's overrides,
and points the solver's net / snapshot_prefix into the job's directory with solver_mode
following --gpus.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.nets.protofiles import read_text_proto
from g2s_caffe.core.jobs.runner import SNAPSHOT_DIR


def phase_of(layer) -> str:
    """"test" for a layer included only in the TEST phase, else "train"."""
    import caffe

    phases = {r.phase for r in layer.include if r.HasField("phase")}
    return "test" if phases == {caffe.TEST} else "train"


def test_batch(net) -> int | None:
    """The TEST-phase Data layer's batch size (None: the net has none)."""
    for layer in net.layer:
        if layer.type == "Data" and phase_of(layer) == "test":
            return layer.data_param.batch_size
    return None


def nets_folder(nets: Path, dataset: str, sub: str, files: Iterable[str], command: str) -> Path:
    """The folder holding ``files`` (.prototxt) in a `g2s gen` tree: NETS, NETS/<sub> or
    NETS/<dataset>/<sub>."""
    files = list(files)
    for cand in (Path(nets), Path(nets) / sub, Path(nets) / dataset / sub):
        if all((cand / f"{f}.prototxt").is_file() for f in files):
            return cand
    raise G2SError(f"--nets {nets}: no {command} nets for {dataset!r} (expected {nets}/{dataset}/{sub}/"
                   f"{{{','.join(files)}}}.prototxt; write them with `g2s gen`)")


def rerooted_net(src: Path, data_root: Path, batch: int | None, test_batch_size: int | None):
    """A generated train_val re-rooted to ``data_root``, TRAIN / TEST batches overridden (None keeps)."""
    from caffe.proto import caffe_pb2

    from g2s_caffe.core.nets.data_layers import reroot_sources

    net = reroot_sources(read_text_proto(src, caffe_pb2.NetParameter()), str(data_root))
    for layer in net.layer:
        if layer.type == "Data":
            b = batch if phase_of(layer) == "train" else test_batch_size
            if b is not None:
                layer.data_param.batch_size = b
    return net


def solver_copy(src: Path, overrides: Mapping[str, object], job_dir: Path, stem: str, gpus) :
    """A generated solver with ``overrides`` (field -> value, None keeps), its net, snapshot
    prefix and mode set for a job in ``job_dir``."""
    from caffe.proto import caffe_pb2

    solver = read_text_proto(src, caffe_pb2.SolverParameter())
    for name, value in overrides.items():
        if value is not None:
            setattr(solver, name, value)
    solver.net = str((job_dir / "train_val.prototxt").resolve())
    solver.snapshot_prefix = str((job_dir / SNAPSHOT_DIR / stem).resolve())
    solver.solver_mode = caffe_pb2.SolverParameter.GPU if gpus else caffe_pb2.SolverParameter.CPU
    if solver.max_iter < 1 or solver.snapshot < 1:
        raise G2SError(f"{src}: max_iter {solver.max_iter} and snapshot {solver.snapshot} must be >= 1")
    return solver


def set_test_iter(solver, test_iter: int | None, test_batch_size: int | None, images: int,
                  batch: int | None) -> None:
    """When the test iterations or the TEST batch were overridden: ``test_iter``, or enough
    iterations of ``batch`` to cover the monitor split's ``images``."""
    if test_iter is None and test_batch_size is None:
        return
    if test_iter is None and not batch:
        raise G2SError("the net has no TEST-phase Data layer to size test_iter by")
    del solver.test_iter[:]
    solver.test_iter.append(test_iter or math.ceil(images / batch))


NETS_DIR = "nets"      # RUN/nets/<dataset>/<folder>/: a run's generated nets


def run_nets(req, generate, folder_of, placeholder_root: str, command: str) -> Path:
    """The folder a run's jobs copy their nets from: ``--nets`` (a `g2s gen` tree, found by
    ``folder_of``), else ``generate`` (a method's tree generator) writes the same
    files as `g2s gen`, sized by --variant, into the run's nets/."""
    if req.nets is not None:
        return folder_of(req.nets, req.dataset)
    written = generate(req.attrs, req.root / NETS_DIR, req.dataset, req.cfg.shape, req.cfg.solver_settings(),
                       placeholder_root, f"{command} (variant {req.cfg.variant}, generated for {req.data.root})",
                       req.data.count(req.monitor_split), req.monitor_split)
    return written[0].parent
