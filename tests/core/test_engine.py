"""The engine: the Caffe built from source works from the venv (pycaffe and the tools).

Everything here runs the real Caffe on CPU: a tiny net written with NetSpec, data in a
real LMDB, `caffe train` from a solver file, `caffe time`, snapshots and resume.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.caffe

VENV_BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = VENV_BIN / name
    assert path.exists(), f"{path} missing: make setup links the Caffe tools into the venv"
    return str(path)


def _write_blob_lmdb(path: Path, n: int = 256, seed: int = 0) -> None:
    """Two Gaussian blobs in 8-D, stored as raw float Datums (label in Datum.label)."""
    import lmdb
    from caffe.proto import caffe_pb2

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, 8)).astype(np.float32) + labels[:, None] * 1.5
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(n):
            d = caffe_pb2.Datum(channels=8, height=1, width=1, label=int(labels[i]))
            d.float_data.extend(x[i].tolist())
            txn.put(f"{i:08d}".encode(), d.SerializeToString())
    env.close()


def _tiny_net(source: str, batch: int):
    import caffe
    from caffe import layers as L, params as P

    n = caffe.NetSpec()
    n.data, n.label = L.Data(source=source, backend=P.Data.LMDB, batch_size=batch, ntop=2)
    n.ip1 = L.InnerProduct(n.data, num_output=16, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=2, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def _solver(net_path: Path, prefix: Path, max_iter: int, snapshot: int):
    from caffe.proto import caffe_pb2

    s = caffe_pb2.SolverParameter()
    s.net = str(net_path)
    s.base_lr = 0.05
    s.lr_policy = "inv"
    s.gamma = 1e-4
    s.power = 0.5
    s.momentum = 0.9
    s.weight_decay = 5e-4
    s.max_iter = max_iter
    s.display = 10
    s.snapshot = snapshot
    s.snapshot_prefix = str(prefix)
    s.random_seed = 7
    s.solver_mode = caffe_pb2.SolverParameter.CPU
    return s


@pytest.fixture()
def tiny_job(tmp_path):
    db = tmp_path / "blobs_lmdb"
    _write_blob_lmdb(db)
    net = tmp_path / "net.prototxt"
    net.write_text(str(_tiny_net(str(db), 32)))
    solver = tmp_path / "solver.prototxt"
    solver.write_text(str(_solver(net, tmp_path / "snap", max_iter=200, snapshot=100)))
    return tmp_path, net, solver


def _run_caffe(args, cwd):
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    r = subprocess.run([_tool("caffe"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stderr


def _losses(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"Iteration \d+.*?, loss = ([-\d.e+]+)", log)]


def test_pycaffe_imports_from_the_source_build():
    import caffe
    from caffe.proto import caffe_pb2  # noqa: F401

    prefix = (VENV_BIN.parent / "caffe-prefix").read_text().strip()
    assert caffe.__file__.startswith(prefix), (caffe.__file__, prefix)
    assert (Path(prefix) / "BUILD_INFO.json").is_file()


def test_caffe_pb2_round_trips_a_net_parameter():
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = _tiny_net("some/lmdb", 4)
    binary = caffe_pb2.NetParameter.FromString(net.SerializeToString())
    text = text_format.Merge(text_format.MessageToString(net), caffe_pb2.NetParameter())
    assert binary == net == text
    assert [l.type for l in net.layer] == ["Data", "InnerProduct", "ReLU", "InnerProduct", "SoftmaxWithLoss"]


def test_caffe_net_loads_a_generated_net(tiny_job):
    import caffe

    _, net_path, _ = tiny_job
    net = caffe.Net(str(net_path), caffe.TRAIN)
    out = net.forward()
    assert net.blobs["data"].data.shape == (32, 8, 1, 1)
    assert np.isfinite(out["loss"]) and out["loss"] > 0


def test_caffe_train_loss_decreases_and_snapshots(tiny_job):
    tmp, _, solver = tiny_job
    log = _run_caffe(["train", f"--solver={solver}"], tmp)
    losses = _losses(log)
    assert len(losses) >= 15, log[-2000:]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3]), losses
    for it in (100, 200):
        assert (tmp / f"snap_iter_{it}.caffemodel").stat().st_size > 0
        assert (tmp / f"snap_iter_{it}.solverstate").stat().st_size > 0


def test_caffe_train_resumes_from_a_solverstate(tiny_job):
    import caffe
    from caffe.proto import caffe_pb2

    tmp, net_path, solver = tiny_job
    _run_caffe(["train", f"--solver={solver}"], tmp)
    # Resume the finished 200-iteration job with a longer schedule.
    longer = tmp / "solver_300.prototxt"
    longer.write_text(str(_solver(net_path, tmp / "snap", max_iter=300, snapshot=100)))
    log = _run_caffe(["train", f"--solver={longer}", f"--snapshot={tmp / 'snap_iter_200.solverstate'}"], tmp)
    assert "Resuming from" in log
    iters = [int(m) for m in re.findall(r"Iteration (\d+), loss", log)]
    assert iters and min(iters) >= 200 and max(iters) >= 290, iters
    state = caffe_pb2.SolverState.FromString((tmp / "snap_iter_300.solverstate").read_bytes())
    assert state.iter == 300
    # The resumed weights moved away from the snapshot they started from.
    a = caffe.Net(str(net_path), str(tmp / "snap_iter_200.caffemodel"), caffe.TEST)
    b = caffe.Net(str(net_path), str(tmp / "snap_iter_300.caffemodel"), caffe.TEST)
    assert not np.allclose(a.params["ip1"][0].data, b.params["ip1"][0].data)


def test_caffe_time_runs(tiny_job):
    tmp, net_path, _ = tiny_job
    log = _run_caffe(["time", f"--model={net_path}", "--iterations=5"], tmp)
    assert re.search(r"Average Forward-Backward: [\d.]+ ms", log), log[-2000:]


@pytest.mark.parametrize("tool", ["convert_imageset", "compute_image_mean"])
def test_data_tools_are_on_the_venv_path(tool, tmp_path):
    assert shutil.which(tool, path=str(VENV_BIN)) is not None
    r = subprocess.run([_tool(tool), "--help"], capture_output=True, text=True, timeout=60)
    assert tool in (r.stdout + r.stderr)


def test_convert_imageset_writes_an_lmdb_the_data_layer_reads(tmp_path):
    """The stock tool on real JPEGs, then Caffe's Data layer decodes them."""
    import caffe
    import cv2
    from caffe import layers as L, params as P

    rng = np.random.default_rng(1)
    lines = []
    for i in range(6):
        img = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"img{i}.jpg"), img)
        lines.append(f"img{i}.jpg {i % 2}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    r = subprocess.run([_tool("convert_imageset"), "--encoded", "--resize_height=16", "--resize_width=16",
                        f"{tmp_path}/", str(tmp_path / "list.txt"), str(tmp_path / "img_lmdb")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    n = caffe.NetSpec()
    n.data, n.label = L.Data(source=str(tmp_path / "img_lmdb"), backend=P.Data.LMDB, batch_size=6, ntop=2)
    (tmp_path / "read.prototxt").write_text(str(n.to_proto()))
    net = caffe.Net(str(tmp_path / "read.prototxt"), caffe.TEST)
    net.forward()
    assert net.blobs["data"].data.shape == (6, 3, 16, 16)
    assert net.blobs["label"].data.tolist() == [0, 1, 0, 1, 0, 1]
