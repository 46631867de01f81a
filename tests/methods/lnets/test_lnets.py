"""LNets (part 2 of the LNets+ANet baseline) end to end with the real `caffe train` (CPU) on a tiny
fixture of raw images with face boxes: `g2s lnets` killed with SIGKILL mid-training and resumed,
LNets+ANet end to end (`g2s anet --faces lnets`) next to ANet on prep boxes in `g2s eval` and
`g2s compare`, the Fig. 7 evaluation (`g2s localize`), `g2s predict` on photos, "no face"."""
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

from support import check_finished_run, make_raw_prepared

pytestmark = pytest.mark.caffe
from support import ROOT
COMMITTED = ROOT / "prototxt" / "celeba" / "lnets"
NAMES = ["Smiling", "Eyeglasses", "Bald"]
COUNTS = {"train": 32, "val": 16, "test": 12}
RAW = (160, 128)          # raw image width, height
LNETS_CFG = """variant: small
solver: {batch_size: 4, test_batch_size: 4, max_iter_lnet_o: 60, max_iter_lnet_s: 20, test_interval: 20,
         snapshot: 10, display: 5}
threshold: {face_images: 16, background_crops: 12}
poll_seconds: 0.1
progress_seconds: 1
"""
ANET_CFG = """variant: small
solver: {batch_size: 8, test_batch_size: 8, max_iter_pretrain: 20, max_iter_finetune: 10,
         test_interval: 10, snapshot: 10, display: 5}
feature_chunk: 8
poll_seconds: 0.1
progress_seconds: 1
"""


