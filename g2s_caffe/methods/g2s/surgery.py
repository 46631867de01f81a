"""Initialize a net of the next step from a trained caffemodel ("feature inheritance", Fig. 1).

Every layer of the destination whose name and blob shapes match a layer of the source
caffemodel is copied.  The 2-output head fc8_attr of Steps 2/3 is set by ``mode``:

* "copy" (default): from the source's fc8_attr if it has one of the same shape (Step 3
  from Model C_i), else rows [2t, 2t+1] (weights and bias) of the source's fc8_joint
  (Step 2 from Model B): the attribute's own output pair of Step 1.
* "random": left at its filler init (N(0, 0.01) weights, zero bias).

A source with neither head (Model A, the VGG-Face caffemodel) gives a random head.  Layers
are read from the caffemodel itself (names and blob shapes), so any source prototxt (also
VGG-Face's V1 deploy file) is only recorded, never instantiated.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from g2s_caffe.methods.g2s import params as hp
from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.g2s.nets import ATTR_HEAD, DATA, STEP1_HEAD

MODES = ("copy", "random")
DEFAULT_MODE = "copy"


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


def _fits(src: np.ndarray, dst_shape: tuple[int, ...]) -> bool:
    """Same shape, or a legacy (1, 1, out, in)-style shape of the same dims (as Caffe accepts)."""
    if src.shape == dst_shape:
        return True
    legacy = (1,) * (4 - len(dst_shape)) + dst_shape if len(dst_shape) <= 4 else None
    return src.ndim == 4 and src.shape == legacy


def _shape_net(prototxt: Path, seed: int):
    """caffe.Net of the layers of ``prototxt`` that hang off the image input (no LMDB needed)."""
    import caffe
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from g2s_caffe.methods.g2s.nets import with_inputs

    prototxt = Path(prototxt)
    if not prototxt.is_file():
        raise G2SError(f"{prototxt}: no such net prototxt (run `g2s gen`)")
    net = caffe_pb2.NetParameter()
    try:
        text_format.Merge(prototxt.read_text(), net)
    except text_format.ParseError as e:
        raise G2SError(f"{prototxt}: not a net prototxt ({e})") from e
    full = with_inputs(net, batch=1, label_count=1, phase=caffe.TEST)
    pruned = type(full)(name=full.name)
    available: set[str] = set()
    for layer in full.layer:
        if layer.type == "Input" and DATA not in layer.top:
            continue   # the labels: losses and accuracies are not needed for shapes
        if all(b in available for b in layer.bottom):
            pruned.layer.add().CopyFrom(layer)
            available.update(layer.top)
    if DATA not in available:
        raise G2SError(f"{prototxt}: no {DATA!r} input (a Data or Input layer with top {DATA!r})")
    caffe.set_random_seed(seed)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text_format.MessageToString(pruned))
    try:
        return caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)


def derive_attribute_init(src_caffemodel: Path, src_prototxt: Path | None, dst_prototxt: Path,
                          attr_index: int, mode: str = DEFAULT_MODE, out_caffemodel: Path | None = None,
                          seed: int = hp.RANDOM_SEED) -> dict:
    """Write the initial caffemodel of ``dst_prototxt`` (see the module docstring); return a
    description for the run manifest.  Layers not copied keep their filler init (drawn
    with ``seed``)."""
    if mode not in MODES:
        raise G2SError(f"head init mode {mode!r}: expected one of {', '.join(MODES)}")
    if out_caffemodel is None:
        raise G2SError("derive_attribute_init: out_caffemodel is required")
    source = read_caffemodel(src_caffemodel)
    net = _shape_net(dst_prototxt, seed)
    copied, skipped = [], {}
    for name, blobs in net.params.items():
        if name == ATTR_HEAD:
            continue
        if name not in source:
            skipped[name] = "not in source (filler init)"
            continue
        src = source[name]
        if len(src) != len(blobs) or not all(_fits(s, b.data.shape) for s, b in zip(src, blobs)):
            skipped[name] = (f"shape {[s.shape for s in src]} in source, "
                             f"{[b.data.shape for b in blobs]} here (filler init)")
            continue
        for s, b in zip(src, blobs):
            b.data[...] = s.reshape(b.data.shape)
        copied.append(name)
    head = _init_head(net, source, attr_index, mode, src_caffemodel) if ATTR_HEAD in net.params else None
    out = Path(out_caffemodel)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    net.save(str(tmp))
    os.replace(tmp, out)
    return {"source": str(src_caffemodel), "source_prototxt": str(src_prototxt) if src_prototxt else None,
            "target_prototxt": str(dst_prototxt), "output": str(out), "mode": mode,
            "attribute_index": attr_index, "seed": seed, "copied": copied, "not_copied": skipped,
            "head": head}


def _init_head(net, source: dict, t: int, mode: str, src_path: Path) -> str:
    blobs = net.params[ATTR_HEAD]
    if mode == "random":
        return f"{ATTR_HEAD}: random (filler init)"
    own = source.get(ATTR_HEAD)
    if own and len(own) == len(blobs) and all(_fits(s, b.data.shape) for s, b in zip(own, blobs)):
        for s, b in zip(own, blobs):
            b.data[...] = s.reshape(b.data.shape)
        return f"{ATTR_HEAD}: copied from the source's {ATTR_HEAD}"
    joint = source.get(STEP1_HEAD)
    if joint is None:
        return f"{ATTR_HEAD}: random (source has neither {ATTR_HEAD} nor {STEP1_HEAD})"
    per = hp.OUTPUTS_PER_ATTRIBUTE
    weights, bias = joint[0].reshape(joint[0].shape[-2:]), joint[1].reshape(-1)
    if not 0 <= t < weights.shape[0] // per:
        raise G2SError(f"{src_path}: {STEP1_HEAD} has {weights.shape[0] // per} attributes; "
                       f"attribute index {t} is out of range (does the attribute list match Step 1's?)")
    rows = slice(per * t, per * (t + 1))
    if weights[rows].shape != blobs[0].data.shape:
        raise G2SError(f"{src_path}: {STEP1_HEAD} rows are {weights[rows].shape}, {ATTR_HEAD} is "
                       f"{blobs[0].data.shape}: the source and target nets differ in fc7 size")
    blobs[0].data[...] = weights[rows]
    blobs[1].data[...] = bias[rows]
    return f"{ATTR_HEAD}: rows [{per * t}, {per * t + 1}] of the source's {STEP1_HEAD}"
