"""The generated nets and solvers, read back from the files and run in real Caffe.

Expected values are the paper's (§2.1, §3.1), written here as literals, never taken from
the generator's constants.
"""
from __future__ import annotations

import gc
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from support import make_tiny_prepared

pytestmark = pytest.mark.caffe

from support import ROOT
PROTOTXT = ROOT / "prototxt"
CAFFE = Path(sys.executable).parent / "caffe"
G2S = Path(sys.executable).parent / "g2s"
DATASETS = {"celeba": ("val", 19867), "lfwa": ("test", 6880)}   # monitor split, its size

# The public VGG-Face deploy net (vgg_face_caffe/VGG_FACE_deploy.prototxt).
VGG_CONVS = [("conv1_1", 64), ("conv1_2", 64), ("conv2_1", 128), ("conv2_2", 128),
             ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), ("conv4_1", 512),
             ("conv4_2", 512), ("conv4_3", 512), ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512)]
VGG_TRUNK = []
for _block in range(1, 6):
    for _name, _ in VGG_CONVS:
        if _name.startswith(f"conv{_block}_"):
            VGG_TRUNK += [_name, _name.replace("conv", "relu")]
    VGG_TRUNK.append(f"pool{_block}")
VGG_TRUNK += ["fc6", "relu6", "drop6", "fc7", "relu7", "drop7"]
VGG_FACE_MEAN_BGR = (93.5940, 104.7624, 129.1863)
PAPER_LR = {"Convolution": 1, "fc6": 3, "fc7": 5, "head": 8}


def read_net(path: Path):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = caffe_pb2.NetParameter()
    text_format.Merge(Path(path).read_text(), net)
    return net


def read_solver(path: Path):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    s = caffe_pb2.SolverParameter()
    text_format.Merge(Path(path).read_text(), s)
    return s


def rerooted(src: Path, data_root: Path, dst: Path, batch: int | None = None) -> Path:
    """Copy of a train_val whose Data layers read ``data_root/<split>/<what>_lmdb``."""
    net = read_net(src)
    for layer in net.layer:
        if layer.type == "Data":
            split, what = layer.data_param.source.split("/")[-2:]
            layer.data_param.source = str(data_root / split / what)
            if batch:
                layer.data_param.batch_size = batch
    dst.write_text(str(net))
    return dst


def layers_by_name(net, phase=None):
    """name -> layer for the layers active in ``phase`` (None: layers without include)."""
    out = {}
    for layer in net.layer:
        phases = {r.phase for r in layer.include}
        if not phases or phase in phases:
            out[layer.name] = layer
    return out


def attribute_list(dataset: str):
    from g2s_caffe.core.attributes import default_attributes

    return default_attributes(dataset)


# ---------------------------------------------------------------- structure of every file
def _check_params(layer, lr: float):
    got = [(p.lr_mult, p.decay_mult) for p in layer.param]
    assert got == [(lr, 1), (2 * lr, 0)], f"{layer.name}: param {got}"


def _check_trunk(net, path):
    names = [layer.name for layer in net.layer]
    trunk = [n for n in names if n in VGG_TRUNK]
    assert trunk == VGG_TRUNK, path
    by = {layer.name: layer for layer in net.layer}
    for name, width in VGG_CONVS:
        c = by[name].convolution_param
        assert (c.num_output, list(c.kernel_size), list(c.pad)) == (width, [3], [1]), (path, name)
        _check_params(by[name], PAPER_LR["Convolution"])
    for i in range(1, 6):
        p = by[f"pool{i}"].pooling_param
        assert (p.pool, p.kernel_size, p.stride) == (0, 2, 2), (path, i)   # MAX
    for fc in ("fc6", "fc7"):
        assert by[fc].inner_product_param.num_output == 4096, path
        _check_params(by[fc], PAPER_LR[fc])
        assert by[fc.replace("fc", "drop")].dropout_param.dropout_ratio == pytest.approx(0.5)


