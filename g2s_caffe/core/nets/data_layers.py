"""Data layers over LMDBs, shared by every method's nets: where a split's LMDB is, the TEST
twins of TRAIN Data layers, and re-rooting a generated net's sources into a run.

Every Data layer of the project emits two tops: the image (or label vector) and the row
index (``Datum.label``, top ``<name>_index``), which the nets send to a Silence layer; two
Data layers over LMDBs with identical keys thus stay aligned row by row (layout.py).
"""
from __future__ import annotations

from dataclasses import dataclass
import caffe
from caffe.proto import caffe_pb2

INDEX_SUFFIX = "_index"   # second top of each Data layer: Datum.label = row index


@dataclass(frozen=True)
class SplitLMDBs:
    """Where a train_val net reads its LMDBs: "<root>/<split>/<what>_lmdb", each net naming
    its own ``what``s (the baseline's data stages)."""
    root: str
    train_split: str = "train"
    monitor_split: str = "val"
    batch: int = 64
    test_batch: int = 64


def lmdb_source(root: str, split: str, what: str) -> str:
    return f"{root}/{split}/{what}_lmdb"


def with_test_twins(built: caffe_pb2.NetParameter, test_layers, name: str,
                    renames: dict[tuple[str, str], str]) -> caffe_pb2.NetParameter:
    """``built`` named ``name``, each TEST-phase Data layer of ``test_layers`` right after its
    TRAIN twin of the same name, and layers renamed by ``renames``: (layer type, first top)
    -> name, for multi-top layers that NetSpec would otherwise name after their first top."""
    proto = caffe_pb2.NetParameter(name=name)
    for layer in built.layer:
        proto.layer.add().CopyFrom(layer)
        for twin in test_layers:
            if layer.type == "Data" and twin.name == layer.name:
                proto.layer.add().CopyFrom(twin)
    for layer in proto.layer:
        new = renames.get((layer.type, layer.top[0] if layer.top else ""))
        if new:
            layer.name = new
    return proto


def data_layers(net: caffe_pb2.NetParameter) -> list[caffe_pb2.LayerParameter]:
    return [layer for layer in net.layer if layer.type == "Data"]


def reroot_sources(net: caffe_pb2.NetParameter, root: str) -> caffe_pb2.NetParameter:
    """A copy of ``net`` whose Data sources read ``root/<split>/<what>_lmdb`` (the last two
    components of each generated source are kept)."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    for layer in data_layers(out):
        split, what = layer.data_param.source.rstrip("/").split("/")[-2:]
        layer.data_param.source = f"{root}/{split}/{what}"
    return out


def with_inputs(net: caffe_pb2.NetParameter, batch: int, label_count: int,
                phase: int = caffe.TRAIN) -> caffe_pb2.NetParameter:
    """``net`` with the Data layers of ``phase`` replaced by zero-filled Input layers of the
    same tops (every label 0) and the other phase's layers dropped: for `caffe time` and
    shape inspection, which need no LMDB.  ``label_count`` is T."""
    out = caffe_pb2.NetParameter()
    out.name = net.name
    for layer in net.layer:
        phases = {rule.phase for rule in layer.include if rule.HasField("phase")}
        if phases and phase not in phases:
            continue
        if layer.type != "Data":
            out.layer.add().CopyFrom(layer)
            continue
        crop = layer.transform_param.crop_size
        first = [batch, 3, crop, crop] if layer.HasField("transform_param") else [batch, label_count, 1, 1]
        new = out.layer.add(name=layer.name, type="Input", top=list(layer.top))
        for dims in ([first, [batch]])[:len(layer.top)]:   # second top: the row index
            new.input_param.shape.add(dim=dims)
    return out
