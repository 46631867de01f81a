"""ANet (§2.2, Fig. 2(c)(d), Fig. 5) as caffe.NetSpec nets: one trunk builder for every net.

Trunk: C1, C2 (globally shared, valid, stride 1, each + ReLU + 2x2/2 max pool) -> C3 (locally
shared, ``shape.grid`` x ``shape.grid`` cells) -> pool3 -> C4 (locally shared, same grid) -> FC
(+ ReLU): four convolutional layers, three max pools, one fully connected layer, as the paper
says.  Layer names are the same in every net (conv1, conv2, conv3_<i>_<j>, conv4_<i>_<j>, fc,
fc_attr), so each stage's weights load into the next by name.

Nets:
  pretrain_net     identity pre-training, a siamese pair (the image and another image of the
                   same person): softmax over the identities + the similarity loss
                   lambda * ||FC - FC_p||^2 (branches share every weight by param name)
  finetune_net     attribute fine-tuning on random patches: T sigmoid cross-entropies
  patch_deploy     one patch -> FC (and the fine-tuning head's P(attribute))
  onepass_deploy   the whole region -> FC of every test patch in ONE forward pass

One pass (Fig. 5).  C1/C2 are valid convolutions and their pools have no partial windows, so a
patch's pool2 map is an exact crop of the region's pool2 map when its offset is a multiple of
the stride (4): C1/C2 run once over the region.  A locally shared layer cannot simply be run
over the region: a cell's filters belong to a position *within a patch*.  The paper's
interweaved operation gathers, for each local filter, what it reads in every patch into one
"interweaved map" over the whole image and runs the filter once over it, as a global filter.
Here C3/C4 are valid inside each cell, so that map is simply the part of the region's pool2
map that cell (i, j) of every patch covers (one Crop per cell filter): C3's cell filter runs
once over it, and every patch's cell output is a window of the result.  pool3 (2x2/2 inside a
patch's cell) becomes a 2x2 pool with stride 1 over the global map, and C4 (and FC, read per
cell) read it at every second position: convolutions dilated by 2 (the "d-regularly sparse
kernels" of Li, Zhao & Wang 2014).  FC is split into one convolution per cell ("fc_<i>_<j>",
its weights cut from FC's by ``fill_onepass_fc``), summed (Eltwise) with FC's bias once, then
ReLU.  Output ``fc`` is (N, D, n, n): the feature of patch (a, b) (offset
``shape.patch_offsets[a * n + b]``) of image m is ``fc[m, :, a, b]`` (``patch_features``).
tests/methods/anet/test_anet_nets.py checks it against patch_deploy on every patch.
"""
from __future__ import annotations

from dataclasses import dataclass

import caffe
from caffe import layers as L, params as P
from caffe.proto import caffe_pb2

from g2s_caffe.core.nets.params import param_spec
from g2s_caffe.core.nets.data_layers import INDEX_SUFFIX, SplitLMDBs, lmdb_source, with_test_twins
from g2s_caffe.core.nets.solvers import sgd_solver, test_iterations
from g2s_caffe.methods.anet import params as hp
from g2s_caffe.methods.anet.local_conv import locally_shared_conv, slice_layer_names

# LMDBs of the ANet data stage: "<root>/<split>/<what>_lmdb", identical keys
REGION, LABELS, IDENTITY, PARTNER = "region", "labels", "identity", "partner"
DATA, PARTNER_DATA = "data", "data_p"
FEATURE_BLOB = "fc"
ATTR_HEAD = "fc_attr"
IDENTITY_HEAD = "fc_identity"
PROB = "prob"
PARTNER_SUFFIX = "_p"


@dataclass(frozen=True)
class ANetData(SplitLMDBs):
    """Where a train_val net reads its LMDBs (the ANet data stage's directory)."""
    batch: int = 128


# ---------------------------------------------------------------- layer helpers
class Branch:
    """Layer/top names of one branch: suffix "" (the canonical names) or "_p" (the siamese
    partner); ``shared`` names every param so that both branches use the same blobs."""

    def __init__(self, suffix: str = "", shared: bool = False):
        self.suffix, self.shared = suffix, shared

    def __call__(self, base: str) -> str:
        return base + self.suffix

    def param(self, layer: str, lr_mult: float = 1) -> list[dict]:
        spec = [dict(p) for p in param_spec(lr_mult)]
        if self.shared:
            spec[0]["name"], spec[1]["name"] = f"{layer}_w", f"{layer}_b"
        return spec


def conv_relu(n, bottom, name: str, nout: int, kernel: int, br: Branch):
    """A valid, stride-1 convolution + ReLU (in place); returns the ReLU's top."""
    n[br(name)] = L.Convolution(bottom, num_output=nout, kernel_size=kernel, stride=1, pad=0,
                                param=br.param(name), weight_filler=hp.CONV_WEIGHT_FILLER,
                                bias_filler=hp.BIAS_FILLER)
    n[br(f"relu_{name}")] = top = L.ReLU(n[br(name)], in_place=True)
    return top