def _check_data_layers(net, path, dataset: str, scheme: str, batch: int):
    monitor, _ = DATASETS[dataset]
    seen = {}
    for layer in net.layer:
        if layer.type != "Data":
            continue
        (rule,) = layer.include
        train = rule.phase == 0
        split = "train" if train else monitor
        seen[(layer.name, train)] = layer
        assert len(layer.top) == 2, (path, layer.name)
        what = scheme if layer.name == "data" else "labels"
        assert layer.data_param.source == f"data/{dataset}/{split}/{what}_lmdb", path
        assert layer.data_param.backend == 1   # LMDB
        if train:
            assert layer.data_param.batch_size == batch, path
        if layer.name == "data":
            t = layer.transform_param
            assert (t.crop_size, t.mirror) == (224, train), path
            assert list(t.mean_value) == pytest.approx(VGG_FACE_MEAN_BGR, abs=1e-4)
            assert t.scale == 1.0, path   # VGG-Face's 0-255 input (no scale field)
        else:
            assert not layer.HasField("transform_param"), path
    assert sorted(seen) == [("data", False), ("data", True), ("labels", False), ("labels", True)]
    silenced = {b for layer in net.layer if layer.type == "Silence" for b in layer.bottom}
    assert {"data_index", "labels_index"} <= silenced, path


def _label_column(net, top: str) -> tuple[int, int]:
    """[start, end) of the labels columns that the Slice gives to ``top``."""
    (sl,) = [layer for layer in net.layer if layer.type == "Slice" and list(layer.bottom) == ["labels"]]
    k = list(sl.top).index(top)
    points = list(sl.slice_param.slice_point)
    return (points[k - 1] if k else 0), (points[k] if k < len(points) else None)


def _check_solver(path: Path, dataset: str, max_iter: int, net_rel: str):
    s = read_solver(path)
    assert (s.type, s.lr_policy) == ("SGD", "inv")
    assert s.base_lr == pytest.approx(1e-4) and s.gamma == pytest.approx(1e-4)
    assert s.power == pytest.approx(0.5) and s.momentum == pytest.approx(0.9)
    assert s.weight_decay == pytest.approx(5e-4)
    assert s.max_iter == max_iter and s.solver_mode == 1   # GPU, the paper's setup
    assert s.HasField("random_seed") and s.test_interval > 0 and s.snapshot > 0
    assert s.net == net_rel and (ROOT / s.net).is_file()
    assert s.snapshot_prefix.startswith(f"runs/{dataset}/")
    net = read_net(ROOT / s.net)
    test_batch = layers_by_name(net, 1)["data"].data_param.batch_size
    train_batch = layers_by_name(net, 0)["data"].data_param.batch_size
    assert train_batch * s.iter_size == 128
    _, size = DATASETS[dataset]
    (test_iter,) = s.test_iter
    assert test_iter == math.ceil(size / test_batch)


