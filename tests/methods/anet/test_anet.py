"""`g2s anet` end to end with the real `caffe train` (CPU) on tiny real LMDBs: the data stage,
identity pre-training -> attribute fine-tuning -> features -> SVMs, killed with SIGKILL
mid-training and resumed, then `g2s eval` (the same outputs as a G2S run) and `g2s compare`."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from support import check_finished_run, make_tiny_prepared, person_of

pytestmark = pytest.mark.caffe
from support import ROOT
NAMES = ["Smiling", "Eyeglasses", "Bald"]
PEOPLE = 4
RUN = "anet_prep_boxes"      # --faces prep (the default): ANet on g2s prep's face boxes
COUNTS = {"train": 48, "val": 32, "test": 24}
CFG = """variant: small
solver: {batch_size: 8, test_batch_size: 8, max_iter_pretrain: 120, max_iter_finetune: 20,
         test_interval: 10, snapshot: 10, display: 5}
feature_chunk: 16
poll_seconds: 0.1
progress_seconds: 1
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("anet")
    make_tiny_prepared(root / "data", NAMES, counts=COUNTS, size=32, schemes=("a", "c"), people=PEOPLE)
    (root / "attrs.yaml").write_text("attributes:\n" + "".join(f"  - {{name: {n}, crop: a}}\n" for n in NAMES))
    (root / "cfg.yaml").write_text(CFG)
    return root


def anet_cmd(tiny, runs, *extra):
    return [sys.executable, "-m", "g2s_caffe.cli", "anet", "--data", str(tiny / "data"), "--runs", str(runs),
            "--attributes", str(tiny / "attrs.yaml"), "--config", str(tiny / "cfg.yaml"), *extra]


