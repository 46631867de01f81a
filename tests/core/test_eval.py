"""Evaluation with real Caffe on tiny nets and a tiny real prepared dataset.

The reference for "what Caffe's Data layer sees" is Caffe itself: the train_val net's TEST
phase reads the same LMDB through its Data layer (decode, centre crop, mean); evaluation's own
decode + crop + mean must give the same probabilities.
"""
from __future__ import annotations

import numpy as np
import pytest

from support import make_tiny_prepared

pytestmark = pytest.mark.caffe

ATTRS = ["Bald", "Eyeglasses", "Smiling"]
MEAN = (104.0, 117.0, 123.0)
CROP = 28


def _body(n, data, outputs: int, joint: int | None):
    """conv -> relu -> fc(outputs) [-> reshape (N, T, 2)] -> softmax "prob"."""
    from caffe import layers as L

    n.conv1 = L.Convolution(data, num_output=4, kernel_size=3, stride=2,
                            weight_filler=dict(type="gaussian", std=0.05), bias_filler=dict(type="constant", value=0.1))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.fc = L.InnerProduct(n.relu1, num_output=outputs, weight_filler=dict(type="gaussian", std=0.02),
                          bias_filler=dict(type="gaussian", std=0.5))
    if joint:
        n.fc_r = L.Reshape(n.fc, shape=dict(dim=[0, joint, 2]))
        n.prob = L.Softmax(n.fc_r, axis=2)
    else:
        n.prob = L.Softmax(n.fc)


def make_tiny_net(dirpath, lmdb_path, n_test: int, joint: int | None, seed: int):
    """Write train_val.prototxt (TEST data layer only), deploy.prototxt and random weights."""
    import caffe
    from caffe import layers as L, params as P

    dirpath.mkdir(parents=True, exist_ok=True)
    outputs = 2 * joint if joint else 2
    tv = caffe.NetSpec()
    tv.data, tv.index = L.Data(source=str(lmdb_path), backend=P.Data.LMDB, batch_size=n_test, ntop=2,
                               transform_param=dict(crop_size=CROP, mean_value=list(MEAN), mirror=False),
                               include=dict(phase=caffe.TEST), name="data")
    _body(tv, tv.data, outputs, joint)
    (dirpath / "train_val.prototxt").write_text(str(tv.to_proto()))
    dp = caffe.NetSpec()
    dp.data = L.Input(shape=dict(dim=[1, 3, CROP, CROP]))
    _body(dp, dp.data, outputs, joint)
    (dirpath / "deploy.prototxt").write_text(str(dp.to_proto()))
    caffe.set_random_seed(seed)
    net = caffe.Net(str(dirpath / "deploy.prototxt"), caffe.TEST)
    net.save(str(dirpath / "final.caffemodel"))
    return dirpath / "deploy.prototxt", dirpath / "final.caffemodel", dirpath / "train_val.prototxt"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    return make_tiny_prepared(root / "data", ATTRS, counts={"test": 20}, schemes=("a", "g"), seed=3)


def _caffe_reference(train_val, weights, n_test):
    import caffe

    net = caffe.Net(str(train_val), caffe.TEST, weights=str(weights))
    net.forward()
    return net.blobs["prob"].data.reshape(n_test, -1, 2)[:, :, 1].copy(), net.blobs["index"].data.copy()


def test_joint_and_single_nets_match_caffes_data_layer(prepared, tmp_path):
    from g2s_caffe.core.evaluation import evaluate, metrics
    from g2s_caffe.core import layout

    data = layout.open_prepared(prepared)
    joint = make_tiny_net(tmp_path / "step1", data.lmdb("test", "a"), 20, joint=3, seed=1)
    single = make_tiny_net(tmp_path / "step3_Eyeglasses", data.lmdb("test", "g"), 20, joint=None, seed=2)
    items = [evaluate.EvalNet("Bald", 0, "a", *joint), evaluate.EvalNet("Smiling", 2, "a", *joint),
             evaluate.EvalNet("Eyeglasses", None, "g", *single)]
    res = evaluate.evaluate("mixed", items, data, "test", batch=7, show_progress=False)  # 7: a ragged last batch

    ref_joint, index = _caffe_reference(joint[2], joint[1], 20)
    ref_single, _ = _caffe_reference(single[2], single[1], 20)
    assert index.tolist() == list(range(20))           # the Data layer read in key order, like eval
    assert res.attributes == ["Bald", "Smiling", "Eyeglasses"]
    np.testing.assert_allclose(res.probs[:, 0], ref_joint[:, 0], atol=1e-5)
    np.testing.assert_allclose(res.probs[:, 1], ref_joint[:, 2], atol=1e-5)
    np.testing.assert_allclose(res.probs[:, 2], ref_single[:, 0], atol=1e-5)
    assert res.probs.std() > 1e-3                      # not all the same answer

    # Labels: straight from the labels LMDB, reordered to the evaluated attributes.
    import lmdb
    with lmdb.open(str(data.lmdb("test", "labels")), readonly=True, lock=False) as env, env.begin() as txn:
        lab = np.array([layout.parse_label_datum(v)[1] for _, v in txn.cursor()])
    np.testing.assert_array_equal(res.labels, lab[:, [0, 2, 1]])
    want = metrics.score(res.probs, res.labels, res.attributes)
    assert [s.accuracy for s in res.scores] == [s.accuracy for s in want]