def _check_deploy(path: Path, outputs_shape: list[int], head: str, head_outputs: int):
    net = read_net(path)
    first = net.layer[0]
    assert (first.type, list(first.top)) == ("Input", ["data"])
    assert list(first.input_param.shape[0].dim) == [1, 3, 224, 224]
    assert not [layer for layer in net.layer if layer.type in ("Data", "SoftmaxWithLoss", "Accuracy")]
    _check_trunk(net, path)
    by = {layer.name: layer for layer in net.layer}
    assert by[head].inner_product_param.num_output == head_outputs
    last = net.layer[-1]
    assert (last.type, list(last.top)) == ("Softmax", ["prob"])
    if outputs_shape:
        (reshape,) = [layer for layer in net.layer if layer.type == "Reshape"]
        assert list(reshape.reshape_param.shape.dim) == outputs_shape
        assert last.softmax_param.axis == 2


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_committed_file_has_the_papers_settings(dataset):
    attrs = attribute_list(dataset)
    T = len(attrs)
    base = PROTOTXT / dataset
    files = sorted(base.rglob("*.prototxt"))
    anet = len(list((base / "anet").glob("*.prototxt")))      # the baseline's (tests/methods/anet/test_anet_nets.py)
    lnets = len(list((base / "lnets").glob("*.prototxt")))    # the baseline's (tests/methods/lnets/test_lnet_nets.py)
    assert len(files) == 3 + 2 * 3 * T + anet + lnets
    assert anet == lnets == (6 if dataset == "celeba" else 0)
    for f in files:
        assert f.read_text().splitlines()[0] == "# g2s gen --all", f

    tv = read_net(base / "step1" / "train_val.prototxt")
    _check_trunk(tv, "step1")
    _check_data_layers(tv, "step1", dataset, "a", 128)
    by = {layer.name: layer for layer in tv.layer}
    assert by["fc8_joint"].inner_product_param.num_output == 2 * T
    _check_params(by["fc8_joint"], PAPER_LR["head"])
    (scores,) = [layer for layer in tv.layer if layer.type == "Slice" and list(layer.bottom) == ["fc8_joint"]]
    assert list(scores.top) == [f"fc8_{a}" for a in attrs.names]
    assert list(scores.slice_param.slice_point) == list(range(2, 2 * T, 2))
    for t, a in enumerate(attrs.names):
        assert _label_column(tv, f"label_{a}") == (t, t + 1 if t + 1 < T else None)
        loss = by[f"loss_{a}"]
        assert (loss.type, list(loss.bottom), list(loss.loss_weight)) == (
            "SoftmaxWithLoss", [f"fc8_{a}", f"label_{a}"], [1.0])
        acc = by[f"accuracy_{a}"]
        assert acc.type == "Accuracy" and [r.phase for r in acc.include] == [1]
    assert len([layer for layer in tv.layer if layer.type == "SoftmaxWithLoss"]) == T
    _check_solver(base / "step1" / "solver.prototxt", dataset, 120000,
                  f"prototxt/{dataset}/step1/train_val.prototxt")
    _check_deploy(base / "step1" / "deploy.prototxt", [0, T, 2], "fc8_joint", 2 * T)

    for step in (2, 3):
        for t, a in enumerate(attrs.attributes):
            folder = base / f"step{step}" / a.name
            tv = read_net(folder / "train_val.prototxt")
            _check_trunk(tv, folder)
            _check_data_layers(tv, folder, dataset, "a" if step == 2 else a.crop, 128)
            by = {layer.name: layer for layer in tv.layer}
            assert by["fc8_attr"].inner_product_param.num_output == 2
            _check_params(by["fc8_attr"], PAPER_LR["head"])
            assert _label_column(tv, "label") == (t, t + 1 if t + 1 < T else None)
            assert list(by["loss"].bottom) == ["fc8_attr", "label"]
            assert [r.phase for r in by["accuracy"].include] == [1]
            _check_solver(folder / "solver.prototxt", dataset, 40000,
                          f"prototxt/{dataset}/step{step}/{a.name}/train_val.prototxt")
            _check_deploy(folder / "deploy.prototxt", [], "fc8_attr", 2)


# ---------------------------------------------------------------- committed nets in real Caffe
@pytest.fixture(scope="module")
def full_size_data(tmp_path_factory):
    """Two 240x240 images per split, every crop scheme: enough for the full nets' Data layers."""
    root = tmp_path_factory.mktemp("full_data")
    return make_tiny_prepared(root, attribute_list("celeba").names, {"train": 2, "val": 2, "test": 2},
                              size=240, schemes=tuple("abcdefgh"))


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_committed_nets_load_in_caffe(dataset, full_size_data, tmp_path):
    """Step 1 and a sample of Step 2/3 nets (first, last and a non-"a" crop) in TRAIN and TEST."""
    import caffe

    attrs = attribute_list(dataset)
    odd = next(a.name for a in attrs.attributes if a.crop != "a")
    folders = [PROTOTXT / dataset / "step1", PROTOTXT / dataset / "step2" / attrs.names[-1],
               PROTOTXT / dataset / "step3" / odd]
    for folder in folders:
        tv = rerooted(folder / "train_val.prototxt", full_size_data, tmp_path / "tv.prototxt", batch=1)
        for phase in (caffe.TRAIN, caffe.TEST):
            net = caffe.Net(str(tv), phase)
            assert net.blobs["data"].data.shape == (1, 3, 224, 224)
            assert net.blobs["labels"].data.shape == (1, 40, 1, 1)
            del net
            gc.collect()
    net = caffe.Net(str(PROTOTXT / dataset / "step1" / "deploy.prototxt"), caffe.TEST)
    assert net.blobs["prob"].data.shape == (1, 40, 2)
    del net
    gc.collect()


