"""Prediction plumbing on a real photograph (scikit-image's astronaut) with tiny real Caffe nets.

Checks the plumbing, not accuracy: the predictor's input for a face crop is what Caffe's own
Data layer makes of the same crop stored as a prepared-dataset JPEG datum.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from test_eval import make_tiny_net

pytestmark = pytest.mark.caffe

SIZE = 40          # prepared image size of the tiny nets (crop 28 inside it)


@dataclass
class Face:        # the shape of data_prep.mtcnn.Face
    box: list
    score: float
    landmarks: np.ndarray


def _photo():
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])   # RGB -> BGR, like cv2.imread


# The astronaut's face (OpenCV's Haar cascade finds it at x=177, y=66, 95 x 95) and rough landmarks.
ASTRONAUT = Face([177.0, 66.0, 272.0, 161.0], 0.99,
                 np.array([[205, 100], [245, 100], [225, 122], [208, 142], [242, 142]], float))


def _lmdb_of(path, crops):
    import cv2
    import lmdb

    from g2s_caffe.core import layout

    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, c in enumerate(crops):
            ok, buf = cv2.imencode(".jpg", c, [cv2.IMWRITE_JPEG_QUALITY, 95])
            txn.put(layout.key_for(i, f"face{i}").encode(), layout.image_datum(buf.tobytes(), SIZE, i))
    env.close()
    return path


def test_predict_matches_caffe_data_layer_and_writes_outputs(tmp_path, capsys):
    import caffe

    from g2s_caffe.methods.g2s import predict
    from g2s_caffe.core.evaluation.evaluate import EvalNet

    img = _photo()
    second = Face([x + 8 for x in ASTRONAUT.box], 0.9, ASTRONAUT.landmarks + 8)
    faces = [ASTRONAUT, second]
    # Reference LMDBs hold the faces' crops, so each tiny net's TEST Data layer reads them.
    # Cut together, as `g2s prep` does (the pre-shrink depends on the tightest scheme).
    cut = [predict.aligned_crops(img, f, ["a", "g"], SIZE) for f in faces]
    crops_a, crops_g = [c["a"] for c in cut], [c["g"] for c in cut]
    joint = make_tiny_net(tmp_path / "j", _lmdb_of(tmp_path / "a_lmdb", crops_a), 2, joint=2, seed=11)
    single = make_tiny_net(tmp_path / "s", _lmdb_of(tmp_path / "g_lmdb", crops_g), 2, joint=None, seed=12)
    items = [EvalNet("Male", 0, "a", *joint), EvalNet("Eyeglasses", None, "g", *single),
             EvalNet("Smiling", 1, "a", *joint)]
    predictor = predict.Predictor(items, SIZE)
    preds = predict.predict_image(img, faces, predictor)

    ref = {}
    for name, (_, w, tv) in (("joint", joint), ("single", single)):
        net = caffe.Net(str(tv), caffe.TEST, weights=str(w))
        net.forward()
        ref[name] = net.blobs["prob"].data.reshape(2, -1, 2)[:, :, 1]
    assert len(preds) == 2
    for i, p in enumerate(preds):
        assert list(p.probabilities) == ["Male", "Eyeglasses", "Smiling"]
        assert p.probabilities["Male"] == pytest.approx(ref["joint"][i, 0], abs=1e-5)
        assert p.probabilities["Smiling"] == pytest.approx(ref["joint"][i, 1], abs=1e-5)
        assert p.probabilities["Eyeglasses"] == pytest.approx(ref["single"][i, 0], abs=1e-5)
    # The two faces are different crops, so the nets answer differently.
    assert preds[0].probabilities != preds[1].probabilities

    photo = tmp_path / "astronaut.png"
    import cv2
    cv2.imwrite(str(photo), img)
    files = predict.write_outputs(photo, img, preds, tmp_path / "out", "steps_1_2_3")
    doc = json.loads(files[0].read_text())
    assert doc["image"] == str(photo) and len(doc["faces"]) == 2
    f0 = doc["faces"][0]
    assert f0["box"] == ASTRONAUT.box and len(f0["landmarks"]) == 5
    assert [a["attribute"] for a in f0["attributes"]] == ["Male", "Eyeglasses", "Smiling"]
    for a in f0["attributes"]:
        assert a["decision"] == (a["probability"] >= 0.5)
    png = cv2.imread(str(files[1]))
    assert png is not None and png.shape[0] > 100
    table = predict.format_table("astronaut.png", preds)
    assert "2 face(s)" in table and table.count("\n") == 2 + 3


def test_no_face_is_said(tmp_path):
    from g2s_caffe.methods.g2s import predict

    img = np.full((64, 64, 3), 128, np.uint8)
    assert predict.predict_image(img, [], None) == []
    assert predict.format_table("blank.png", []) == "blank.png: no face found\n"
    files = predict.write_outputs(tmp_path / "blank.png", img, [], tmp_path / "out", "r")
    doc = json.loads(files[0].read_text())
    assert doc["faces"] == [] and doc["note"] == "no face found"
    assert files[1].stat().st_size > 0


def test_g2s_predict_end_to_end_with_mtcnn(tmp_path, capsys):
    """MTCNN on real photographs: one face, two faces (the photo beside its mirror image),
    and a photo without a face (scikit-image's coffee cup)."""
    import cv2
    import skimage.data

    from g2s_caffe import cli
    from test_eval import CLI_ATTRS, make_prepared_for_runs, make_runs

    root = make_runs(tmp_path, make_prepared_for_runs(tmp_path / "data", test=4))
    img = _photo()
    paths = [tmp_path / "astronaut.png", tmp_path / "pair.jpg", tmp_path / "coffee.png"]
    cv2.imwrite(str(paths[0]), img)
    cv2.imwrite(str(paths[1]), np.concatenate([img, img[:, ::-1]], axis=1))
    cv2.imwrite(str(paths[2]), np.ascontiguousarray(skimage.data.coffee()[:, :, ::-1]))
    out = tmp_path / "pred"
    rc = cli.main(["predict", *map(str, paths), "--runs", str(root), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert f"{paths[0]}: 1 face(s)" in printed and f"{paths[1]}: 2 face(s)" in printed
    assert f"{paths[2]}: no face found" in printed
    one = json.loads((out / "astronaut.json").read_text())
    assert one["run"] == "steps_1_2_3" and len(one["faces"]) == 1
    x1, y1, x2, y2 = one["faces"][0]["box"]
    assert 150 < (x1 + x2) / 2 < 300 and 60 < (y1 + y2) / 2 < 180     # on the astronaut's face
    assert [a["attribute"] for a in one["faces"][0]["attributes"]] == [n for n, _ in CLI_ATTRS]
    two = json.loads((out / "pair.json").read_text())
    centres = sorted((f["box"][0] + f["box"][2]) / 2 for f in two["faces"])
    assert centres[0] < 512 < centres[1]
    none = json.loads((out / "coffee.json").read_text())
    assert none["faces"] == [] and none["note"] == "no face found"
    for stem in ("astronaut", "pair", "coffee"):
        assert cv2.imread(str(out / f"{stem}_annotated.png")) is not None
    # Steps-1 run by name: the joint net answers all three attributes.
    rc = cli.main(["predict", str(paths[0]), "--runs", str(root), "--run", "steps_1", "--out", str(out / "s1")])
    assert rc == 0
    s1 = json.loads((out / "s1" / "astronaut.json").read_text())
    assert s1["run"] == "steps_1" and len(s1["faces"][0]["attributes"]) == 3


def test_g2s_predict_bad_input(tmp_path, capsys):
    import cv2

    from g2s_caffe import cli

    (tmp_path / "notes.txt").write_text("not an image")
    assert cli.main(["predict", str(tmp_path / "missing.jpg"), "--runs", str(tmp_path)]) == 2
    assert "missing.jpg: no such image" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path / "notes.txt"), "--runs", str(tmp_path)]) == 2
    assert "notes.txt: not an image OpenCV can read" in capsys.readouterr().err
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((8, 8, 3), np.uint8))
    assert cli.main(["predict", str(tmp_path / "x.png"), "--runs", str(tmp_path)]) == 2
    assert "no runs" in capsys.readouterr().err
