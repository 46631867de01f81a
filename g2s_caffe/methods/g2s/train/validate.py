"""Pre-flight checks on a run's copies, before any `caffe train` starts.

Everything Caffe would otherwise find out hours in (or never: a Data layer wraps around a
too-small LMDB silently) is checked here against the prepared dataset's manifest and the
LMDBs themselves: every source exists and holds the manifest's count of entries, images
are the size the nets crop from, label Datums carry one value per attribute, and each
solver's batch adds up to the configured effective batch and fits its split.
"""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.layout import LABELS, PreparedDataset
from g2s_caffe.core.runs import Run
from g2s_caffe.core.nets.protofiles import read_text_proto


def _first_datum(path: Path):
    import lmdb
    from caffe.proto import caffe_pb2

    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
    try:
        entries = env.stat()["entries"]
        with env.begin() as txn:
            cur = txn.cursor()
            raw = cur.value() if cur.first() else None
    finally:
        env.close()
    datum = None
    if raw is not None:
        datum = caffe_pb2.Datum()
        datum.ParseFromString(raw)
    return entries, datum


class _LmdbChecks:
    """Each LMDB is opened once per validation, however many nets read it."""

    def __init__(self, data: PreparedDataset, attributes: list[str]):
        self.data, self.attributes, self.seen = data, attributes, {}

    def check(self, source: str, crop: int | None, where: Path) -> int:
        """Check one Data source; return the split's image count."""
        path = Path(source)
        split, what = path.parent.name, path.name[:-len("_lmdb")] if path.name.endswith("_lmdb") else None
        if what is None:
            raise G2SError(f"{where}: Data source {source} is not <split>/<what>_lmdb of a prepared dataset")
        self.data.lmdb(split, what)      # scheme and split prepared? directory there?
        count = self.data.count(split)
        if source not in self.seen:
            if not (path / "data.mdb").is_file():
                raise G2SError(f"{path}: not an LMDB (no data.mdb); rerun g2s prep for {self.data.root}")
            self.seen[source] = _first_datum(path)
        entries, datum = self.seen[source]
        if entries != count:
            raise G2SError(f"{path}: {entries} entries, {self.data.root}/manifest.json says {count}; "
                           "the dataset is incomplete or changed: rerun g2s prep")
        if datum is None:
            raise G2SError(f"{path}: empty LMDB")
        if what == LABELS:
            if datum.channels != len(self.attributes) or len(datum.float_data) != len(self.attributes):
                raise G2SError(f"{path}: label Datums hold {len(datum.float_data)} values, the run has "
                               f"{len(self.attributes)} attributes; prepare the data with the same "
                               "attribute list (or pass the matching --attributes)")
        else:
            size = self.data.image_size
            if (datum.height, datum.width) != (size, size):
                raise G2SError(f"{path}: images are {datum.height}x{datum.width}, the manifest says "
                               f"{size}x{size}; rerun g2s prep")
            if crop and crop > min(datum.height, datum.width):
                raise G2SError(f"{where}: crop_size {crop} is larger than the {datum.height}x{datum.width} "
                               f"images of {path}; generate the nets with --image-size {size} "
                               "(or a crop_size <= the image size)")
        return count


def validate_run(run: Run, data: PreparedDataset, effective_batch: int, n_gpus: int = 0) -> None:
    """Raise G2SError on the first problem found in any job of ``run`` (all jobs, so a
    Step-3 problem is reported before Step 1 spends its hours)."""
    import caffe
    from caffe.proto import caffe_pb2

    names = run.attribute_names
    if data.attributes != names:
        raise G2SError(f"{data.root}/manifest.json: attributes {data.attributes[:5]}... (T="
                       f"{len(data.attributes)}) differ from the run's {names[:5]}... (T={len(names)}); "
                       "the label columns must be the attribute list, in order")
    if n_gpus and (run.caffe.get("build_info") or {}).get("cmake_flags", {}).get("CPU_ONLY") == "ON":
        raise G2SError(f"--gpus given, but the Caffe at {run.caffe.get('prefix')} is a CPU_ONLY build; "
                       "leave out --gpus (CPU) or build Caffe with CUDA")
    checks = _LmdbChecks(data, names)
    for job in run.jobs:
        tv, sv = run.path(job.train_val), run.path(job.solver)
        net = read_text_proto(tv, caffe_pb2.NetParameter())
        solver = read_text_proto(sv, caffe_pb2.SolverParameter())
        layers = [l for l in net.layer if l.type == "Data"]
        if not layers:
            raise G2SError(f"{tv}: no Data layers (a train_val net from `g2s gen` has two per phase)")
        for layer in layers:
            phases = {r.phase for r in layer.include if r.HasField("phase")}
            train = caffe.TEST not in phases
            crop = layer.transform_param.crop_size if layer.HasField("transform_param") else None
            count = checks.check(layer.data_param.source, crop, tv)
            batch = layer.data_param.batch_size
            if batch > count:
                raise G2SError(f"{tv}: layer {layer.name!r} batch {batch} is larger than its split "
                               f"({count} images in {layer.data_param.source}); lower the batch")
            if train:
                gpus = n_gpus if (job.step == 1 and n_gpus > 1) else 1
                total = batch * max(1, solver.iter_size) * gpus
                if total != effective_batch:
                    raise G2SError(f"{sv}: effective batch = batch {batch} x iter_size {solver.iter_size}"
                                   f"{f' x {gpus} GPUs' if gpus > 1 else ''} = {total}, configured "
                                   f"{effective_batch} (paper: 128); fix the nets (g2s gen --batch-size/"
                                   "--iter-size) or set effective_batch / solver.batch_size")
        if solver.max_iter < 1 or solver.snapshot < 1:
            raise G2SError(f"{sv}: max_iter {solver.max_iter} and snapshot {solver.snapshot} must be >= 1 "
                           "(snapshots are what a rerun resumes from)")
