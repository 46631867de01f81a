"""Localization evaluation (Fig. 7) on constructed detections with known curves, and the two
detector adapters (our MTCNN port, LNets) on real photos."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.lnets import loc_eval as le


def _img(name, dets, refs):
    boxes = [d[:4] for d in dets]
    scores = [d[4] for d in dets]
    return le.ImageDetections(name, np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), np.asarray(refs, float).reshape(-1, 4))


REF = [0, 0, 100, 100]
# IoU of [0, 0, 100, 100] with [0, 0, 100, 100 * k] is 1/k (k >= 1): boxes with known IoU
def _tall(iou):
    return [0, 0, 100, 100 / iou]


IMAGES = [
    _img("a.jpg", [[*_tall(0.9), 0.9]], [REF]),                       # TP (IoU 0.9)
    _img("b.jpg", [[300, 300, 400, 400, 0.8], [*_tall(0.75), 0.7]], [REF]),   # FP, then TP (0.75)
    _img("c.jpg", [[*_tall(0.6), 0.6], [*_tall(0.95), 0.5]], [REF]),  # TP (0.6), then a duplicate
    _img("d.jpg", [], [REF]),                                         # missed: no detection
    _img("e.jpg", [[10, 10, 50, 50, 0.85]], []),                      # face-free image: FP
]


def test_roc_at_iou_05_has_the_hand_computed_points():
    curve = le.roc(IMAGES, 0.5)
    # thresholds 0.9 0.85 0.8 0.7 0.6 0.5: TP 1 1 1 2 3 3, FP 0 1 2 2 2 3; 4 references, 5 images
    assert curve.thresholds[1:].tolist() == [0.9, 0.85, 0.8, 0.7, 0.6, 0.5]
    assert curve.tp.tolist() == [0, 1, 1, 1, 2, 3, 3]
    assert curve.fp.tolist() == [0, 0, 1, 2, 2, 2, 3]
    assert np.allclose(curve.tpr, np.array([0, 1, 1, 1, 2, 3, 3]) / 4)
    assert np.allclose(curve.fppi, np.array([0, 0, 1, 2, 2, 2, 3]) / 5)
    assert le.tpr_at_fppi(curve, 0.1) == 0.25                         # only the first TP
    assert le.tpr_at_fppi(curve, 0.4) == 0.75
    assert le.tpr_at_fppi(curve, 0.0) == 0.25


def test_recall_vs_iou_steps_at_the_detections_overlaps():
    rec = le.recall_vs_iou(IMAGES, ious=(0.5, 0.65, 0.8, 0.92), fppi=0.4)
    # at FPPI <= 0.4 (at most 2 FPs in 5 images), in score order: IoU 0.5 -> a, b's 2nd, c's 1st
    # (3 TPs); 0.65 -> c's 1st box (0.6) becomes the 3rd FP before c's 0.95 box matches: 2 TPs;
    # 0.8 -> b's 0.75 box is the 3rd FP: a alone; 0.92 -> even a's 0.9 box is an FP: none
    assert rec.tolist() == [0.75, 0.5, 0.25, 0.0]
    full = le.recall_vs_iou(IMAGES)
    assert len(full) == len(le.IOU_GRID) and np.all(np.diff(full) <= 1e-12)   # never rises with IoU


def test_top1_hit_rate_takes_each_images_highest_scored_box():
    # a: its one box hits; b: its best box is the FP (its hit comes second); c: hits at 0.6;
    # d: no box (a miss); e: face-free (not counted)
    assert le.top1_hits(IMAGES).tolist() == [True, False, True, False]
    assert le.top1_hits(IMAGES, 0.7).tolist() == [True, False, False, False]


def test_ties_duplicates_and_empty_sets():
    same = [_img("x", [[*REF, 0.5], [*REF, 0.5]], [REF]), _img("y", [[*REF, 0.5]], [REF])]
    curve = le.roc(same)
    assert curve.tp.tolist() == [0, 2] and curve.fp.tolist() == [0, 1]   # one point for the tie
    none = le.roc([_img("z", [], [REF])])
    assert none.tpr.tolist() == [0.0] and le.tpr_at_fppi(none, 0.1) == 0.0
    with pytest.raises(G2SError, match="at least one image"):
        le.roc([])
    with pytest.raises(G2SError, match="q.jpg: 1 boxes but 2 scores"):
        le.ImageDetections("q.jpg", np.zeros((1, 4)), np.zeros(2), np.zeros((0, 4)))


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(5)
    images = []
    for k in range(60):
        good = rng.random() < 0.7
        det = [[*(REF if good else [200, 200, 300, 300]), rng.random()]]
        images.append(_img(f"{k}.jpg", det, [REF]))
    m = le.match(images)
    value = le.tpr_at_fppi(le.roc(images), 0.1)
    lo, hi = le.bootstrap_tpr_at_fppi(m, 0.1, resamples=300)
    assert lo <= value <= hi and hi - lo > 0.01
    assert (lo, hi) == le.bootstrap_tpr_at_fppi(m, 0.1, resamples=300)   # fixed seed


def test_report_writes_csv_json_png(tmp_path):
    import cv2

    other = [_img(i.name, [[*REF, 0.99]] if i.references.size else [], i.references) for i in IMAGES]
    summary = le.write_report({"constructed": IMAGES, "perfect": other}, tmp_path, resamples=50)
    with open(tmp_path / "roc.csv") as f:
        rows = list(csv.DictReader(f))
    mine = [r for r in rows if r["detector"] == "constructed"]
    assert [int(r["tp"]) for r in mine] == [0, 1, 1, 1, 2, 3, 3]
    assert float([r for r in rows if r["detector"] == "perfect"][-1]["tpr"]) == 1.0
    with open(tmp_path / "recall_vs_iou.csv") as f:
        assert len(list(csv.DictReader(f))) == 2 * len(le.IOU_GRID)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    c = saved["constructed"]
    assert (c["images"], c["references"], c["detections"]) == (5, 4, 6)
    assert (c["images_without_detections"], c["images_without_reference"]) == (1, 1)
    assert c["tpr_at_fppi_0.1"]["value"] == 0.25 and saved["perfect"]["tpr_at_fppi_0.01"]["value"] == 1.0
    assert c["top1_hit_rate"]["value"] == 0.5 and c["top1_hit_rate"]["images"] == 4
    assert c["top1_hit_rate"]["ci95"][0] < 0.5 < c["top1_hit_rate"]["ci95"][1]
    png = cv2.imread(str(tmp_path / "loc_eval.png"))
    assert png is not None and png.shape[1] > 600
    with pytest.raises(G2SError, match="other images"):
        le.write_report({"a": IMAGES, "b": IMAGES[:2]}, tmp_path)


def test_reference_boxes_from_a_celeba_box_file(tmp_path):
    p = tmp_path / "list_bbox_celeba.txt"
    p.write_text("2\nimage_id x_1 y_1 width height\n000001.jpg    95  71 226 313\n000002.jpg 72 94 221 306\n")
    refs = le.read_reference_boxes(p)
    assert refs["000001.jpg"].tolist() == [[95, 71, 321, 384]]
    p.write_text("1\nimage_id x_1 y_1 width height\n000001.jpg 95 71 0 313\n")
    with pytest.raises(G2SError, match="list_bbox_celeba.txt:3: box of 000001.jpg has width 0"):
        le.read_reference_boxes(p)


@pytest.mark.caffe
def test_mtcnn_and_lnets_adapters_on_real_photos(tmp_path):
    """Both detectors on the same real photos through detect_all: MTCNN finds the astronaut's
    face (the demo's annotation box for it); LNets (small, random init: no claim on quality)
    gives one scored box inside every image, and an unreadable image is a clear error."""
    import cv2

    from data_prep import demo_data
    from data_prep.photos import photo_path
    from g2s_caffe.methods.lnets import infer as li
    from g2s_caffe.methods.lnets import nets as lnet_nets, params as hp
    from g2s_caffe.methods.lnets.boxes import iou_matrix, xywh_to_xyxy
    from google.protobuf import text_format

    astro = demo_data.SOURCES[0]
    ref = np.array([xywh_to_xyxy(astro.box)])
    coffee = cv2.cvtColor(__import__("skimage.data", fromlist=["coffee"]).coffee(), cv2.COLOR_RGB2BGR)
    items = [("astronaut.png", photo_path(astro.photo), ref), ("coffee", coffee, np.zeros((0, 4)))]
    mtcnn = le.detect_all(le.mtcnn_detector(), items, show=False)
    assert iou_matrix(mtcnn[0].boxes[:1], ref)[0, 0] > 0.6 and mtcnn[0].scores[0] > 0.9
    path = tmp_path / "deploy.prototxt"
    path.write_text(text_format.MessageToString(lnet_nets.deploy_net(hp.SMALL_LNET)))
    net = li.LNet(path, None, hp.SMALL_LNET)
    lnets = le.detect_all(le.lnets_detector(li.LNetsCascade(net, net)), items, show=False)
    for got, (_, src, _) in zip(lnets, items):
        h, w = (cv2.imread(str(src)) if not isinstance(src, np.ndarray) else src).shape[:2]
        assert len(got.boxes) == len(got.scores) == 1
        assert (got.boxes[:, :2] >= 0).all() and (got.boxes[:, 2] <= w).all() and (got.boxes[:, 3] <= h).all()
    summary = le.write_report({"MTCNN": mtcnn, "LNets (random init)": lnets}, tmp_path / "eval", resamples=20)
    assert summary["MTCNN"]["tpr_at_fppi_0.1"]["value"] == 1.0
    with pytest.raises(G2SError, match="missing.jpg: image m is missing or not readable"):
        le.detect_all(le.mtcnn_detector(), [("m", tmp_path / "missing.jpg", ref)], show=False)
