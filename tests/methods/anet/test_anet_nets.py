"""ANet's nets (LNets+ANet baseline): the one-pass net equals patch-by-patch evaluation, the
committed files say what the paper says, the training nets compute the losses they claim."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.caffe
from support import ROOT
COMMITTED = ROOT / "prototxt" / "celeba" / "anet"


def _net_file(tmp_path, proto, name):
    from google.protobuf import text_format

    path = tmp_path / f"{name}.prototxt"
    path.write_text(text_format.MessageToString(proto))
    return str(path)


def _read(path, message):
    from google.protobuf import text_format

    return text_format.Merge(Path(path).read_text(), message)


def _face_regions(size: int, count: int) -> np.ndarray:
    """Real photographs (scikit-image's astronaut and coffee), resized, mean-subtracted and
    scaled like ANet's inputs: (count, 3, size, size)."""
    import cv2
    from skimage import data

    from g2s_caffe.methods.anet import params as hp

    out = []
    for img in (data.astronaut()[:300, 100:400], data.coffee()[:, :400])[:count]:
        bgr = cv2.resize(img[:, :, ::-1], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
        out.append(((bgr - np.asarray(hp.FACE_MEAN_BGR, np.float32)) * hp.INPUT_SCALE).transpose(2, 0, 1))
    return np.stack(out)


@pytest.mark.parametrize("variant", ["small", "full"])
def test_onepass_features_equal_patch_by_patch(variant, tmp_path):
    import caffe

    from g2s_caffe.methods.anet import nets
    from g2s_caffe.methods.anet import params as hp

    caffe.set_mode_cpu()
    shape = hp.ANET_VARIANTS[variant][0]
    batch = 2
    patch_net = caffe.Net(_net_file(tmp_path, nets.patch_deploy(shape, batch=shape.n_patches * batch), "patch"),
                          caffe.TEST)
    rng = np.random.default_rng(7)
    for name, blobs in patch_net.params.items():   # weights with structure in every blob
        for b in blobs:
            fan_in = max(1, int(np.prod(b.data.shape[1:])))
            b.data[...] = rng.normal(0, np.sqrt(2.0 / fan_in), b.data.shape) + (0.01 if b.data.ndim == 1 else 0)
    weights = tmp_path / "anet.caffemodel"
    patch_net.save(str(weights))
    onepass = nets.load_onepass(_net_file(tmp_path, nets.onepass_deploy(shape, batch=batch), "onepass"),
                                weights, shape)

    x = _face_regions(shape.region_size, batch)
    p = shape.patch_size
    # patch-by-patch: every patch of every image through the patch net, patch-major
    patches = np.concatenate([x[:, :, y:y + p, z:z + p] for y, z in shape.patch_offsets])
    patch_net.blobs["data"].data[...] = patches
    want = patch_net.forward()[nets.FEATURE_BLOB].reshape(shape.n_patches, batch, shape.fc_dim).copy()
    onepass.blobs["data"].data[...] = x
    got = nets.patch_features(onepass.forward()[nets.FEATURE_BLOB])
    assert got.shape == (shape.n_patches, batch, shape.fc_dim)
    scale = np.abs(want).max()
    assert scale > 0 and (want > 0).mean() > 0.1            # features, not a dead ReLU
    assert np.abs(got - want).max() <= 1e-4 * scale
    # distinct patches give distinct features (the test would pass trivially otherwise)
    assert np.abs(want[0] - want[-1]).max() > 1e-2 * scale


def _layers(net):
    return {layer.name: layer for layer in net.layer}


# What docs/choices.md says we chose (ANet's rows), written here as literals: the tests compare
# the committed files with these, never with the generator's constants (params.py).
CHOSEN_PATCH, CHOSEN_REGION, CHOSEN_GRID = 110, 126, 3
CHOSEN_SIMILARITY_WEIGHT = 0.05
CHOSEN_SOLVERS = {"pretrain": (0.01, 60000), "finetune": (0.001, 30000)}     # base_lr, max_iter
CHOSEN_SGD = {"type": "SGD", "lr_policy": "inv", "gamma": 1e-4, "power": 0.75, "momentum": 0.9,
              "weight_decay": 5e-4}
CHOSEN_BATCH = 128
CHOSEN_ROWS = {   # first cell of the row -> what it must say
    "ANet: C1–C4, three max pools, one FC; C1/C2 globally shared, C3/C4 locally shared (layer sizes not given)":
        ["a 3×3 grid"],
    "multiple overlapping patches cropped from the enlarged face region; input and patch sizes not given":
        ["110-px patches of a 126-px region (full)"],
    "similarity loss weight (not given)": ["`SIMILARITY_LOSS_WEIGHT` 0.05"],
    "no solver given": ["SGD, momentum 0.9, weight decay 5e-4, `inv` (γ 1e-4, power 0.75)",
                        "base_lr 0.01 (pre-training from random init) and 0.001 (fine-tuning)", "batch 128",
                        "60k + 30k iterations"],
}


def test_the_literals_are_what_docs_choices_says():
    from support import choices_row

    for first_cell, says in CHOSEN_ROWS.items():
        row = choices_row("ANet", first_cell)
        assert all(s in row for s in says), (first_cell, [s for s in says if s not in row])


def test_committed_anet_files_have_what_the_paper_fixes():
    """Read the committed files back with caffe_pb2 (not the generator's objects) and compare
    them with the paper (8,000 identities, four conv groups, three pools, one FC) and with
    docs/choices.md's literals above."""
    from caffe.proto import caffe_pb2

    pre = _read(COMMITTED / "pretrain_train_val.prototxt", caffe_pb2.NetParameter())
    fine = _read(COMMITTED / "finetune_train_val.prototxt", caffe_pb2.NetParameter())
    for net in (pre, fine):
        layers = [l for l in net.layer if not l.name.endswith("_p")]
        convs = [l.name for l in layers if l.type == "Convolution"]
        groups = sorted({c.split("_")[0] for c in convs})
        assert groups == ["conv1", "conv2", "conv3", "conv4"]                      # four conv layers
        grid = CHOSEN_GRID
        assert convs.count("conv1") == convs.count("conv2") == 1                   # C1, C2 global
        for local in ("conv3", "conv4"):                                           # C3, C4 local: a
            cells = [c for c in convs if c.startswith(local)]                       # grid of cells,
            assert len(cells) == grid * grid > 1                                    # own filters each
        assert sum(l.type == "Pooling" for l in layers) == 3                       # three max pools
        assert all(l.pooling_param.pool == caffe_pb2.PoolingParameter.MAX for l in layers if l.type == "Pooling")
        fcs = [l.name for l in layers if l.type == "InnerProduct"]
        assert fcs[0] == "fc" and len(fcs) == 2                                     # FC + the stage's head
    by = _layers(pre)
    # pre-training: softmax over the identities + the similarity loss on FC, shared weights
    assert by["fc_identity"].inner_product_param.num_output == 8000                 # "eight thousand"
    assert by["loss_identity"].type == "SoftmaxWithLoss" and list(by["loss_identity"].bottom) == ["fc_identity", "identity"]
    sim = by["loss_similarity"]
    assert sim.type == "EuclideanLoss" and list(sim.bottom) == ["fc", "fc_p"]
    assert sim.loss_weight[0] == pytest.approx(CHOSEN_SIMILARITY_WEIGHT)
    for name in ("conv1", "conv3_0_0", "fc"):
        assert [p.name for p in by[name].param] == [p.name for p in by[name + "_p"].param] != ["", ""]
    assert {l.data_param.source.split("/")[-1] for l in pre.layer if l.type == "Data"} == \
        {"region_lmdb", "partner_lmdb", "identity_lmdb"}
    # fine-tuning: the attributes' sigmoid cross-entropies, summed over attributes
    fb = _layers(fine)
    assert fb["fc_attr"].inner_product_param.num_output == 40
    assert fb["loss"].type == "SigmoidCrossEntropyLoss"
    assert fb["loss"].loss_param.normalization == caffe_pb2.LossParameter.BATCH_SIZE
    train = [l for l in fine.layer if l.name == "data" and l.include[0].phase == caffe_pb2.TRAIN][0]
    test = [l for l in fine.layer if l.name == "data" and l.include[0].phase == caffe_pb2.TEST][0]
    assert (train.transform_param.crop_size, train.transform_param.mirror) == (CHOSEN_PATCH, True)
    assert (test.transform_param.crop_size, test.transform_param.mirror) == (CHOSEN_PATCH, False)
    assert train.data_param.source.endswith("/train/region_lmdb") and test.data_param.source.endswith("/val/region_lmdb")
    # the one-pass net reads the whole region and has every cell filter once
    one = _layers(_read(COMMITTED / "onepass_deploy.prototxt", caffe_pb2.NetParameter()))
    assert list(one["data"].input_param.shape[0].dim) == [1, 3, CHOSEN_REGION, CHOSEN_REGION]
    assert sum(n.startswith("conv3_") and l.type == "Convolution" for n, l in one.items()) == CHOSEN_GRID ** 2
    # solvers: our choices, written where the run reads them
    for name, (lr, it) in CHOSEN_SOLVERS.items():
        s = _read(COMMITTED / f"{name}_solver.prototxt", caffe_pb2.SolverParameter())
        assert (s.base_lr, s.max_iter) == (pytest.approx(lr), it), name
        assert {k: getattr(s, k) for k in CHOSEN_SGD} == pytest.approx(CHOSEN_SGD), name
        assert s.iter_size == 1 and s.net == f"prototxt/celeba/anet/{name}_train_val.prototxt"
        net = _read(ROOT / s.net, caffe_pb2.NetParameter())
        assert {l.data_param.batch_size for l in net.layer if l.type == "Data" and l.include[0].phase == caffe_pb2.TRAIN} \
            == {CHOSEN_BATCH}, name
    assert len(_read(COMMITTED / "pretrain_solver.prototxt", caffe_pb2.SolverParameter()).test_iter) == 0


def _train_net(tmp_path, proto, batch, labels):
    import caffe

    from g2s_caffe.core.nets.data_layers import with_inputs

    return caffe.Net(_net_file(tmp_path, with_inputs(proto, batch, labels), proto.name), caffe.TRAIN)


def test_pretraining_shares_weights_and_computes_the_similarity_loss(tmp_path):
    import caffe

    from g2s_caffe.methods.anet import nets
    from g2s_caffe.methods.anet import params as hp

    caffe.set_mode_cpu()
    shape, batch = hp.SMALL_ANET, 4
    net = _train_net(tmp_path, nets.pretrain_net(shape, 5, nets.ANetData("x", batch=batch)), batch, 1)
    x = _face_regions(shape.patch_size, 2)
    net.blobs["data"].data[...] = np.concatenate([x, x])
    net.blobs["data_p"].data[...] = np.concatenate([x, x[::-1]])      # pairs 0, 1 identical
    net.blobs["identity"].data[...] = np.arange(batch).reshape(batch, 1, 1, 1) % 5
    out = net.forward()
    fc, fc_p = net.blobs["fc"].data, net.blobs["fc_p"].data
    assert np.array_equal(fc[:2], fc_p[:2])                           # same image, same weights
    # the top is Caffe's EuclideanLoss, 1/(2N) sum ||FC - FC_p||^2 (the net weighs it by lambda)
    want = ((fc - fc_p) ** 2).sum() / (2 * batch)
    assert want > 0 and out["loss_similarity"] == pytest.approx(want, rel=1e-4)
    # one update moves both branches' weights together
    net.params["conv1"][0].data[...] += 0.5
    assert np.array_equal(net.params["conv1"][0].data, net.params["conv1_p"][0].data)


def test_finetuning_loss_is_the_sum_of_the_attributes_cross_entropies(tmp_path):
    import caffe

    from g2s_caffe.methods.anet import nets
    from g2s_caffe.methods.anet import params as hp

    caffe.set_mode_cpu()
    shape, batch, names = hp.SMALL_ANET, 2, ["A", "B", "C"]
    net = _train_net(tmp_path, nets.finetune_net(names, shape, nets.ANetData("x", batch=batch)), batch, len(names))
    net.blobs["data"].data[...] = _face_regions(shape.patch_size, batch)
    y = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    net.blobs["labels"].data[...] = y.reshape(batch, 3, 1, 1)
    out = net.forward()
    f = net.blobs["fc_attr"].data.astype(np.float64)
    p = 1 / (1 + np.exp(-f))
    ce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum() / batch     # summed over attributes
    assert out["loss"] == pytest.approx(ce, rel=1e-4)


def test_committed_training_nets_load_and_run_on_lmdbs_of_their_size(tmp_path):
    """The committed full-size pre-training and fine-tuning nets, their Data layers re-rooted to
    LMDBs of the region size they expect, load in Caffe and run forward and backward."""
    import shutil

    import caffe
    from caffe.proto import caffe_pb2

    from g2s_caffe.core.attributes import default_attributes
    from g2s_caffe.methods.anet import params as hp
    from g2s_caffe.core.nets.data_layers import reroot_sources
    from support import make_tiny_prepared

    caffe.set_mode_cpu()
    size = hp.FULL_ANET.region_size
    root = make_tiny_prepared(tmp_path / "anet", default_attributes("celeba").names, {"train": 2, "val": 2},
                              size=size, schemes=("region", "partner"))
    ident = make_tiny_prepared(tmp_path / "ident", ["identity"], {"train": 2}, size=8)
    shutil.copytree(ident / "train" / "labels_lmdb", root / "train" / "identity_lmdb")
    for name, phases in (("pretrain", (caffe.TRAIN,)), ("finetune", (caffe.TRAIN, caffe.TEST))):
        net = reroot_sources(_read(COMMITTED / f"{name}_train_val.prototxt", caffe_pb2.NetParameter()), str(root))
        for layer in net.layer:
            if layer.type == "Data":
                layer.data_param.batch_size = 1
        path = _net_file(tmp_path, net, name)
        for phase in phases:
            n = caffe.Net(path, phase)
            assert n.blobs["data"].data.shape == (1, 3, CHOSEN_PATCH, CHOSEN_PATCH)
            loss = n.forward()
            assert all(np.isfinite(v).all() for v in loss.values())
            if phase == caffe.TRAIN:
                n.backward()
                assert np.abs(n.params["conv1"][0].diff).sum() > 0
            del n