def test_outputs_are_written_for_compare(prepared, tmp_path):
    import csv

    from g2s_caffe.core.evaluation import evaluate
    from g2s_caffe.core import layout

    data = layout.open_prepared(prepared)
    net = make_tiny_net(tmp_path / "n", data.lmdb("test", "a"), 20, joint=3, seed=5)
    items = [evaluate.EvalNet(a, i, "a", *net) for i, a in enumerate(ATTRS)]
    res = evaluate.evaluate("steps_1", items, data, "test", show_progress=False)
    files = evaluate.write_run_outputs(res, tmp_path / "out")
    assert sorted(f.name for f in files) == ["accuracy.png", "metrics.csv", "probs.csv", "probs.npz", "summary.json"]
    z = np.load(tmp_path / "out" / "probs.npz")
    np.testing.assert_allclose(z["probs"], res.probs, atol=1e-6)
    assert z["keys"].tolist() == res.keys and z["attributes"].tolist() == ATTRS
    assert z["probs"].dtype == np.float32                  # Caffe's values, stored exactly
    rows = list(csv.DictReader(open(tmp_path / "out" / "metrics.csv")))
    assert [r["attribute"] for r in rows] == ATTRS
    from g2s_caffe.core.evaluation import stats
    for r, s in zip(rows, res.scores):
        assert float(r["accuracy"]) == pytest.approx(100 * s.accuracy, abs=1e-3)
        assert int(r["tp"]) + int(r["tn"]) + int(r["fp"]) + int(r["fn"]) == 20
        iv = stats.wilson_interval(s.correct, 20).scaled(100)
        assert (float(r["accuracy_lo"]), float(r["accuracy_hi"])) == pytest.approx((iv.lo, iv.hi), abs=1e-3)
        assert float(r["balanced_accuracy_lo"]) <= float(r["balanced_accuracy_hi"])
        assert r["predictions"] == "probs.npz"            # relative to metrics.csv
    import json
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    lo, hi = summary["mean_accuracy_ci"]
    assert lo <= summary["mean_accuracy"] <= hi and summary["bootstrap_resamples"] == stats.RESAMPLES
    probs_csv = list(csv.reader(open(tmp_path / "out" / "probs.csv")))
    assert probs_csv[0] == ["key", "p_Bald", "p_Eyeglasses", "p_Smiling", "y_Bald", "y_Eyeglasses", "y_Smiling"]
    assert len(probs_csv) == 21


def test_bad_nets_and_data_are_clear_errors(prepared, tmp_path):
    from g2s_caffe.core.evaluation import evaluate
    from g2s_caffe.core import layout
    from g2s_caffe.core.errors import G2SError

    data = layout.open_prepared(prepared)
    deploy, weights, tv = make_tiny_net(tmp_path / "n", data.lmdb("test", "a"), 20, joint=None, seed=1)
    with pytest.raises(G2SError, match="missing"):
        evaluate.evaluate("r", [evaluate.EvalNet("Bald", None, "a", deploy, tmp_path / "nope.caffemodel", tv)],
                          data, "test", show_progress=False)
    with pytest.raises(G2SError, match="no attribute 'Young'"):
        evaluate.evaluate("r", [evaluate.EvalNet("Young", None, "a", deploy, weights, tv)], data, "test",
                          show_progress=False)
    with pytest.raises(G2SError, match="crop scheme 'h' was not prepared"):
        evaluate.evaluate("r", [evaluate.EvalNet("Bald", None, "h", deploy, weights, tv)], data, "test",
                          show_progress=False)
    bad_tv = tmp_path / "bad.prototxt"
    bad_tv.write_text(tv.read_text().replace('name: "data"', 'name: "images"', 1))
    with pytest.raises(G2SError, match="no TEST-phase layer named 'data'"):
        evaluate.eval_transform(bad_tv)