def max_pool(bottom):
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=hp.POOL_KERNEL, stride=hp.POOL_STRIDE)


def fc_relu(n, bottom, shape: hp.ANetShape, br: Branch):
    n[br(FEATURE_BLOB)] = L.InnerProduct(bottom, num_output=shape.fc_dim, param=br.param(FEATURE_BLOB),
                                         weight_filler=hp.CONV_WEIGHT_FILLER, bias_filler=hp.BIAS_FILLER)
    n[br(f"relu_{FEATURE_BLOB}")] = top = L.ReLU(n[br(FEATURE_BLOB)], in_place=True)
    return top


def global_trunk(n, bottom, shape: hp.ANetShape, br: Branch):
    """C1 -> pool1 -> C2 -> pool2 (globally shared); returns pool2's top."""
    top = conv_relu(n, bottom, "conv1", shape.c1, shape.c1_kernel, br)
    n[br("pool1")] = top = max_pool(top)
    top = conv_relu(n, top, "conv2", shape.c2, shape.c2_kernel, br)
    n[br("pool2")] = top = max_pool(top)
    return top


def local_conv(n, bottom, name: str, cell: int, nout: int, kernel: int, shape: hp.ANetShape, br: Branch):
    return locally_shared_conv(n, bottom, name, shape.grid, cell, cell, nout, kernel, hp.LOCAL_PAD,
                               lambda layer: br.param(layer), hp.CONV_WEIGHT_FILLER, hp.BIAS_FILLER,
                               suffix=br.suffix)


def patch_trunk(n, bottom, shape: hp.ANetShape, br: Branch):
    """The whole ANet on a patch: global trunk, C3 (local) -> pool3 -> C4 (local) -> FC."""
    top = global_trunk(n, bottom, shape, br)
    top = local_conv(n, top, "conv3", shape.cell, shape.c3, shape.c3_kernel, shape, br)
    n[br("pool3")] = top = max_pool(top)
    top = local_conv(n, top, "conv4", shape.c4_input, shape.c4, shape.c4_kernel, shape, br)
    return fc_relu(n, top, shape, br)


def local_renames(shape: hp.ANetShape, suffix: str = "") -> dict[tuple[str, str], str]:
    out = {}
    for name in hp.LOCAL_CONVS:
        out.update(slice_layer_names(f"{name}_in{suffix}", shape.grid))
    return out


def _transform(shape: hp.ANetShape, train: bool) -> dict:
    return dict(crop_size=shape.patch_size, mirror=train, mean_value=list(hp.FACE_MEAN_BGR),
                scale=shape.input_scale)


def _data(n, top: str, data: ANetData, split: str, what: str, batch: int, phase, transform=None):
    kw = dict(source=lmdb_source(data.root, split, what), backend=P.Data.LMDB, batch_size=batch,
              include=dict(phase=phase), ntop=2)
    if transform is not None:
        kw["transform_param"] = transform
    n[top], n[top + INDEX_SUFFIX] = L.Data(**kw)


def _finetune_inputs(n, data: ANetData, shape: hp.ANetShape, train: bool):
    phase = caffe.TRAIN if train else caffe.TEST
    split = data.train_split if train else data.monitor_split
    batch = data.batch if train else data.test_batch
    _data(n, DATA, data, split, REGION, batch, phase, _transform(shape, train))
    _data(n, LABELS, data, split, LABELS, batch, phase)


# ---------------------------------------------------------------- the nets
def pretrain_net(shape: hp.ANetShape, identities: int, data: ANetData,
                 name: str = "anet_pretrain") -> caffe_pb2.NetParameter:
    """Identity pre-training (§2.2): softmax over ``identities`` + the similarity loss."""
    shape.check()
    n = caffe.NetSpec()
    _data(n, DATA, data, data.train_split, REGION, data.batch, caffe.TRAIN, _transform(shape, True))
    _data(n, PARTNER_DATA, data, data.train_split, PARTNER, data.batch, caffe.TRAIN, _transform(shape, True))
    _data(n, IDENTITY, data, data.train_split, IDENTITY, data.batch, caffe.TRAIN)
    n.silence_index = L.Silence(n[DATA + INDEX_SUFFIX], n[PARTNER_DATA + INDEX_SUFFIX],
                                n[IDENTITY + INDEX_SUFFIX], ntop=0)
    fc = patch_trunk(n, n[DATA], shape, Branch("", shared=True))
    fc_p = patch_trunk(n, n[PARTNER_DATA], shape, Branch(PARTNER_SUFFIX, shared=True))
    n.fc_drop = L.Dropout(fc, dropout_ratio=hp.DROPOUT)
    n[IDENTITY_HEAD] = L.InnerProduct(n.fc_drop, num_output=identities, param=Branch().param(IDENTITY_HEAD),
                                      weight_filler=hp.HEAD_WEIGHT_FILLER, bias_filler=hp.BIAS_FILLER)
    n.loss_identity = L.SoftmaxWithLoss(n[IDENTITY_HEAD], n[IDENTITY], loss_weight=1)
    n.loss_similarity = L.EuclideanLoss(fc, fc_p, loss_weight=hp.SIMILARITY_LOSS_WEIGHT)
    return with_test_twins(n.to_proto(), [], name, {**local_renames(shape), **local_renames(shape, PARTNER_SUFFIX)})