# ---------------------------------------------------------------- VGG-Face -> Step 1 (full size)
def _vgg_face_deploy(path: Path) -> Path:
    """The public VGG-Face deploy layout: 13 convs, fc6/fc7 4096, fc8 2622, 224 input."""
    import caffe
    from caffe import layers as L, params as P

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 224, 224]))
    top = n.data
    for name, width in VGG_CONVS:
        n[name] = L.Convolution(top, num_output=width, kernel_size=3, pad=1)
        n[name.replace("conv", "relu")] = top = L.ReLU(n[name], in_place=True)
        if name in ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"):
            n[f"pool{name[4]}"] = top = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    for i, width in ((6, 4096), (7, 4096)):
        n[f"fc{i}"] = L.InnerProduct(top, num_output=width)
        n[f"relu{i}"] = L.ReLU(n[f"fc{i}"], in_place=True)
        n[f"drop{i}"] = top = L.Dropout(n[f"relu{i}"], in_place=True, dropout_ratio=0.5)
    n.fc8 = L.InnerProduct(top, num_output=2622)
    n.prob = L.Softmax(n.fc8)
    path.write_text(str(n.to_proto()))
    return path


@pytest.mark.slow
def test_vgg_face_weights_initialize_step1_by_name(tmp_path):
    import caffe

    from g2s_caffe.methods.g2s.surgery import derive_attribute_init

    deploy = _vgg_face_deploy(tmp_path / "vgg_face_deploy.prototxt")
    src = caffe.Net(str(deploy), caffe.TEST)
    rng = np.random.default_rng(0)
    for blobs in src.params.values():
        for b in blobs:
            b.data[...] = rng.standard_normal(b.data.shape, dtype=np.float32)
    model = tmp_path / "vgg_face.caffemodel"
    src.save(str(model))
    trunk = {name: [b.data.copy() for b in blobs] for name, blobs in src.params.items()
             if name.startswith(("conv", "fc6", "fc7"))}
    fc8 = src.params["fc8"][0].data[:80].copy()
    del src
    gc.collect()

    out = tmp_path / "step1_init.caffemodel"
    info = derive_attribute_init(model, deploy, PROTOTXT / "celeba" / "step1" / "train_val.prototxt",
                                 0, "copy", out)
    assert sorted(info["copied"]) == sorted(trunk) and "fc8_joint" in info["not_copied"]
    gc.collect()
    net = caffe.Net(str(PROTOTXT / "celeba" / "step1" / "deploy.prototxt"), str(out), caffe.TEST)
    assert len(trunk) == 15
    for name, blobs in trunk.items():
        for got, want in zip(net.params[name], blobs):
            np.testing.assert_array_equal(got.data, want, err_msg=name)
    head = net.params["fc8_joint"][0].data
    assert head.shape == (80, 4096) and not np.allclose(head, fc8)
    assert 0.005 < head.std() < 0.02   # its own N(0, 0.01) filler
    assert not net.params["fc8_joint"][1].data.any()
    del net, trunk
    gc.collect()


# ---------------------------------------------------------------- small variant: time, train, heads
ATTRS = ["Bald", "Eyeglasses", "Smiling", "Young"]
SMALL_ARGS = ["--variant", "small", "--batch-size", "8", "--test-batch-size", "4",
              "--max-iter-step1", "12", "--max-iter-step23", "4", "--test-interval", "6",
              "--snapshot", "12", "--monitor-size", "8"]


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    """Tiny real data (64x64 JPEGs) and the small-variant tree that reads it."""
    tmp = tmp_path_factory.mktemp("small")
    data = make_tiny_prepared(tmp / "data", ATTRS, {"train": 32, "val": 8, "test": 8}, size=64,
                              schemes=("a", "g"))
    attrs = tmp / "attrs.yaml"
    attrs.write_text("dataset: tiny\nattributes:\n" + "".join(
        f"  - {{name: {a}, crop: {'g' if a == 'Eyeglasses' else 'a'}}}\n" for a in ATTRS))
    subprocess.run([str(G2S), "gen", "--attributes", str(attrs), "--out", str(tmp / "nets"),
                    "--data-root", str(data), *SMALL_ARGS], check=True, cwd=tmp)
    return tmp, tmp / "nets" / "tiny", data


