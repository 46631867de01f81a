"""The paper's VGG-16 nets for Steps 1-3, built with caffe.NetSpec (after Caffe's caffenet.py).

One trunk builder (``vgg16``) serves every net and both variants; ``step1_net`` and
``attribute_net`` each write train_val (``deploy=False``) and deploy (``deploy=True``)
through the same code path.  Layer names of the trunk are those of the public VGG-Face
deploy net so Model A loads by name; the heads are new names (fc8_joint, fc8_attr).
"""
from __future__ import annotations

from dataclasses import dataclass

import caffe
from caffe import layers as L, params as P
from caffe.proto import caffe_pb2

from g2s_caffe.methods.g2s import params as hp
from g2s_caffe.core.layout import LABELS
from g2s_caffe.core.nets.data_layers import lmdb_source, with_test_twins

STEP1_HEAD, ATTR_HEAD = hp.STEP1_HEAD, hp.ATTR_HEAD
DATA = "data"
PROB = "prob"


@dataclass(frozen=True)
class DataSpec:
    """Where a train_val net reads its two LMDBs (see g2s_caffe.core.layout)."""
    root: str            # prefix of the sources, e.g. "data/celeba"
    train_split: str     # "train"
    monitor_split: str   # TEST-phase split: "val" (CelebA) or "test" (LFWA: monitoring only)
    scheme: str          # crop scheme of the image LMDB
    batch: int           # per-forward TRAIN batch
    test_batch: int


# ---------------------------------------------------------------- layer helpers
def conv_relu(bottom, nout):
    conv = L.Convolution(bottom, kernel_size=hp.CONV_KERNEL, pad=hp.CONV_PAD, num_output=nout,
                         param=hp.CONV_PARAM, weight_filler=hp.TRUNK_WEIGHT_FILLER,
                         bias_filler=hp.BIAS_FILLER)
    return conv, L.ReLU(conv, in_place=True)


def fc_relu_drop(bottom, nout, param):
    fc = L.InnerProduct(bottom, num_output=nout, param=param, weight_filler=hp.TRUNK_WEIGHT_FILLER,
                        bias_filler=hp.BIAS_FILLER)
    relu = L.ReLU(fc, in_place=True)
    return fc, relu, L.Dropout(relu, in_place=True, dropout_ratio=hp.DROPOUT)


def max_pool(bottom):
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=hp.POOL_KERNEL, stride=hp.POOL_STRIDE)


def slice_columns(bottom, points: list[int]):
    """Slice along axis 1 at ``points``; always a list of tops (one top when no points)."""
    if not points:
        return [L.Slice(bottom, ntop=1, axis=1)]
    return list(L.Slice(bottom, ntop=len(points) + 1, axis=1, slice_point=points))


def head(bottom, nout):
    return L.InnerProduct(bottom, num_output=nout, param=hp.FC8_PARAM,
                          weight_filler=hp.HEAD_WEIGHT_FILLER, bias_filler=hp.BIAS_FILLER)


def vgg16(n: caffe.NetSpec, bottom, shape: hp.NetShape):
    """conv1_1 .. pool5, fc6/relu6/drop6, fc7/relu7/drop7 on ``bottom``; returns fc7's top."""
    top = bottom
    for b, widths in enumerate(hp.VGG16_BLOCKS, 1):
        for c, width in enumerate(widths, 1):
            conv, top = conv_relu(top, max(1, round(width * shape.width_mult)))
            setattr(n, f"conv{b}_{c}", conv)
            setattr(n, f"relu{b}_{c}", top)
        top = max_pool(top)
        setattr(n, f"pool{b}", top)
    for i, param in ((6, hp.FC6_PARAM), (7, hp.FC7_PARAM)):
        fc, relu, top = fc_relu_drop(top, shape.fc_dim, param)
        setattr(n, f"fc{i}", fc)
        setattr(n, f"relu{i}", relu)
        setattr(n, f"drop{i}", top)
    return top


# ---------------------------------------------------------------- inputs
def _data_pair(n: caffe.NetSpec, data: DataSpec, shape: hp.NetShape, train: bool):
    """The images and labels Data layers of one phase (both also yield the row index)."""
    phase = dict(phase=caffe.TRAIN if train else caffe.TEST)
    split = data.train_split if train else data.monitor_split
    batch = data.batch if train else data.test_batch
    transform = dict(crop_size=shape.crop_size, mirror=train, mean_value=list(hp.VGG_FACE_MEAN_BGR))
    if shape.input_scale != 1.0:
        transform["scale"] = shape.input_scale
    n.data, n.data_index = L.Data(source=lmdb_source(data.root, split, data.scheme),
                                  backend=P.Data.LMDB, batch_size=batch, transform_param=transform,
                                  include=phase, ntop=2)
    n.labels, n.labels_index = L.Data(source=lmdb_source(data.root, split, LABELS),
                                      backend=P.Data.LMDB, batch_size=batch, include=phase, ntop=2)