def finetune_net(names: list[str], shape: hp.ANetShape, data: ANetData,
                 name: str = "anet_finetune") -> caffe_pb2.NetParameter:
    """Attribute fine-tuning on random patches of the region: T sigmoid cross-entropies."""
    shape.check()
    n = caffe.NetSpec()
    _finetune_inputs(n, data, shape, train=True)
    n.silence_index = L.Silence(n[DATA + INDEX_SUFFIX], n[LABELS + INDEX_SUFFIX], ntop=0)
    fc = patch_trunk(n, n[DATA], shape, Branch())
    n.fc_drop = L.Dropout(fc, dropout_ratio=hp.DROPOUT)
    n[ATTR_HEAD] = L.InnerProduct(n.fc_drop, num_output=len(names), param=Branch().param(ATTR_HEAD),
                                  weight_filler=hp.HEAD_WEIGHT_FILLER, bias_filler=hp.BIAS_FILLER)
    n.loss = L.SigmoidCrossEntropyLoss(n[ATTR_HEAD], n[LABELS], loss_weight=1,
                                       loss_param=dict(normalization=getattr(P.Loss, hp.ATTRIBUTE_LOSS_NORMALIZATION)))
    test = caffe.NetSpec()
    _finetune_inputs(test, data, shape, train=False)
    return with_test_twins(n.to_proto(), list(test.to_proto().layer), name, local_renames(shape))


def patch_deploy(shape: hp.ANetShape, names: list[str] | None = None, batch: int = 1,
                 name: str = "anet_patch") -> caffe_pb2.NetParameter:
    """Input "data" (batch, 3, p, p) -> "fc" (batch, D) [-> "prob" (batch, T) with ``names``]."""
    shape.check()
    n = caffe.NetSpec()
    n[DATA] = L.Input(shape=dict(dim=[batch, 3, shape.patch_size, shape.patch_size]))
    fc = patch_trunk(n, n[DATA], shape, Branch())
    if names:
        n[ATTR_HEAD] = L.InnerProduct(fc, num_output=len(names), param=Branch().param(ATTR_HEAD))
        n[PROB] = L.Sigmoid(n[ATTR_HEAD])
    return with_test_twins(n.to_proto(), [], name, local_renames(shape))


def onepass_deploy(shape: hp.ANetShape, batch: int = 1, name: str = "anet_onepass") -> caffe_pb2.NetParameter:
    """Input "data" (batch, 3, R, R) -> "fc" (batch, D, n, n): every test patch's FC in one pass
    (module docstring).  Its fc_<i>_<j> weights come from FC's (``fill_onepass_fc``)."""
    shape.check()
    n = caffe.NetSpec()
    br = Branch()
    n[DATA] = L.Input(shape=dict(dim=[batch, 3, shape.region_size, shape.region_size]))
    pool2 = global_trunk(n, n[DATA], shape, br)
    side = shape.cell + (shape.patches_per_side - 1) * shape.patch_step    # what cell (i, j) covers
    n.cell_span = L.DummyData(shape=dict(dim=[1, 1, side, side]), data_filler=dict(type="constant"))
    dilation = hp.POOL_STRIDE
    parts = []
    for i in range(shape.grid):
        for j in range(shape.grid):
            n[f"conv3_in_{i}_{j}"] = L.Crop(pool2, n.cell_span, axis=2, offset=[i * shape.cell, j * shape.cell])
            top = cell_filter(n, n[f"conv3_in_{i}_{j}"], f"conv3_{i}_{j}", shape.c3, shape.c3_kernel, br)
            n[f"pool3_{i}_{j}"] = top = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=hp.POOL_KERNEL, stride=1)
            top = cell_filter(n, top, f"conv4_{i}_{j}", shape.c4, shape.c4_kernel, br, dilation=dilation)
            # FC's part for this cell, evaluated at every patch position (stride = patch step)
            n[f"{FEATURE_BLOB}_{i}_{j}"] = L.Convolution(
                top, num_output=shape.fc_dim, kernel_size=shape.c4_output, dilation=dilation,
                stride=shape.patch_step, bias_term=(i, j) == (0, 0), param=br.param(FEATURE_BLOB)[:1 + ((i, j) == (0, 0))])
            parts.append(n[f"{FEATURE_BLOB}_{i}_{j}"])
    n[FEATURE_BLOB] = L.Eltwise(*parts, operation=P.Eltwise.SUM) if len(parts) > 1 else L.Split(parts[0])
    n[f"relu_{FEATURE_BLOB}"] = L.ReLU(n[FEATURE_BLOB], in_place=True)
    # not "fc": a layer of that name would be given the patch net's FC blobs when loading by name
    return with_test_twins(n.to_proto(), [], name, {("Eltwise", FEATURE_BLOB): f"{FEATURE_BLOB}_sum"})


