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
from pathlib import Path

from g2s_caffe.methods.g2s import params as hp
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.nets.weights import fits, read_caffemodel, shape_net

MODES = ("copy", "random")
DEFAULT_MODE = "copy"


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
    net = shape_net(dst_prototxt, seed)
    copied, skipped = [], {}
    for name, blobs in net.params.items():
        if name == hp.ATTR_HEAD:
            continue
        if name not in source:
            skipped[name] = "not in source (filler init)"
            continue
        src = source[name]
        if len(src) != len(blobs) or not all(fits(s, b.data.shape) for s, b in zip(src, blobs)):
            skipped[name] = (f"shape {[s.shape for s in src]} in source, "
                             f"{[b.data.shape for b in blobs]} here (filler init)")
            continue
        for s, b in zip(src, blobs):
            b.data[...] = s.reshape(b.data.shape)
        copied.append(name)
    head = _init_head(net, source, attr_index, mode, src_caffemodel) if hp.ATTR_HEAD in net.params else None
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
    blobs = net.params[hp.ATTR_HEAD]
    if mode == "random":
        return f"{hp.ATTR_HEAD}: random (filler init)"
    own = source.get(hp.ATTR_HEAD)
    if own and len(own) == len(blobs) and all(fits(s, b.data.shape) for s, b in zip(own, blobs)):
        for s, b in zip(own, blobs):
            b.data[...] = s.reshape(b.data.shape)
        return f"{hp.ATTR_HEAD}: copied from the source's {hp.ATTR_HEAD}"
    joint = source.get(hp.STEP1_HEAD)
    if joint is None:
        return f"{hp.ATTR_HEAD}: random (source has neither {hp.ATTR_HEAD} nor {hp.STEP1_HEAD})"
    per = hp.OUTPUTS_PER_ATTRIBUTE
    weights, bias = joint[0].reshape(joint[0].shape[-2:]), joint[1].reshape(-1)
    if not 0 <= t < weights.shape[0] // per:
        raise G2SError(f"{src_path}: {hp.STEP1_HEAD} has {weights.shape[0] // per} attributes; "
                       f"attribute index {t} is out of range (does the attribute list match Step 1's?)")
    rows = slice(per * t, per * (t + 1))
    if weights[rows].shape != blobs[0].data.shape:
        raise G2SError(f"{src_path}: {hp.STEP1_HEAD} rows are {weights[rows].shape}, {hp.ATTR_HEAD} is "
                       f"{blobs[0].data.shape}: the source and target nets differ in fc7 size")
    blobs[0].data[...] = weights[rows]
    blobs[1].data[...] = bias[rows]
    return f"{hp.ATTR_HEAD}: rows [{per * t}, {per * t + 1}] of the source's {hp.STEP1_HEAD}"