def _inputs(n: caffe.NetSpec, data: DataSpec | None, shape: hp.NetShape):
    """Deploy: one Input blob.  train_val: the TRAIN pair (the TEST pair is added by _finish)."""
    if data is None:
        n.data = L.Input(shape=dict(dim=[1, 3, shape.crop_size, shape.crop_size]))
    else:
        _data_pair(n, data, shape, train=True)
    return n.data


def _finish(n: caffe.NetSpec, data: DataSpec | None, shape: hp.NetShape, name: str,
            renames: dict[tuple[str, str], str]) -> caffe_pb2.NetParameter:
    """NetParameter of ``n``: TEST-phase Data layers next to their TRAIN twins, layers renamed.

    ``renames`` maps (layer type, first top) -> name, for multi-top layers that NetSpec
    would otherwise name after their first top.
    """
    test_layers = []
    if data is not None:
        test = caffe.NetSpec()
        _data_pair(test, data, shape, train=False)
        test_layers = list(test.to_proto().layer)
    return with_test_twins(n.to_proto(), test_layers, name, renames)


def _test_only():
    return dict(phase=caffe.TEST)


# ---------------------------------------------------------------- the nets
def step1_net(names: list[str], shape: hp.NetShape, data: DataSpec | None = None,
              name: str = "step1") -> caffe_pb2.NetParameter:
    """Step 1 (Eq. 1): one fc8 with 2T outputs, a 2-way softmax loss per attribute, summed.

    ``data=None`` gives the deploy net: Input "data", output "prob" of shape (N, T, 2).
    """
    n = caffe.NetSpec()
    T = len(names)
    per = hp.OUTPUTS_PER_ATTRIBUTE
    top = vgg16(n, _inputs(n, data, shape), shape)
    n[STEP1_HEAD] = head(top, per * T)
    renames = {}
    if data is None:
        n.fc8_pairs = L.Reshape(n[STEP1_HEAD], shape=dict(dim=[0, T, per]))
        n[PROB] = L.Softmax(n.fc8_pairs, axis=2)
    else:
        n.silence_index = L.Silence(n.data_index, n.labels_index, ntop=0)
        scores = slice_columns(n[STEP1_HEAD], [per * t for t in range(1, T)])
        labels = slice_columns(n.labels, list(range(1, T)))
        for attr, score, label in zip(names, scores, labels):
            n[f"fc8_{attr}"] = score
            n[f"label_{attr}"] = label
            n[f"loss_{attr}"] = L.SoftmaxWithLoss(score, label, loss_weight=1)
            n[f"accuracy_{attr}"] = L.Accuracy(score, label, include=_test_only())
        renames = {("Slice", f"fc8_{names[0]}"): f"slice_{STEP1_HEAD}",
                   ("Slice", f"label_{names[0]}"): f"slice_{LABELS}"}
    return _finish(n, data, shape, name, renames)


def attribute_net(names: list[str], index: int, shape: hp.NetShape, data: DataSpec | None = None,
                  name: str = "attribute") -> caffe_pb2.NetParameter:
    """Steps 2 and 3 (Eq. 2): attribute ``names[index]`` alone, a 2-output fc8 and its softmax loss.

    The labels LMDB holds all T columns; a Slice picks this attribute's, the rest is silenced.
    """
    n = caffe.NetSpec()
    T = len(names)
    top = vgg16(n, _inputs(n, data, shape), shape)
    n[ATTR_HEAD] = head(top, hp.OUTPUTS_PER_ATTRIBUTE)
    renames = {}
    if data is None:
        n[PROB] = L.Softmax(n[ATTR_HEAD])
    else:
        unused = [n.data_index, n.labels_index]
        points = [p for p in (index, index + 1) if 0 < p < T]
        if points:
            pieces = slice_columns(n.labels, points)
            at = 1 if index > 0 else 0
            if at:
                n.labels_before = pieces[0]
                unused.append(n.labels_before)
            if at + 1 < len(pieces):
                n.labels_after = pieces[at + 1]
                unused.append(n.labels_after)
            n.label = pieces[at]
            first = "labels_before" if at else "label"
            renames = {("Slice", first): f"slice_{LABELS}"}
        else:   # a one-attribute list: the labels blob is already the column
            n.label = L.Flatten(n.labels, axis=1)
        n.silence = L.Silence(*unused, ntop=0)
        n.loss = L.SoftmaxWithLoss(n[ATTR_HEAD], n.label, loss_weight=1)
        n.accuracy = L.Accuracy(n[ATTR_HEAD], n.label, include=_test_only())
    return _finish(n, data, shape, name, renames)


# ---------------------------------------------------------------- reading nets back

