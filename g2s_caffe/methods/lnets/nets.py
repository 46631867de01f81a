"""LNet_o and LNet_s (§2.1, Fig. 2(a)(b)) as caffe.NetSpec nets: one trunk builder for both.

Trunk: BVLC AlexNet's conv1 .. relu5 with its layer names and shapes (conv1 96 11x11/4, relu1,
norm1, pool1 3/2, conv2 256 5x5 pad 2 group 2, relu2, norm2, pool2 3/2, conv3 384 3x3 pad 1,
conv4 384 group 2, conv5 256 group 2, ReLUs): five convolutional layers and two max pools, as
the paper says, so bvlc_alexnet.caffemodel initializes them by name (``init_from_alexnet``).

Nets (each for LNet_o and LNet_s; the same layers, different inputs):
  finetune_net   attribute fine-tuning: relu5 -> global average pooling "gap5" -> "fc_attr"
                 (T) -> T sigmoid cross-entropies summed over the attributes (§2.1's loss).
                 LNet_o reads "whole" (the whole image letterboxed to input_size), LNet_s
                 "head_shoulder" (LNet_o's head-shoulder window, resized to input_size).
  deploy_net     the fine-tuning head removed ("removed for evaluation"): Input of any size ->
                 "response" (N, 1, h, w), the average over channels of relu5 (the averaged
                 response map of C5), by a 1x1 convolution with fixed weights 1/C.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import caffe
from caffe import layers as L, params as P
from caffe.proto import caffe_pb2

from g2s_caffe.core.nets.params import param_spec
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.nets.data_layers import INDEX_SUFFIX, SplitLMDBs, lmdb_source, with_test_twins
from g2s_caffe.core.nets.solvers import test_iterations
from g2s_caffe.methods.lnets import params as hp

DATA, LABELS = "data", "labels"
WHOLE, HEAD_SHOULDER = "whole", "head_shoulder"     # the LMDB each net reads its images from
IMAGES = {"lnet_o": WHOLE, "lnet_s": HEAD_SHOULDER}
TRUNK_TOP = "conv5"          # relu5 works in place: its output blob is "conv5"


LNetData = SplitLMDBs      # "<root>/<split>/{whole,head_shoulder,labels}_lmdb"


def _check_which(which: str) -> None:
    if which not in hp.LNETS:
        raise G2SError(f"unknown LNet {which!r}: expected one of {', '.join(hp.LNETS)}")


# ---------------------------------------------------------------- the trunk
def trunk(n: caffe.NetSpec, bottom, shape: hp.LNetShape):
    """conv1 .. relu5 (BVLC AlexNet's names and shapes at ``shape.widths``); returns relu5's top."""
    top = bottom
    for i, (width, kernel, stride, pad, group) in enumerate(
            zip(shape.widths, hp.CONV_KERNELS, hp.CONV_STRIDES, hp.CONV_PADS, hp.CONV_GROUPS), 1):
        kw = dict(group=group) if group > 1 else {}
        n[f"conv{i}"] = L.Convolution(top, num_output=width, kernel_size=kernel, stride=stride, pad=pad,
                                      param=param_spec(hp.TRUNK_LR_MULT),
                                      weight_filler=hp.CONV_WEIGHT_FILLER, bias_filler=hp.BIAS_FILLER, **kw)
        n[f"relu{i}"] = top = L.ReLU(n[f"conv{i}"], in_place=True)
        if i <= hp.POOL_LAYERS:      # AlexNet: norm + max pool after conv1 and conv2
            n[f"norm{i}"] = top = L.LRN(top, local_size=hp.LRN_LOCAL_SIZE, alpha=hp.LRN_ALPHA, beta=hp.LRN_BETA)
            n[f"pool{i}"] = top = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=hp.POOL_KERNEL,
                                            stride=hp.POOL_STRIDE)
    return top


# ---------------------------------------------------------------- inputs
def _transform(shape: hp.LNetShape, train: bool) -> dict:
    # crop_size = the stored size: a no-op crop that makes Caffe check the stored images' size
    t = dict(crop_size=shape.input_size, mirror=train, mean_value=list(hp.IMAGENET_MEAN_BGR))
    if shape.input_scale != 1.0:
        t["scale"] = shape.input_scale
    return t


def _inputs(n: caffe.NetSpec, which: str, data: LNetData, shape: hp.LNetShape, train: bool):
    phase = dict(phase=caffe.TRAIN if train else caffe.TEST)
    split = data.train_split if train else data.monitor_split
    batch = data.batch if train else data.test_batch
    n[DATA], n[DATA + INDEX_SUFFIX] = L.Data(
        source=lmdb_source(data.root, split, IMAGES[which]), backend=P.Data.LMDB, batch_size=batch,
        transform_param=_transform(shape, train), include=phase, ntop=2)
    n[LABELS], n[LABELS + INDEX_SUFFIX] = L.Data(
        source=lmdb_source(data.root, split, LABELS), backend=P.Data.LMDB, batch_size=batch,
        include=phase, ntop=2)


# ---------------------------------------------------------------- the nets
def finetune_net(which: str, names: list[str], shape: hp.LNetShape, data: LNetData,
                 name: str | None = None) -> caffe_pb2.NetParameter:
    """Attribute fine-tuning of LNet_o ("whole") or LNet_s ("head_shoulder"), train_val."""
    _check_which(which)
    shape.check()
    if not names:
        raise G2SError("LNet fine-tuning needs at least one attribute")
    n = caffe.NetSpec()
    _inputs(n, which, data, shape, train=True)
    n.silence_index = L.Silence(n[DATA + INDEX_SUFFIX], n[LABELS + INDEX_SUFFIX], ntop=0)
    top = trunk(n, n[DATA], shape)
    n[hp.GAP_LAYER] = L.Pooling(top, pool=P.Pooling.AVE, global_pooling=True)
    n[hp.ATTR_HEAD] = L.InnerProduct(n[hp.GAP_LAYER], num_output=len(names),
                                     param=param_spec(hp.HEAD_LR_MULT),
                                     weight_filler=hp.HEAD_WEIGHT_FILLER, bias_filler=hp.BIAS_FILLER)
    n.loss = L.SigmoidCrossEntropyLoss(n[hp.ATTR_HEAD], n[LABELS], loss_weight=1,
                                       loss_param=dict(normalization=getattr(P.Loss, hp.ATTRIBUTE_LOSS_NORMALIZATION)))
    test = caffe.NetSpec()
    _inputs(test, which, data, shape, train=False)
    return with_test_twins(n.to_proto(), list(test.to_proto().layer), name or f"{which}_finetune", {})


def deploy_net(shape: hp.LNetShape, batch: int = 1, name: str = "lnet_deploy") -> caffe_pb2.NetParameter:
    """Input "data" (batch, 3, S, S) -- reshape it to any size -- -> "response" (batch, 1, h, w)."""
    shape.check()
    n = caffe.NetSpec()
    n[DATA] = L.Input(shape=dict(dim=[batch, 3, shape.input_size, shape.input_size]))
    top = trunk(n, n[DATA], shape)
    channels = shape.widths[-1]
    n[hp.RESPONSE_BLOB] = L.Convolution(top, num_output=1, kernel_size=1, bias_term=False,
                                        weight_filler=dict(type="constant", value=1.0 / channels),
                                        param=[dict(lr_mult=0, decay_mult=0)])
    return with_test_twins(n.to_proto(), [], name, {})


def set_response_weights(net) -> None:
    """Make the "response" layer the channel mean again (the filler does it on creation; a
    caffemodel that happened to carry a "response" layer would overwrite it)."""
    w = net.params[hp.RESPONSE_BLOB][0].data
    w[...] = 1.0 / w.shape[1]


# ---------------------------------------------------------------- solvers
def solver(net: str, snapshot_prefix: str, settings: hp.LNetSolverSettings,
           monitor_size: int) -> caffe_pb2.SolverParameter:
    mode = settings.solver_mode.upper()
    if mode not in ("CPU", "GPU"):
        raise G2SError(f"solver mode {settings.solver_mode!r}: expected CPU or GPU")
    s = caffe_pb2.SolverParameter()
    s.net = net
    s.type = "SGD"
    s.base_lr = settings.base_lr
    s.lr_policy = settings.lr_policy
    s.gamma = settings.gamma
    s.stepsize = settings.stepsize
    s.momentum = settings.momentum
    s.weight_decay = settings.weight_decay
    s.max_iter = settings.max_iter
    s.test_iter.append(test_iterations(monitor_size, settings.test_batch_size))
    s.test_interval = settings.test_interval
    s.display = settings.display
    s.snapshot = settings.snapshot
    s.snapshot_prefix = snapshot_prefix
    s.solver_mode = getattr(caffe_pb2.SolverParameter, mode)
    s.random_seed = settings.seed
    return s


# ---------------------------------------------------------------- ImageNet pre-training
def default_alexnet() -> Path:
    from g2s_caffe.core.paths import repo_root

    return repo_root() / "weights" / hp.ALEXNET_FILE


def resolve_alexnet(text: str | None) -> Path | None:
    """``--weights-alexnet``: "none" = random init, None = weights/bvlc_alexnet.caffemodel."""
    if text is not None and text.lower() == "none":
        return None
    return (Path(text) if text else default_alexnet()).resolve()


def init_from_alexnet(train_val: Path, alexnet: Path | None, out_caffemodel: Path,
                      seed: int = hp.FULL_LNET_SOLVER.seed) -> dict:
    """Write the initial caffemodel of an LNet fine-tuning net: conv1 .. conv5 copied by name
    from an AlexNet-shaped caffemodel (every blob's shape must match), everything else (the
    head fc_attr) at its filler, drawn with ``seed``.  ``alexnet=None``: random init, recorded
    as such.  Returns the description for the run manifest."""
    from g2s_caffe.core.runs import sha256_file
    from g2s_caffe.core.nets.weights import fits as _fits, shape_net as _shape_net, read_caffemodel

    if alexnet is not None and not Path(alexnet).is_file():
        raise G2SError(f"{alexnet}: BVLC AlexNet not found. {hp.ALEXNET_HINT}")
    net = _shape_net(Path(train_val), seed)
    entry = {"target_prototxt": str(train_val), "output": str(out_caffemodel), "seed": seed}
    if alexnet is None:
        entry.update(source=None, sha256=None, random_init=True, WARNING=hp.ALEXNET_RANDOM_WARNING,
                     copied=[], not_copied={k: "random init (filler)" for k in net.params})
    else:
        source = read_caffemodel(alexnet)
        missing = [c for c in hp.ALEXNET_CONVS if c not in source]
        if missing:
            raise G2SError(f"{alexnet}: no layer(s) {', '.join(missing)}: not an AlexNet caffemodel. {hp.ALEXNET_HINT}")
        copied, skipped = [], {}
        for name, blobs in net.params.items():
            src = source.get(name)
            if name not in hp.ALEXNET_CONVS:
                skipped[name] = "not an AlexNet trunk layer (filler init)"
                continue
            if len(src) != len(blobs) or not all(_fits(s, b.data.shape) for s, b in zip(src, blobs)):
                raise G2SError(f"{alexnet}: {name} has blobs {[s.shape for s in src]}, this LNet's "
                               f"{name} needs {[b.data.shape for b in blobs]}: AlexNet weights fit only the "
                               "full variant; use --variant full, or --weights-alexnet none for random init")
            for s, b in zip(src, blobs):
                b.data[...] = s.reshape(b.data.shape)
            copied.append(name)
        entry.update(source=str(alexnet), sha256=sha256_file(alexnet), random_init=False, copied=copied,
                     not_copied=skipped, ignored=sorted(set(source) - set(net.params)))
    out = Path(out_caffemodel)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        net.save(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return entry