def g2s(*argv, check=True):
    env = {**os.environ, "GLOG_minloglevel": "2"}
    r = subprocess.run([sys.executable, "-m", "g2s_caffe.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def chain(tiny):
    """`g2s anet` killed (SIGKILL) during pre-training once it has snapshots, then rerun."""
    from g2s_caffe.core.runs import load_run

    runs = tiny / "runs"
    snaps = runs / RUN / "pretrain" / "snapshots"
    proc = subprocess.Popen(anet_cmd(tiny, runs), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(snaps.glob("*_iter_*.solverstate"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "g2s anet ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = load_run(runs / RUN)
    pid = killed.job("anet/pretrain").extra["attempts"][0]["pid"]
    time.sleep(0.5)   # the Caffe child dies with the driver (PR_SET_PDEATHSIG)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    its = sorted(int(p.stem.split("_iter_")[1]) for p in snaps.glob("*.solverstate"))
    assert its and its[-1] < 120
    # What the rerun resumes from: a snapshot pair the shared runner accepts.  The siamese net's
    # two branches share their params by name: both layers store the blobs, the solverstate has
    # one history per distinct param.
    from g2s_caffe.core.jobs.runner import check_snapshot, snapshots
    why = [check_snapshot(s) for s in snapshots(snaps.parent, "anet_pretrain")]
    assert any(w is None for w in why), f"no pre-training snapshot is usable for a resume: {why}"
    r = g2s(*anet_cmd(tiny, runs)[3:])
    return runs / RUN, its, r


def test_resumed_run_finishes_with_a_consistent_manifest(chain):
    from g2s_caffe.core.runs import load_run

    root, its, r = chain
    run = load_run(root)
    assert run.method == "anet" and run.run == RUN and "steps" not in run.config
    assert run.config["faces"] == "prep" and "faces" not in run.stages
    assert run.pretrained["random_init"] and run.pretrained["path"] is None
    pre, fine = run.job("anet/pretrain"), run.job("anet/finetune")
    assert pre.status == fine.status == "done"
    assert pre.final.iteration == 120 and fine.final.iteration == 20
    resumed = pre.extra["attempts"][-1]["resumed_from"]
    assert len(pre.extra["attempts"]) == 2 and resumed in its, (pre.extra["attempts"], its)
    assert pre.init.source == "random" and pre.init.path is None
    # fine-tuning started from pre-training's final weights, by hash
    assert fine.init.source == "anet/pretrain" and fine.init.sha256 == pre.final.sha256
    check_finished_run(run, ("anet/pretrain", "anet/finetune"), ("data", "features", "svm"))
    assert run.stages["svm"]["anet_weights_sha256"] == fine.final.sha256
    assert run.stages["features"]["inputs"]["weights"]["sha256"] == fine.final.sha256
    assert run.stages["svm"]["inputs"]["features"] == run.stages["features"]["outputs"]["features"]
    assert run.stages["data"]["identities"] == PEOPLE == pre.extra["identities"]
    assert "held-out part by identity" in r.stdout
    # a rerun keeps everything
    again = g2s(*anet_cmd(root.parent.parent, root.parent)[3:])
    assert "2 job(s) already done" in again.stdout and "SVMs finished before, kept" in again.stdout
    assert load_run(root).stages == run.stages


def test_run_copies_read_the_data_stage_and_classify_the_train_people(chain):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    root, _, _ = chain
    net = text_format.Merge((root / "pretrain" / "train_val.prototxt").read_text(), caffe_pb2.NetParameter())
    head = [l for l in net.layer if l.name == "fc_identity"][0]
    assert head.inner_product_param.num_output == PEOPLE           # the data's K, not the paper's 8000
    sources = {l.data_param.source for l in net.layer if l.type == "Data"}
    assert sources == {str(root / "data" / "train" / f"{w}_lmdb") for w in ("region", "partner", "identity")}
    fine = text_format.Merge((root / "finetune" / "train_val.prototxt").read_text(), caffe_pb2.NetParameter())
    assert {l.data_param.source for l in fine.layer if l.type == "Data"} == {
        str(root / "data" / s / f"{w}_lmdb") for s in ("train", "val") for w in ("region", "labels")}


def test_the_data_stage_pairs_each_image_with_another_of_its_person(chain):
    import cv2
    from caffe.proto import caffe_pb2

    from data_prep.lmdb_build import read_items
    from g2s_caffe.core import layout
    from g2s_caffe.methods.anet.params import SMALL_ANET

    root, _, _ = chain
    d = root / "data" / "train"
    region, partner, ident, labels = (read_items(d / f"{w}_lmdb") for w in ("region", "partner", "identity", "labels"))
    prepared = read_items(root.parent.parent / "data" / "train" / "labels_lmdb")
    keys = [k for k, _ in prepared]
    assert [k for k, _ in region] == [k for k, _ in partner] == [k for k, _ in ident] == [k for k, _ in labels] == keys
    assert [v for _, v in labels] == [v for _, v in prepared]             # a copy of the labels
    people = sorted({person_of("train", i, PEOPLE) for i in range(len(keys))})
    assert (d / "identity_classes.txt").read_text().split() == [str(p) for p in people]
    row_of = {caffe_pb2.Datum.FromString(rv).data: i for i, (_, rv) in enumerate(region)}
    assert len(row_of) == len(keys)
    for i, ((_, rv), (_, pv), (_, iv)) in enumerate(zip(region, partner, ident)):
        r, p = caffe_pb2.Datum.FromString(rv), caffe_pb2.Datum.FromString(pv)
        img = cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (SMALL_ANET.region_size,) * 2 + (3,) and r.label == p.label == i
        index, cls = layout.parse_identity_datum(iv)
        assert index == i and people[cls] == person_of("train", i, PEOPLE)
        j = row_of[p.data]                          # whose region the partner is
        assert j != i and person_of("train", j, PEOPLE) == person_of("train", i, PEOPLE)
        assert j == (i + PEOPLE) % len(keys)        # the next image of the person, cyclically


def test_eval_writes_the_same_outputs_as_g2s_and_compare_reads_them(chain, tmp_path):
    from g2s_caffe.core.evaluation.predictions import load_predictions

    root, _, _ = chain
    out = tmp_path / "eval_test.csv"
    r = g2s("eval", "--runs", str(root.parent), "--split", "test", "--out", str(out), "--resamples", "200")
    assert f"{RUN}: test 24 images, 3 attributes: mean accuracy" in r.stdout
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [x["attribute"] for x in rows] == NAMES
    assert {x["run"] for x in rows} == {RUN} and {x["method"] for x in rows} == {"anet"}
    assert {x["scheme"] for x in rows} == {"c"} and all(int(x["n"]) == COUNTS["test"] for x in rows)
    ev = root / "eval" / "test"
    for f in ("probs.npz", "probs.csv", "metrics.csv", "summary.json", "accuracy.png", "lnets_anet.json"):
        assert (ev / f).stat().st_size > 0, f
    pred = load_predictions(ev / "probs.npz")
    assert pred.attributes == NAMES and len(pred.keys) == COUNTS["test"]
    for row, t in zip(rows, range(len(NAMES))):
        right = int((pred.correct()[:, t]).sum())
        assert int(row["tp"]) + int(row["tn"]) == right
    extra = json.loads((ev / "lnets_anet.json").read_text())
    assert extra["anet"]["sha256"] and "not a calibrated probability" in extra["probability"]
    assert extra["faces"]["source"] == "prep"
    c = g2s("compare", str(out), "--dataset", "celeba", "--run", RUN, "--out", str(tmp_path / "cmp"),
            "--resamples", "200")
    assert all(n in c.stdout for n in NAMES) and (tmp_path / "cmp" / "compare_celeba.csv").is_file()


def test_without_identities_anet_says_what_to_get(tmp_path):
    make_tiny_prepared(tmp_path / "data", NAMES, counts={"train": 8, "val": 8}, size=32, schemes=("c",))
    (tmp_path / "cfg.yaml").write_text(CFG)
    (tmp_path / "attrs.yaml").write_text("attributes:\n" + "".join(f"  - {{name: {n}, crop: a}}\n" for n in NAMES))
    r = g2s(*anet_cmd(tmp_path, tmp_path / "runs")[3:], check=False)
    assert r.returncode == 2
    assert "identity_CelebA.txt" in r.stderr and "Anno" in r.stderr and "g2s prep" in r.stderr
    assert not (tmp_path / "runs" / RUN / "manifest.json").exists()


def test_data_stage_and_features_resume_after_an_interruption(chain, tiny, tmp_path, monkeypatch):
    """A crash half-way through the data stage or the features leaves committed parts that the
    rerun continues from; the results equal an uninterrupted build's."""
    from data_prep.lmdb_build import content_sha256
    from g2s_caffe.core import layout
    from g2s_caffe.methods.anet import data as anet_data, faces as anet_faces, features, stages
    from g2s_caffe.methods.anet.params import SMALL_ANET
    from g2s_caffe.core.runs import load_run

    data = layout.open_prepared(tiny / "data")
    real = anet_faces.region_jpeg
    calls = {"n": 0}

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 30:
            raise KeyboardInterrupt("simulated kill")
        return real(*a, **k)

    from data_prep import lmdb_build

    monkeypatch.setattr(lmdb_build, "COMMIT_EVERY", 8)
    monkeypatch.setattr(anet_faces, "region_jpeg", failing)
    with pytest.raises(KeyboardInterrupt):
        anet_data.build(tmp_path / "run", data, SMALL_ANET.region_size, "train", "val", show=False)
    assert (tmp_path / "run" / "data" / "train" / "region_lmdb.partial").is_dir()
    monkeypatch.setattr(anet_faces, "region_jpeg", real)
    resumed = anet_data.build(tmp_path / "run", data, SMALL_ANET.region_size, "train", "val", show=False)
    root, _, _ = chain
    done = load_run(root).stages["data"]["outputs"]
    for name, out in resumed["outputs"].items():
        assert out["sha256"] == done[name]["sha256"], name        # the chain's uninterrupted build
    assert content_sha256(tmp_path / "run" / "data" / "train" / "partner_lmdb")[1] == COUNTS["train"]

    # features: the first chunk is written, the second forward "crashes"
    run = load_run(root)
    net = stages.one_pass(run, data)
    sha = run.job("anet/finetune").final.sha256
    out = tmp_path / "features_val.npz"
    orig = features.OnePass.__call__
    seen = {"n": 0}

    def crash_on_second_chunk(self, jpegs, keys):
        seen["n"] += 1
        if seen["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return orig(self, jpegs, keys)

    monkeypatch.setattr(features.OnePass, "__call__", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        features.extract(net, data, "val", out, sha, feature_batch=16, chunk=16, show=False)
    assert len(list((tmp_path / "features_val.chunks").glob("chunk_*.npz"))) == 1 and not out.exists()
    monkeypatch.setattr(features.OnePass, "__call__", orig)
    features.extract(net, data, "val", out, sha, feature_batch=16, chunk=16, show=False)
    got, ref = features.load_features(out), features.load_features(run.path(run.stages["features"]["outputs"]["features"]["path"]))
    assert list(got["keys"]) == list(ref["keys"]) and np.allclose(got["features"], ref["features"], atol=1e-6)
    assert got["features"].shape == (COUNTS["val"], SMALL_ANET.n_patches, SMALL_ANET.fc_dim)
    assert list(got["identities"]) == [person_of("val", i, PEOPLE) for i in range(COUNTS["val"])]


def test_lfwa_protocol_reuses_an_anet_run_and_trains_only_the_svms(chain, tmp_path):
    """--anet-from: the CelebA run's fine-tuned ANet, SVMs on the other dataset's train split
    (LFWA has no val split), no Caffe job trained here."""
    from g2s_caffe.core.runs import load_run

    root, _, _ = chain
    make_tiny_prepared(tmp_path / "lfwa", NAMES, counts={"train": 20, "test": 12}, size=32, schemes=("c",),
                       seed=5, people=3)
    (tmp_path / "cfg.yaml").write_text(CFG)
    (tmp_path / "attrs.yaml").write_text("attributes:\n" + "".join(f"  - {{name: {n}, crop: a}}\n" for n in NAMES))
    cmd = ["anet", "--data", str(tmp_path / "lfwa"), "--runs", str(tmp_path / "runs"), "--attributes",
           str(tmp_path / "attrs.yaml"), "--config", str(tmp_path / "cfg.yaml"), "--anet-from", str(root)]
    r = g2s(*cmd)
    assert "ANet from" in r.stdout and "SVMs on train" in r.stdout
    run = load_run(tmp_path / "runs" / RUN)
    other = load_run(root)
    for jid in ("anet/pretrain", "anet/finetune"):
        assert run.job(jid).final.sha256 == other.job(jid).final.sha256
        assert run.job(jid).extra["shared_from"].endswith(jid)
    assert not (tmp_path / "runs" / RUN / "data").exists() and "data" not in run.stages
    assert run.stages["svm"]["split"] == "train" and run.stages["svm"]["held_out_by"] == "identity"
    assert run.stages["svm"]["anet_weights_sha256"] == other.job("anet/finetune").final.sha256
    ev = g2s("eval", "--runs", str(tmp_path / "runs"), "--split", "test", "--resamples", "100")
    assert f"{RUN}: test 12 images" in ev.stdout
    # another variant than the source run's is refused before anything is written
    bad = g2s(*cmd[:4], str(tmp_path / "runs2"), *cmd[5:], "--variant", "full", check=False)
    assert bad.returncode == 2 and "--variant" in bad.stderr