def test_caffe_time_runs_on_the_small_variant(small_tree):
    tmp, nets, _ = small_tree
    r = subprocess.run([str(CAFFE), "time", "-model", str(nets / "step1" / "train_val.prototxt"),
                        "-iterations", "2"], capture_output=True, text=True, cwd=tmp,
                       env={**os.environ, "GLOG_minloglevel": "0"})
    assert r.returncode == 0, r.stderr[-2000:]
    ms = float(re.search(r"Average Forward-Backward: ([\d.]+) ms", r.stderr).group(1))
    assert ms > 0


def test_data_and_label_layers_stay_in_step(small_tree):
    """TEST phase: the labels each loss sees are the LMDB's columns of the same images."""
    import caffe
    import lmdb

    from g2s_caffe.core.layout import parse_label_datum

    _, nets, data = small_tree
    env = lmdb.open(str(data / "val" / "labels_lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        truth = np.array([parse_label_datum(v)[1] for _, v in txn.cursor()])
    env.close()
    net = caffe.Net(str(nets / "step1" / "train_val.prototxt"), caffe.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data_index"].data, net.blobs["labels_index"].data)
    rows = net.blobs["labels_index"].data.astype(int)
    for t, a in enumerate(ATTRS):
        np.testing.assert_array_equal(net.blobs[f"label_{a}"].data.ravel(), truth[rows, t])
    assert net.blobs["data"].data.shape == (4, 3, 56, 56)
    for step, t in ((2, 1), (3, 1), (2, 3)):
        net = caffe.Net(str(nets / f"step{step}" / ATTRS[t] / "train_val.prototxt"), caffe.TEST)
        net.forward()
        rows = net.blobs["labels_index"].data.astype(int)
        np.testing.assert_array_equal(net.blobs["label"].data.ravel(), truth[rows, t])
    src = read_net(nets / "step3" / "Eyeglasses" / "train_val.prototxt")
    assert {layer.data_param.source.split("/")[-1] for layer in src.layer
            if layer.type == "Data" and layer.name == "data"} == {"g_lmdb"}


@pytest.fixture(scope="module")
def step1_model(small_tree):
    """`caffe train` on the tiny data: the small Step 1 net for a few iterations."""
    tmp, nets, _ = small_tree
    (tmp / "runs" / "tiny" / "step1" / "snapshots").mkdir(parents=True)   # the trainer's job
    r = subprocess.run([str(CAFFE), "train", "-solver", str(nets / "step1" / "solver.prototxt")],
                       capture_output=True, text=True, cwd=tmp,
                       env={**os.environ, "GLOG_minloglevel": "0"})
    assert r.returncode == 0, r.stderr[-3000:]
    model = tmp / "runs" / "tiny" / "step1" / "snapshots" / "step1_iter_12.caffemodel"
    assert model.is_file()
    return model, r.stderr


def test_small_step1_trains_with_caffe_train(step1_model):
    _, log = step1_model
    for a in ATTRS:   # every per-attribute loss trains, every accuracy is reported on TEST
        assert re.search(rf"Train net output #\d+: loss_{a} = [\d.]+", log), a
        assert re.search(rf"Test net output #\d+: accuracy_{a} = [\d.]+", log), a
    assert "Optimization Done." in log


@pytest.mark.parametrize("mode", ["copy", "random"])
def test_step2_head_init_from_step1(mode, small_tree, step1_model, tmp_path):
    import caffe

    from g2s_caffe.methods.g2s.surgery import derive_attribute_init

    _, nets, _ = small_tree
    model, _ = step1_model
    b = caffe.Net(str(nets / "step1" / "deploy.prototxt"), str(model), caffe.TEST)
    t = 2
    out = tmp_path / "init.caffemodel"
    info = derive_attribute_init(model, nets / "step1" / "train_val.prototxt",
                                 nets / "step2" / ATTRS[t] / "train_val.prototxt", t, mode, out)
    c = caffe.Net(str(nets / "step2" / ATTRS[t] / "deploy.prototxt"), str(out), caffe.TEST)
    for name in [n for n in b.params if n != "fc8_joint"]:
        for got, want in zip(c.params[name], b.params[name]):
            np.testing.assert_array_equal(got.data, want.data, err_msg=name)
    rows_w = b.params["fc8_joint"][0].data[2 * t:2 * t + 2]
    rows_b = b.params["fc8_joint"][1].data[2 * t:2 * t + 2]
    w, bias = c.params["fc8_attr"][0].data, c.params["fc8_attr"][1].data
    if mode == "copy":
        np.testing.assert_array_equal(w, rows_w)
        np.testing.assert_array_equal(bias, rows_b)
        assert "rows [4, 5]" in info["head"]
    else:
        assert not np.allclose(w, rows_w) and not bias.any()
        assert 0.003 < w.std() < 0.03
        assert "random" in info["head"]
    # Step 3 from this C_i: the trained head is inherited by name.
    out3 = tmp_path / "init3.caffemodel"
    derive_attribute_init(out, None, nets / "step3" / ATTRS[t] / "train_val.prototxt", t, "copy", out3)
    d = caffe.Net(str(nets / "step3" / ATTRS[t] / "deploy.prototxt"), str(out3), caffe.TEST)
    np.testing.assert_array_equal(d.params["fc8_attr"][0].data, w)


def test_head_init_errors_are_clear(small_tree, step1_model, tmp_path):
    from g2s_caffe.core.errors import G2SError
    from g2s_caffe.methods.g2s.surgery import derive_attribute_init

    _, nets, _ = small_tree
    model, _ = step1_model
    dst = nets / "step2" / ATTRS[0] / "train_val.prototxt"
    with pytest.raises(G2SError, match="mode 'zero'"):
        derive_attribute_init(model, None, dst, 0, "zero", tmp_path / "x.caffemodel")
    with pytest.raises(G2SError, match="attribute index 9 is out of range"):
        derive_attribute_init(model, None, dst, 9, "copy", tmp_path / "x.caffemodel")
    with pytest.raises(G2SError, match="no such caffemodel"):
        derive_attribute_init(tmp_path / "none.caffemodel", None, dst, 0, "copy", tmp_path / "x.caffemodel")
    assert not (tmp_path / "x.caffemodel").exists()


def test_v1_caffemodel_with_legacy_blob_shapes_is_read(small_tree, step1_model, tmp_path):
    """VGG-Face's public caffemodel is in Caffe's V1 format ("layers", 4-D legacy shapes)."""
    import caffe
    from caffe.proto import caffe_pb2

    from g2s_caffe.methods.g2s.surgery import derive_attribute_init

    _, nets, _ = small_tree
    model, _ = step1_model
    new = caffe_pb2.NetParameter()
    new.ParseFromString(model.read_bytes())
    v1 = caffe_pb2.NetParameter(name="v1")
    for layer in new.layer:
        if not layer.blobs or layer.name == "fc8_joint":
            continue
        old = v1.layers.add(name=layer.name)
        for blob in layer.blobs:
            dims = [1] * (4 - len(blob.shape.dim)) + list(blob.shape.dim)
            old.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3]).data.extend(blob.data)
    src = tmp_path / "v1.caffemodel"
    src.write_bytes(v1.SerializeToString())
    out = tmp_path / "init.caffemodel"
    info = derive_attribute_init(src, None, nets / "step1" / "train_val.prototxt", 0, "copy", out)
    assert len(info["copied"]) == 15 and list(info["not_copied"]) == ["fc8_joint"]
    a = caffe.Net(str(nets / "step1" / "deploy.prototxt"), str(model), caffe.TEST)
    b = caffe.Net(str(nets / "step1" / "deploy.prototxt"), str(out), caffe.TEST)
    for name in info["copied"]:
        for x, y in zip(a.params[name], b.params[name]):
            np.testing.assert_array_equal(x.data, y.data, err_msg=name)