def cell_filter(n, bottom, name: str, nout: int, kernel: int, br: Branch, dilation: int = 1):
    """One cell filter of a locally shared layer, run once over its interweaved map."""
    n[name] = L.Convolution(bottom, num_output=nout, kernel_size=kernel, pad=hp.LOCAL_PAD, stride=1,
                            dilation=dilation, param=br.param(name), weight_filler=hp.CONV_WEIGHT_FILLER,
                            bias_filler=hp.BIAS_FILLER)
    n[f"relu_{name}"] = top = L.ReLU(n[name], in_place=True)
    return top


def fill_onepass_fc(net, fc_weight, fc_bias, shape: hp.ANetShape) -> None:
    """Set the one-pass net's fc_<i>_<j> convolutions from FC's weights (D, c4 * (g h4)^2) and
    bias: FC reads the joined C4 map (c4, g*h4, g*w4); cell (i, j)'s part is its h4 x w4 block."""
    import numpy as np

    g, h = shape.grid, shape.c4_output
    w = np.asarray(fc_weight).reshape(shape.fc_dim, shape.c4, g * h, g * h)
    for i in range(g):
        for j in range(g):
            blobs = net.params[f"{FEATURE_BLOB}_{i}_{j}"]
            blobs[0].data[...] = w[:, :, i * h:(i + 1) * h, j * h:(j + 1) * h]
            if (i, j) == (0, 0):
                blobs[1].data[...] = np.asarray(fc_bias).reshape(blobs[1].data.shape)


def load_onepass(deploy: str, weights: str, shape: hp.ANetShape):
    """The one-pass net with a patch net's weights: conv1 .. conv4_<i>_<j> by name, FC cut into
    its per-cell convolutions."""
    import caffe as caffe_mod

    from g2s_caffe.core.nets.weights import read_caffemodel

    net = caffe_mod.Net(str(deploy), caffe_mod.TEST, weights=str(weights))
    blobs = read_caffemodel(weights)
    if FEATURE_BLOB not in blobs:
        from g2s_caffe.core.errors import G2SError
        raise G2SError(f"{weights}: no layer {FEATURE_BLOB!r}; not an ANet caffemodel")
    fill_onepass_fc(net, blobs[FEATURE_BLOB][0], blobs[FEATURE_BLOB][1], shape)
    return net


def patch_features(fc):
    """(N, D, n, n) one-pass output -> (n_patches, N, D), patches in ``shape.patch_offsets`` order."""
    import numpy as np

    fc = np.asarray(fc)
    n_img, d, a, b = fc.shape
    return fc.transpose(2, 3, 0, 1).reshape(a * b, n_img, d)


# ---------------------------------------------------------------- solvers
def _solver(net: str, snapshot_prefix: str, base_lr: float, max_iter: int,
            settings: hp.ANetSolverSettings) -> caffe_pb2.SolverParameter:
    return sgd_solver(net, snapshot_prefix, base_lr, max_iter, lr_policy=settings.lr_policy, gamma=settings.gamma,
                      power=settings.power, momentum=settings.momentum, weight_decay=settings.weight_decay,
                      display=settings.display, snapshot=settings.snapshot, solver_mode=settings.solver_mode,
                      seed=settings.seed)


def pretrain_solver(net: str, snapshot_prefix: str, settings: hp.ANetSolverSettings) -> caffe_pb2.SolverParameter:
    """No TEST phase: the other splits hold other people, so identity accuracy means nothing there."""
    return _solver(net, snapshot_prefix, settings.base_lr_pretrain, settings.max_iter_pretrain, settings)


def finetune_solver(net: str, snapshot_prefix: str, settings: hp.ANetSolverSettings,
                    monitor_size: int) -> caffe_pb2.SolverParameter:
    s = _solver(net, snapshot_prefix, settings.base_lr_finetune, settings.max_iter_finetune, settings)
    s.test_iter.append(test_iterations(monitor_size, settings.test_batch_size))
    s.test_interval = settings.test_interval
    return s
