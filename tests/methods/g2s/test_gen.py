"""`g2s gen`: the committed tree is reproducible, custom lists work, bad input is explained."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from g2s_caffe import cli

pytestmark = pytest.mark.caffe

from support import ROOT
G2S = Path(sys.executable).parent / "g2s"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_regenerating_the_committed_tree_is_byte_identical(tmp_path):
    r = subprocess.run([str(G2S), "gen", "--all"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fresh, committed = _tree(tmp_path / "prototxt"), _tree(ROOT / "prototxt")
    assert sorted(fresh) == sorted(committed)
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert not changed, f"prototxt/ is stale, run `make prototxt`: {changed[:5]}"
    assert len(fresh) == 2 * (3 + 2 * 3 * 40) + 6 + 6  # + CelebA's ANet and LNets (LNets+ANet baseline)


def _gen(tmp_path, monkeypatch, capsys, *argv) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    code = cli.main(["gen", *argv])
    return code, capsys.readouterr().err


BAD_LISTS = {
    "unknown crop": ("attributes:\n  - {name: Bald, crop: d}\n  - {name: Smiling, crop: z}\n",
                     r"attributes\[2\]: unknown crop scheme 'z' for Smiling"),
    "duplicate": ("attributes:\n  - {name: Bald, crop: d}\n  - {name: Bald, crop: a}\n",
                  r"attributes\[2\]: duplicate attribute 'Bald' \(first at attributes\[1\]\)"),
    "invalid name": ("attributes:\n  - {name: Big Nose, crop: f}\n",
                     r"attributes\[1\]: 'Big Nose' is not a valid layer name"),
    "no list": ("dataset: x\n", r"'attributes' must be a non-empty list"),
}


@pytest.mark.parametrize("case", sorted(BAD_LISTS))
def test_bad_attribute_files_give_clear_errors(case, tmp_path, monkeypatch, capsys):
    text, message = BAD_LISTS[case]
    path = tmp_path / "attrs.yaml"
    path.write_text(text)
    code, err = _gen(tmp_path, monkeypatch, capsys, "--attributes", str(path), "--monitor-size", "10")
    assert code == 2
    assert str(path) in err
    assert re.search(message, err), err
    assert not (tmp_path / "prototxt").exists()


@pytest.mark.parametrize("argv, message", [
    (["--variant", "small", "--batch-size", "32", "--iter-size", "3"], "--iter-size 3 must be >= 1 and divide"),
    (["--variant", "small", "--crop-size", "80"], "--crop-size 80 must be between 1 and --image-size 64"),
    (["--all", "--variant", "small"], "--all regenerates the committed tree"),
    (["--dataset", "mine"], "no packaged attribute list for 'mine'"),
    (["--batch-size", "big"], None),
])
def test_bad_options_give_clear_errors(argv, message, tmp_path, monkeypatch, capsys):
    if message is None:   # argparse's own type check
        with pytest.raises(SystemExit):
            _gen(tmp_path, monkeypatch, capsys, *argv)
        return
    code, err = _gen(tmp_path, monkeypatch, capsys, *argv)
    assert code == 2 and message in err, err


def test_custom_list_small_variant_tree(tmp_path, monkeypatch, capsys):
    from google.protobuf import text_format
    from caffe.proto import caffe_pb2

    path = tmp_path / "mine.yaml"
    path.write_text("dataset: mine\nattributes:\n  - {name: Glasses, crop: g}\n  - {name: Beard, crop: b}\n")
    argv = ["--attributes", str(path), "--variant", "small", "--iter-size", "4", "--monitor-size", "100"]
    code, _ = _gen(tmp_path, monkeypatch, capsys, *argv)
    assert code == 0
    files = sorted(p.relative_to(tmp_path / "prototxt").as_posix() for p in (tmp_path / "prototxt").rglob("*.*"))
    from g2s_caffe.methods.anet.gen import FILES as ANET_FILES
    from g2s_caffe.methods.lnets.gen import LNETS_FILES

    assert files == sorted(["mine/step1/" + f for f in ("train_val.prototxt", "deploy.prototxt", "solver.prototxt")]
                           + [f"mine/step{s}/{a}/{f}" for s in (2, 3) for a in ("Glasses", "Beard")
                              for f in ("train_val.prototxt", "deploy.prototxt", "solver.prototxt")]
                           + [f"mine/anet/{f}.prototxt" for f in ANET_FILES]    # the baseline's, same list
                           + [f"mine/lnets/{f}.prototxt" for f in LNETS_FILES])
    anet = caffe_pb2.NetParameter()
    text_format.Merge((tmp_path / "prototxt/mine/anet/finetune_train_val.prototxt").read_text(), anet)
    assert [l.inner_product_param.num_output for l in anet.layer if l.name == "fc_attr"] == [2]
    lnet = caffe_pb2.NetParameter()
    text_format.Merge((tmp_path / "prototxt/mine/lnets/lnet_s_train_val.prototxt").read_text(), lnet)
    assert [l.inner_product_param.num_output for l in lnet.layer if l.name == "fc_attr"] == [2]
    assert [l.transform_param.crop_size for l in lnet.layer if l.name == "data"] == [163, 163]   # small
    solver_text = (tmp_path / "prototxt/mine/step3/Beard/solver.prototxt").read_text()
    assert solver_text.splitlines()[0] == f"# g2s gen --attributes {path} --monitor-size 100 --variant small --iter-size 4"
    solver = caffe_pb2.SolverParameter()
    text_format.Merge(solver_text, solver)
    assert (solver.iter_size, solver.solver_mode, solver.net) == (
        4, caffe_pb2.SolverParameter.CPU, "prototxt/mine/step3/Beard/train_val.prototxt")
    net = caffe_pb2.NetParameter()
    text_format.Merge((tmp_path / solver.net).read_text(), net)
    (train_data,) = [layer for layer in net.layer if layer.name == "data" and layer.include[0].phase == 0]
    assert train_data.data_param.batch_size == 32 // 4   # the effective batch is kept
    assert train_data.data_param.source == "data/mine/train/b_lmdb"
    (conv1,) = [layer for layer in net.layer if layer.name == "conv1_1"]
    assert train_data.transform_param.crop_size == 56 and conv1.convolution_param.num_output < 64

    # A shorter list: the files of dropped attributes go, nothing else is touched.
    keep = tmp_path / "prototxt" / "mine" / "notes.txt"
    keep.write_text("mine")
    path.write_text("dataset: mine\nattributes:\n  - {name: Glasses, crop: g}\n")
    assert _gen(tmp_path, monkeypatch, capsys, *argv)[0] == 0
    assert not (tmp_path / "prototxt/mine/step2/Beard").exists()
    assert (tmp_path / "prototxt/mine/step2/Glasses/train_val.prototxt").is_file() and keep.is_file()


def test_one_attribute_list_builds_and_loads(tmp_path, monkeypatch, capsys):
    """T = 1: no Slice is needed for Steps 2/3; every net still loads in Caffe."""
    import caffe

    from support import make_tiny_prepared

    data = make_tiny_prepared(tmp_path / "data", ["Smiling"], {"train": 4, "val": 4}, size=64)
    path = tmp_path / "one.yaml"
    path.write_text("dataset: one\nattributes:\n  - {name: Smiling, crop: a}\n")
    code, _ = _gen(tmp_path, monkeypatch, capsys, "--attributes", str(path), "--variant", "small",
                   "--data-root", str(data), "--batch-size", "4", "--test-batch-size", "4", "--monitor-size", "4")
    assert code == 0
    for folder in ("step1", "step2/Smiling", "step3/Smiling"):
        net = caffe.Net(str(tmp_path / "prototxt/one" / folder / "train_val.prototxt"), caffe.TEST)
        net.forward()
        label = net.blobs["label_Smiling" if folder == "step1" else "label"].data
        assert label.size == 4 and set(label.ravel()) <= {0.0, 1.0}


def test_reroot_sources_keeps_split_and_lmdb_names():
    from google.protobuf import text_format
    from caffe.proto import caffe_pb2

    from g2s_caffe.core.nets.data_layers import reroot_sources

    net = caffe_pb2.NetParameter()
    text_format.Merge((ROOT / "prototxt/lfwa/step3/Eyeglasses/train_val.prototxt").read_text(), net)
    moved = reroot_sources(net, "/data/prepared/lfwa")
    sources = sorted(layer.data_param.source for layer in moved.layer if layer.type == "Data")
    assert sources == ["/data/prepared/lfwa/test/g_lmdb", "/data/prepared/lfwa/test/labels_lmdb",
                       "/data/prepared/lfwa/train/g_lmdb", "/data/prepared/lfwa/train/labels_lmdb"]
    assert any(layer.data_param.source.startswith("data/lfwa/") for layer in net.layer if layer.type == "Data")
