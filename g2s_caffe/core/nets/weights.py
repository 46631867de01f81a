"""Caffemodels read without instantiating their net, and a net built to receive weights.

What every method's weight initialization needs (G2S's head surgery, LNets' AlexNet init,
ANet's checks): the blobs of a caffemodel by layer name (current or V1 format), whether a
blob fits a destination shape the way Caffe accepts it, and the shape-only ``caffe.Net`` of a
train_val prototxt (no LMDB needed) that the weights are written into.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from g2s_caffe.core.errors import G2SError

INPUT_BLOB = "data"           # the image input every project net has


def read_caffemodel(path: Path) -> dict[str, list[np.ndarray]]:
    """{layer name: [blob arrays]} of a caffemodel (current or V1 "layers" format)."""
    from caffe.proto import caffe_pb2

    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: no such caffemodel (train the previous step first)")
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(path.read_bytes())
    except Exception as e:  # protobuf's DecodeError and friends
        raise G2SError(f"{path}: not a Caffe caffemodel ({e})") from e
    out = {}
    for layer in list(net.layer) or list(net.layers):
        if layer.blobs:
            out[layer.name] = [_blob_array(b) for b in layer.blobs]
    return out


def _blob_array(blob) -> np.ndarray:
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:   # legacy 4-D blob
        shape = (blob.num, blob.channels, blob.height, blob.width)
    return _packed_data(blob).reshape(shape)


BLOB_DATA_FIELD = 5          # BlobProto.data: repeated float, packed
WIRE_VARINT, WIRE_64, WIRE_BYTES, WIRE_32 = 0, 1, 2, 5


def _packed_data(blob) -> np.ndarray:
    """BlobProto.data as float32, read straight from the wire bytes: converting protobuf's
    repeated field element by element takes ~20 s for VGG's fc6, this takes well under 1 s."""
    raw = blob.SerializeToString()
    pos = 0
    while pos < len(raw):
        key, pos = _varint(raw, pos)
        field, wire = key >> 3, key & 7
        if wire == WIRE_BYTES:
            length, pos = _varint(raw, pos)
            if field == BLOB_DATA_FIELD:
                return np.frombuffer(raw, dtype="<f4", count=length // 4, offset=pos)
            pos += length
        elif wire == WIRE_VARINT:
            _, pos = _varint(raw, pos)
        else:
            pos += 8 if wire == WIRE_64 else 4
    if blob.double_data:
        return np.asarray(blob.double_data, dtype=np.float32)
    return np.asarray(blob.data, dtype=np.float32)   # empty, or unpacked floats (none seen)


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fits(src: np.ndarray, dst_shape: tuple[int, ...]) -> bool:
    """Same shape, or a legacy (1, 1, out, in)-style shape of the same dims (as Caffe accepts)."""
    if src.shape == dst_shape:
        return True
    legacy = (1,) * (4 - len(dst_shape)) + dst_shape if len(dst_shape) <= 4 else None
    return src.ndim == 4 and src.shape == legacy


def shape_net(prototxt: Path, seed: int):
    """caffe.Net of the layers of ``prototxt`` that hang off the image input (no LMDB needed)."""
    import caffe

    pruned = shape_only(prototxt)
    if INPUT_BLOB not in {top for layer in pruned.layer for top in layer.top}:
        raise G2SError(f"{prototxt}: no {INPUT_BLOB!r} input (a Data or Input layer with top {INPUT_BLOB!r})")
    caffe.set_random_seed(seed)
    return net_of(pruned)


def shape_only(prototxt: Path, phase: str = "TEST"):
    """The NetParameter of the layers of ``prototxt``'s ``phase`` that hang off its image
    inputs (``data``, an Input, or a Data layer with a transform: turned into an Input); the
    labels and the layers that need them (losses, accuracies) are left out."""
    import caffe
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from g2s_caffe.core.nets.data_layers import with_inputs

    prototxt = Path(prototxt)
    if not prototxt.is_file():
        raise G2SError(f"{prototxt}: no such net prototxt (run `g2s gen`)")
    net = caffe_pb2.NetParameter()
    try:
        text_format.Merge(prototxt.read_text(), net)
    except text_format.ParseError as e:
        raise G2SError(f"{prototxt}: not a net prototxt ({e})") from e
    images = {INPUT_BLOB} | {layer.top[0] for layer in net.layer
                             if layer.type == "Data" and layer.HasField("transform_param")}
    full = with_inputs(net, batch=1, label_count=1, phase=getattr(caffe, phase))
    pruned = type(full)(name=full.name)
    available: set[str] = set()
    for layer in full.layer:
        if layer.type == "Input" and not images & set(layer.top):
            continue   # the labels: losses and accuracies are not needed for shapes
        if all(b in available for b in layer.bottom):
            kept = pruned.layer.add()
            kept.CopyFrom(layer)
            kept.ClearField("include")     # of this phase already: built as it is (net_of)
            available.update(layer.top)
    if not available:
        raise G2SError(f"{prototxt}: no image input in phase {phase} (a Data layer with a transform, or an Input "
                       f"with top {INPUT_BLOB!r})")
    return pruned


def net_of(message):
    """caffe.Net of a NetParameter (built in the TEST phase: no layer of it may be TRAIN-only)."""
    import caffe
    from google.protobuf import text_format

    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text_format.MessageToString(message))
    try:
        return caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)