def g2s(*argv, check=True, timeout=300):
    env = {**os.environ, "GLOG_minloglevel": "2"}
    r = subprocess.run([sys.executable, "-m", "g2s_caffe.cli", *map(str, argv)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("lnets")
    make_raw_prepared(root / "data", NAMES, COUNTS, people=4, size=32, raw_size=RAW)
    (root / "attrs.yaml").write_text("attributes:\n" + "".join(f"  - {{name: {n}, crop: a}}\n" for n in NAMES))
    (root / "lnets.yaml").write_text(LNETS_CFG)
    (root / "anet.yaml").write_text(ANET_CFG)
    return root


def lnets_args(tiny, runs):
    return ["lnets", "--data", tiny / "data", "--runs", runs, "--attributes", tiny / "attrs.yaml",
            "--config", tiny / "lnets.yaml", "--weights-alexnet", "none"]


def anet_args(tiny, runs, faces):
    return ["anet", "--data", tiny / "data", "--runs", runs, "--attributes", tiny / "attrs.yaml",
            "--config", tiny / "anet.yaml", "--faces", faces]


@pytest.fixture(scope="module")
def chain(tiny):
    """`g2s lnets` killed (SIGKILL) while LNet_o trains, once it has snapshots; then rerun."""
    from g2s_caffe.core.runs import load_run

    runs = tiny / "runs"
    snaps = runs / "lnets" / "lnet_o" / "snapshots"
    env = {**os.environ, "GLOG_minloglevel": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "g2s_caffe.cli", *map(str, lnets_args(tiny, runs))], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(snaps.glob("*_iter_*.solverstate"))) < 2 and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "g2s lnets ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = load_run(runs / "lnets")
    assert killed.stages["whole"]["status"] == "done" and "head_shoulder" not in killed.stages
    pid = killed.job("lnets/lnet_o").extra["attempts"][0]["pid"]
    time.sleep(0.5)   # the Caffe child dies with the driver (PR_SET_PDEATHSIG)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    its = sorted(int(p.stem.split("_iter_")[1]) for p in snaps.glob("*.solverstate"))
    assert its and its[-1] < 60
    r = g2s(*lnets_args(tiny, runs))
    return runs / "lnets", its, r


def test_lnets_resumed_run_finishes_with_a_consistent_manifest(chain):
    from g2s_caffe.core.runs import load_run

    root, its, r = chain
    run = load_run(root)
    assert run.method == "lnets" and run.run == "lnets" and "steps" not in run.config
    assert run.pretrained["random_init"] and "RANDOM INIT" in run.pretrained["WARNING"]
    o, s = run.job("lnets/lnet_o"), run.job("lnets/lnet_s")
    assert o.status == s.status == "done" and o.final.iteration == 60 and s.final.iteration == 20
    resumed = o.extra["attempts"][-1]["resumed_from"]
    assert len(o.extra["attempts"]) == 2 and resumed in its, (o.extra["attempts"], its)
    assert o.init.source == s.init.source == "random" and o.init.path is None
    check_finished_run(run, ("lnets/lnet_o", "lnets/lnet_s"), ("whole", "head_shoulder", "threshold"))
    # LNet_s's windows are LNet_o's answers: its data stage names LNet_o's final weights
    assert run.stages["head_shoulder"]["inputs"]["lnet_o"] == o.final.sha256
    th = run.stages["threshold"]
    crops = th["backgrounds_by_kind"]["crops"]
    assert th["faces"] == COUNTS["val"] and 1 <= crops <= 12 and th["backgrounds"] == crops + 20   # + registry photos
    assert (root / "threshold" / "threshold.png").stat().st_size > 5000
    check_threshold_against_its_scores(root / "threshold", th)
    assert "face threshold" in r.stdout and "g2s localize --lnets" in r.stdout
    again = g2s(*lnets_args(root.parent.parent, root.parent))
    assert "finished before, kept" in again.stdout and "already done" in again.stdout
    assert load_run(root).stages == run.stages


def check_threshold_against_its_scores(folder: Path, stage: dict) -> None:
    """The threshold stage's numbers recomputed from the scores it wrote (scores.csv, 6 digits):
    each image's side of the threshold, the face and background rates, their balanced accuracy,
    and that no cut between the written scores does better."""
    with open(folder / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    kinds = [x["kind"] for x in rows]
    scores = np.array([float(x["score"]) for x in rows])
    face = np.array([k == "face" for k in kinds])
    assert stage["faces"] == face.sum() and stage["backgrounds"] == (~face).sum() and set(kinds) == {"face", "background"}
    above = scores >= stage["threshold"]
    assert [int(x["above_threshold"]) for x in rows] == above.astype(int).tolist()
    assert stage["face_rate"] == pytest.approx(above[face].mean())
    assert stage["background_rate"] == pytest.approx((~above[~face]).mean())
    assert stage["balanced_accuracy"] == pytest.approx((above[face].mean() + (~above[~face]).mean()) / 2)
    best = max(((scores[face] >= c).mean() + (scores[~face] < c).mean()) / 2 for c in np.append(scores, np.inf))
    assert stage["balanced_accuracy"] == pytest.approx(best)
    assert stage["separable"] == (scores[face].min() > scores[~face].max())


def test_lnets_learn_from_whole_images_and_tags_only(chain, tiny):
    """The run copies read the run's LMDBs: whole images letterboxed, LNet_o's windows, the
    prepared labels; no box file is an input of the training stages."""
    import cv2
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from data_prep.lmdb_build import read_items
    from g2s_caffe.methods.lnets.params import SMALL_LNET
    from g2s_caffe.core.runs import load_run

    root, _, _ = chain
    run = load_run(root)
    for which, what in (("lnet_o", "whole"), ("lnet_s", "head_shoulder")):
        net = text_format.Merge((root / which / "train_val.prototxt").read_text(), caffe_pb2.NetParameter())
        assert {l.data_param.source for l in net.layer if l.type == "Data"} == {
            str(root / "data" / s / f"{w}_lmdb") for s in ("train", "val") for w in (what, "labels")}
    for name in ("whole", "head_shoulder"):
        assert "bbox" not in json.dumps(run.stages[name]["inputs"])
    prepared = read_items(tiny / "data" / "train" / "labels_lmdb")
    assert read_items(root / "data" / "train" / "labels_lmdb") == prepared
    hs = read_items(root / "data" / "train" / "head_shoulder_lmdb")
    whole = read_items(root / "data" / "train" / "whole_lmdb")
    assert [k for k, _ in hs] == [k for k, _ in whole] == [k for k, _ in prepared]
    for (_, wv), (_, hv) in zip(whole[:5], hs[:5]):
        for raw in (wv, hv):
            d = caffe_pb2.Datum.FromString(raw)
            img = cv2.imdecode(np.frombuffer(d.data, np.uint8), cv2.IMREAD_COLOR)
            assert img.shape == (SMALL_LNET.input_size,) * 2 + (3,)
        x1, y1, x2, y2, score = caffe_pb2.Datum.FromString(hv).float_data     # LNet_o's window rides along
        assert 0 <= x1 < x2 <= RAW[0] and 0 <= y1 < y2 <= RAW[1] and np.isfinite(score)
    with open(root / "data" / "train" / "head_shoulder_windows.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == COUNTS["train"]


def test_image_stage_resumes_after_an_interruption(tiny, tmp_path, monkeypatch):
    from g2s_caffe.core import layout
    from g2s_caffe.methods.lnets import data as ld
    from g2s_caffe.methods.lnets.raw import RawImages

    data = layout.open_prepared(tiny / "data")
    raw = RawImages(data)
    make = ld.whole_maker(64, 95)
    calls = {"n": 0}

    def failing(key, img):
        calls["n"] += 1
        if calls["n"] == 11:
            raise KeyboardInterrupt("simulated kill")
        return make(key, img)

    from data_prep import lmdb_build

    monkeypatch.setattr(lmdb_build, "COMMIT_EVERY", 4)
    with pytest.raises(KeyboardInterrupt):
        ld.build_images(tmp_path / "a", data, raw, "train", "whole", 64, failing, show=False)
    assert (tmp_path / "a" / "data" / "train" / "whole_lmdb.partial").is_dir()
    resumed = ld.build_images(tmp_path / "a", data, raw, "train", "whole", 64, make, show=False)
    straight = ld.build_images(tmp_path / "b", data, raw, "train", "whole", 64, make, show=False)
    assert resumed == straight and resumed["entries"] == COUNTS["train"]
    assert calls["n"] == 11                          # the resumed build did not redo the committed part


@pytest.fixture(scope="module")
def e2e(chain, tiny):
    """ANet on LNets' windows and ANet on the prepared boxes, in one RUNS, then `g2s eval`."""
    runs = tiny / "runs"
    lnets_anet = g2s(*anet_args(tiny, runs, "lnets"))
    g2s(*anet_args(tiny, runs, "prep"))
    ev = g2s("eval", "--runs", runs, "--split", "test", "--resamples", "200")
    return runs, lnets_anet, ev


def test_lnets_anet_end_to_end_reads_lnets_windows(e2e, tiny):
    from g2s_caffe.methods.lnets_anet.faces import read_faces_csv
    from g2s_caffe.core.runs import load_run

    runs, r, _ = e2e
    run, part1 = load_run(runs / "lnets_anet"), load_run(runs / "anet_prep_boxes")
    assert run.method == "lnets_anet" and part1.method == "anet" and run.run == "lnets_anet" and part1.run == "anet_prep_boxes"
    assert run.config["faces"] == "lnets" and part1.config["faces"] == "prep" and "faces" not in part1.stages
    lnets = load_run(runs / "lnets")
    faces = run.stages["faces"]
    assert faces["inputs"]["lnets"]["lnet_s"] == lnets.job("lnets/lnet_s").final.sha256
    assert faces["inputs"]["lnets"]["threshold"] == lnets.stages["threshold"]["threshold"]
    for split in ("train", "val"):
        windows = read_faces_csv(run.path(faces["outputs"][split]["path"]))
        assert len(windows) == COUNTS[split]
        assert all(0 <= x1 < x2 <= RAW[0] and 0 <= y1 < y2 <= RAW[1] for x1, y1, x2, y2 in windows.values())
        assert run.stages["data"]["inputs"][f"faces_{split}"]["windows"] == faces["outputs"][split]
    assert run.stages["features"]["inputs"]["windows"] == faces["outputs"]["val"]
    # the same pixel path as part 1, only the box differs: the regions differ, their size does not
    from data_prep.lmdb_build import read_items
    a = read_items(runs / "lnets_anet" / "data" / "train" / "region_lmdb")
    b = read_items(runs / "anet_prep_boxes" / "data" / "train" / "region_lmdb")
    assert [k for k, _ in a] == [k for k, _ in b] and a != b
    assert "on LNets' face windows" in r.stdout and "below the face threshold" in r.stdout


def test_eval_and_compare_tell_the_two_anet_runs_apart(e2e, tmp_path):
    runs, _, ev = e2e
    assert "lnets: an LNets run (face localization, no attribute results): skipped here" in ev.stdout
    with open(runs / "eval_test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_run = {}
    for x in rows:
        by_run.setdefault(x["run"], []).append(x)
    assert set(by_run) == {"anet_prep_boxes", "lnets_anet"}
    assert all(x["method"] == {"anet_prep_boxes": "anet"}.get(x["run"], "lnets_anet") and int(x["n"]) == COUNTS["test"]
               for x in rows)
    ev_dir = runs / "lnets_anet" / "eval" / "test"
    with open(ev_dir / "faces.csv", newline="") as f:
        faces = list(csv.DictReader(f))
    assert len(faces) == COUNTS["test"] and {x["rule"] for x in faces} == {
        "cascade with pruning; below the threshold: the face box anyway, flagged no_face"}
    extra = json.loads((ev_dir / "lnets_anet.json").read_text())["faces"]
    assert extra["images"] == COUNTS["test"] and extra["no_face"] == sum(x["no_face"] == "1" for x in faces)
    assert extra["face"] + extra["no_face"] == COUNTS["test"]
    assert "found no face" in ev.stdout
    c = g2s("compare", runs / "eval_test.csv", "--dataset", "celeba", "--run", "lnets_anet", "--out", tmp_path,
            "--resamples", "100")
    assert all(n in c.stdout for n in NAMES)
    md = g2s("compare", runs / "eval_test.csv", "--dataset", "celeba", "--run", "anet_prep_boxes", "--format",
             "markdown", "--out", tmp_path / "b", "--resamples", "100").stdout
    assert "reproduced (anet_prep_boxes)" in md


def test_localize_writes_the_fig7_evaluation_for_lnets_and_mtcnn(chain, tiny):
    root, _, _ = chain
    r = g2s("localize", "--lnets", root, "--data", tiny / "data", "--split", "test", "--pictures", "3")
    out = root / "localize" / "tiny_test"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"LNets", "MTCNN (our port)"}
    for s in summary.values():
        assert s["images"] == s["references"] == COUNTS["test"]
        lo, hi = s["tpr_at_fppi_0.1"]["ci95"]
        assert 0 <= lo <= s["tpr_at_fppi_0.1"]["value"] <= hi <= 1
    assert summary["LNets"]["detections"] == COUNTS["test"]          # one face box per image
    top1 = summary["LNets"]["top1_hit_rate"]
    assert top1["images"] == COUNTS["test"] and top1["ci95"][0] <= top1["value"] <= top1["ci95"][1]
    with open(out / "localizations.csv", newline="") as f:
        locs = list(csv.DictReader(f))
    assert len(locs) == COUNTS["test"]
    for x in locs:
        assert (x["face"] == "face") == (float(x["score"]) >= float(x["threshold"]))
        assert (x["x1"] == "") == (x["face"] == "no face")
    with open(out / "roc.csv", newline="") as f:
        assert {x["detector"] for x in csv.DictReader(f)} == {"LNets", "MTCNN (our port)"}
    assert len(list((out / "pictures").glob("*.png"))) == 3 and (out / "loc_eval.png").stat().st_size > 5000
    assert "TPR at FPPI 0.1" in r.stdout and "no face" in r.stdout


def test_a_face_free_photo_is_no_face_through_the_trained_cascade(e2e, tmp_path):
    """A face-free image the threshold stage scored below the threshold (a crop away from the
    face, or a registry photo): `g2s localize` and `g2s predict --run lnets_anet` answer "no face"
    (no attribute guessed); a face image of the fixture gets a box and attributes or "no face",
    never a crash."""
    import cv2

    from g2s_caffe.core import layout
    from g2s_caffe.methods.lnets.config import ThresholdConfig
    from g2s_caffe.methods.lnets.stages import threshold_items
    from g2s_caffe.methods.lnets.raw import RawImages

    runs, _, _ = e2e
    with open(runs / "lnets" / "threshold" / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    below = sorted((float(x["score"]), x["image"]) for x in rows
                   if x["kind"] == "background" and x["above_threshold"] == "0")
    assert below, "no background image scored below the face threshold"
    data = layout.open_prepared(runs.parent / "data")
    items, _, _ = threshold_items(data, "val", ThresholdConfig(face_images=16, background_crops=12), RawImages(data))
    img = {name: load for name, _, load in items}[below[0][1]]()
    photo = tmp_path / "face_free.png"
    cv2.imwrite(str(photo), img)
    loc = g2s("localize", photo, "--lnets", runs / "lnets", "--out", tmp_path / "loc")
    assert f"{photo}: no face" in loc.stdout and "no face (score below the threshold" in loc.stdout
    face = sorted((runs.parent / "data_raw" / "img_celeba").glob("test_*.jpg"))[0]
    p = g2s("predict", photo, face, "--runs", runs, "--run", "lnets_anet", "--out", tmp_path / "pred")
    assert f"{photo}: no face found" in p.stdout and "face threshold" in p.stdout
    doc = json.loads((tmp_path / "pred" / "face_free.json").read_text())
    assert doc["faces"] == [] and doc["note"].startswith("no face") and doc["run"] == "lnets_anet"
    one = json.loads((tmp_path / "pred" / f"{face.stem}.json").read_text())
    for f in one["faces"]:
        assert [a["attribute"] for a in f["attributes"]] == NAMES and len(f["box"]) == 4
    bad = g2s("predict", photo, "--runs", runs, "--run", "anet_prep_boxes", "--out", tmp_path / "p2", check=False)
    assert bad.returncode == 2 and "--faces lnets" in bad.stderr


def test_alexnet_weights_through_the_driver(tmp_path, tiny):
    """The method derives each job's init from BVLC AlexNet by name (sha256 checked); a missing
    file says what to get, and the small variant refuses AlexNet weights."""
    from test_lnet_nets import write_alexnet_shaped

    from g2s_caffe.core.errors import G2SError
    from g2s_caffe.methods.lnets.job_hooks import LNetsMethod
    from g2s_caffe.core.runs import Job, Run, sha256_file

    alexnet = tmp_path / "bvlc_alexnet.caffemodel"
    want = write_alexnet_shaped(alexnet)
    (tmp_path / "run" / "lnet_o").mkdir(parents=True)
    job = Job(id="lnets/lnet_o", step=0, attribute=None, attr_index=None, scheme="whole", dir="lnet_o",
              solver="", train_val=str(COMMITTED / "lnet_o_train_val.prototxt"), deploy="", log="", seed=3,
              extra={"net": "lnet_o"})
    run = Run(root=tmp_path / "run", run="lnets", dataset="celeba", data="", attributes=[],
              pretrained={"path": str(alexnet), "sha256": sha256_file(alexnet), "random_init": False}, config={},
              caffe={}, git_commit=None, created="", jobs=[job], method="lnets")
    init = LNetsMethod().resolve_init(run, job)
    assert init.source == "alexnet" and init.path == "lnet_o/init.caffemodel"
    assert init.derived["copied"] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert sha256_file(run.path(init.path)) == init.sha256
    from g2s_caffe.core.nets.weights import read_caffemodel
    got = read_caffemodel(run.path(init.path))
    assert np.array_equal(got["conv3"][0].reshape(want["conv3"][0].shape), want["conv3"][0])
    job.init = init
    assert LNetsMethod().resolve_init(run, job) is init                  # reused, hash checked
    alexnet.write_bytes(b"changed")
    job.init = None
    with pytest.raises(G2SError, match="changed since"):
        LNetsMethod().resolve_init(run, job)
    r = g2s(*lnets_args(tiny, tmp_path / "runs")[:-1], tmp_path / "nope.caffemodel", "--variant", "full", check=False)
    assert r.returncode == 2 and "bvlc_alexnet.caffemodel, ~233 MB" in r.stderr and "--weights-alexnet none" in r.stderr
    r = g2s(*lnets_args(tiny, tmp_path / "runs")[:-1], tmp_path / "bvlc_alexnet.caffemodel", check=False)
    assert r.returncode == 2 and "are not AlexNet's" in r.stderr
    assert not (tmp_path / "runs" / "lnets" / "manifest.json").exists()