# ---------------------------------------------------------------- `g2s eval` on run directories
CLI_ATTRS = [("Bald", "d"), ("Eyeglasses", "g"), ("Smiling", "a")]
TRAIN_CFG = """net: {variant: small, crop_size: 28, fc_dim: 16}
solver: {batch_size: 8, test_batch_size: 8, max_iter_step1: 20, max_iter_step23: 10,
         test_interval: 10, test_iter: 2, snapshot: 10, display: 5}
poll_seconds: 0.1
progress_seconds: 1
"""


def make_prepared_for_runs(path, test: int = 12):
    """A tiny prepared dataset `g2s train` can train on (32 px images, the crops of CLI_ATTRS)."""
    return make_tiny_prepared(path, [n for n, _ in CLI_ATTRS], counts={"train": 48, "val": 16, "test": test},
                              size=32, schemes=("a", "d", "g"), seed=9)


def make_runs(tmp_path, prepared_dir):
    """Runs steps_1 and steps_1_2_3 trained by the real `g2s train` (small nets, a few
    iterations, no Model A): evaluation plumbing, not accuracy."""
    import yaml

    from g2s_caffe import cli

    (tmp_path / "attrs.yaml").write_text(yaml.safe_dump({"attributes": [
        {"name": n, "crop": c} for n, c in CLI_ATTRS]}))
    (tmp_path / "cfg.yaml").write_text(TRAIN_CFG)
    root = tmp_path / "runs"
    for steps in ("1", "1,2,3"):
        assert cli.main(["train", "--data", str(prepared_dir), "--runs", str(root), "--attributes",
                         str(tmp_path / "attrs.yaml"), "--config", str(tmp_path / "cfg.yaml"),
                         "--weights-a", "none", "--steps", steps]) == 0
    return root


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    prep = make_prepared_for_runs(tmp / "data")
    return make_runs(tmp, prep), prep


def test_g2s_eval_all_runs_then_compare(generated, capsys):
    import csv
    import io

    from g2s_caffe import cli
    from g2s_caffe.core.evaluation import metrics

    root, prep = generated
    assert cli.main(["eval", "--runs", str(root), "--split", "test", "--batch", "5"]) == 0
    out = capsys.readouterr().out
    assert "steps_1: test 12 images, 3 attributes" in out and "steps_1_2_3: test 12 images" in out
    rows = list(csv.DictReader(open(root / "eval_test.csv")))
    assert [(r["run"], r["attribute"], r["scheme"]) for r in rows] == \
        [("steps_1", n, "a") for n, _ in CLI_ATTRS] + [("steps_1_2_3", n, c) for n, c in CLI_ATTRS]
    for name in ("steps_1", "steps_1_2_3"):
        z = np.load(root / name / "eval" / "test" / "probs.npz")
        want = metrics.score(z["probs"], z["labels"], [n for n, _ in CLI_ATTRS])
        got = [r for r in rows if r["run"] == name]
        assert [float(r["accuracy"]) for r in got] == pytest.approx([100 * s.accuracy for s in want], abs=1e-3)
        assert [float(r["balanced_accuracy"]) for r in got] == \
            pytest.approx([100 * s.balanced_accuracy for s in want], abs=1e-3)
        assert (root / name / "eval" / "test" / "accuracy.png").stat().st_size > 1000
    # The Step-3 nets of different attributes are different nets: different answers.
    z = np.load(root / "steps_1_2_3" / "eval" / "test" / "probs.npz")
    assert not np.allclose(z["probs"][:, 0], z["probs"][:, 1])

    # Every value has its interval beside it, and the prediction file is reachable from the CSV.
    from g2s_caffe.core.evaluation import stats
    for r in rows:
        n, right = int(r["n"]), int(r["tp"]) + int(r["tn"])
        iv = stats.wilson_interval(right, n).scaled(100)
        assert float(r["accuracy_lo"]) == pytest.approx(iv.lo, abs=1e-3)
        assert (root / r["predictions"]).resolve() == (root / r["run"] / "eval" / "test" / "probs.npz").resolve()

    # One run only, and the results go straight into `g2s compare` (3 of CelebA's 40 attributes).
    assert cli.main(["eval", "--runs", str(root), "--run", "steps_1", "--split", "val",
                     "--out", str(root / "val.csv")]) == 0
    assert {r["run"] for r in csv.DictReader(open(root / "val.csv"))} == {"steps_1"}
    capsys.readouterr()
    assert cli.main(["compare", str(root / "eval_test.csv"), "--dataset", "celeba",
                     "--out", str(root / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "missing: 37 of 40 celeba attributes" in out
    assert "inside our 95 % interval for" in out and "no interval" not in out
    t1 = {r["run"]: r for r in csv.DictReader(open(root / "cmp" / "table1_celeba.csv"))}
    assert t1["steps_1"]["reproduced_lo"] != "" and t1["steps_1_2_3"]["attributes"] == "3"
    # The two runs image by image, from the results file alone.
    assert cli.main(["compare", str(root / "eval_test.csv"), "--paired", "steps_1", "steps_1_2_3",
                     "--format", "csv", "--out", str(root / "cmp")]) == 0
    paired = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [p["attribute"] for p in paired] == [n for n, _ in CLI_ATTRS] + ["mean accuracy", "mean balanced accuracy"]
    assert (root / "cmp" / "paired_steps_1_vs_steps_1_2_3.png").stat().st_size > 1000


def test_unfinished_attributes_are_refused_or_evaluated_with_only_finished(generated, capsys, tmp_path):
    """A run whose Step-3 job for Bald is not finished (as after `g2s train --attributes
    Eyeglasses,Smiling`): refused, naming the option; with --only-finished the other two."""
    import csv
    import json
    import shutil

    from g2s_caffe import cli

    root, _ = generated
    runs = tmp_path / "runs"
    shutil.copytree(root / "steps_1_2_3", runs / "steps_1_2_3", ignore=shutil.ignore_patterns("eval"))
    manifest = runs / "steps_1_2_3" / "manifest.json"
    m = json.loads(manifest.read_text())
    for j in m["jobs"]:
        if j["id"] in ("step2/Bald", "step3/Bald"):
            j.update(status="pending", final=None)
    manifest.write_text(json.dumps(m))
    assert cli.main(["eval", "--runs", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "1 of 3 attributes have no finished net (Bald; jobs step3/Bald)" in err
    assert "pass --only-finished to evaluate the 2 finished ones" in err
    assert cli.main(["eval", "--runs", str(runs), "--only-finished"]) == 0
    out = capsys.readouterr().out
    assert "steps_1_2_3: NOT evaluated (1 attribute(s) without a finished net): Bald" in out
    rows = list(csv.DictReader(open(runs / "eval_test.csv")))
    assert [r["attribute"] for r in rows] == ["Eyeglasses", "Smiling"]
    summary = json.loads((runs / "steps_1_2_3" / "eval" / "test" / "summary.json").read_text())
    assert summary["not_evaluated"] == ["Bald"] and summary["attributes"] == 2


def test_g2s_eval_errors(generated, capsys, tmp_path):
    from g2s_caffe import cli

    root, _ = generated
    assert cli.main(["eval", "--runs", str(root), "--run", "steps_9"]) == 2
    assert "no run named 'steps_9'" in capsys.readouterr().err
    other = make_tiny_prepared(tmp_path / "other", [n for n, _ in CLI_ATTRS], counts={"val": 4}, size=32)
    assert cli.main(["eval", "--runs", str(root), "--data", str(other)]) == 2
    assert "split 'test' was not prepared" in capsys.readouterr().err
    assert cli.main(["eval", "--runs", str(root), "--data", str(other), "--split", "val"]) == 2
    assert "crop scheme 'd' was not prepared" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["eval", "--runs", str(tmp_path / "empty")]) == 2
    assert "no runs" in capsys.readouterr().err
    assert cli.main(["eval", "--runs", str(other)]) == 2    # a prepared dataset is not a run
    assert "expected 'g2s-run/2'" in capsys.readouterr().err


@pytest.mark.caffe
def test_gpu_on_a_cpu_only_build_is_refused_up_front(tmp_path, capsys):
    from g2s_caffe import cli

    """A CPU-only Caffe would abort the process on the first GPU net; say so instead."""
    from g2s_caffe.core.device import caffe_build_info

    if caffe_build_info().get("cmake_flags", {}).get("CPU_ONLY") != "ON":
        pytest.skip("this Caffe has CUDA")
    (tmp_path / "runs").mkdir()
    assert cli.main(["eval", "--runs", str(tmp_path / "runs"), "--gpu", "0"]) == 2
    assert "CPU-only build" in capsys.readouterr().err
