"""The demo dataset generator: CelebA formats, labels that are in the pixels, determinism."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_prep import demo_data as dd
from data_prep.celeba import read_celeba
from g2s_caffe.core.attributes import load_attributes, parse_attributes
from g2s_caffe.core.errors import G2SError

N = 60


@pytest.fixture(scope="module")
def photos():
    return dd.load_photos()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return dd.generate(tmp_path_factory.mktemp("demo") / "celeba", seed=11, count=N, progress=False)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(np.float32)


def test_raw_celeba_layout_and_reader(small):
    idx = read_celeba(small)      # the project's strict CelebA reader
    assert idx.attributes == list(dd.ATTRIBUTES)
    assert [r.name for r in idx.records] == [f"{i:06d}.jpg" for i in range(1, N + 1)]
    assert [r.split for r in idx.records] == ["train"] * 42 + ["val"] * 9 + ["test"] * 9
    for r in idx.records:
        img = cv2.imread(str(r.path))
        assert img is not None and 200 <= img.shape[0] <= 260 and 170 <= img.shape[1] <= 230
        h, w = img.shape[:2]
        assert all(0 <= x < w and 0 <= y < h for x, y in r.landmarks), r.name
        x, y, bw, bh = r.box
        lx, ly = np.asarray(r.landmarks).T
        # The box holds the eyes, nose and mouth.
        assert x <= lx.min() and lx.max() <= x + bw and y <= ly.min() and ly.max() <= y + bh, r.name
    # The exact text layout of the release files.
    attr = (small / "list_attr_celeba.txt").read_text().splitlines()
    assert attr[0] == str(N) and attr[1] == " ".join(dd.ATTRIBUTES) + " "
    assert all(re.fullmatch(r"\d{6}\.jpg( (-1| 1)){10}", ln) for ln in attr[2:])
    lm = (small / "list_landmarks_celeba.txt").read_text().splitlines()
    assert lm[1] == ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                     "leftmouth_x leftmouth_y rightmouth_x rightmouth_y")
    assert all(re.fullmatch(r"\d{6}\.jpg( +\d+){10}", ln) for ln in lm[2:])
    bbox = (small / "list_bbox_celeba.txt").read_text().splitlines()
    assert bbox[:2] == [str(N), "image_id x_1 y_1 width height"]
    part = (small / "list_eval_partition.txt").read_text().splitlines()
    assert all(re.fullmatch(r"\d{6}\.jpg [012]", ln) for ln in part) and len(part) == N


def test_demo_yaml_lists_the_generated_attributes():
    al = load_attributes(Path(dd.__file__).resolve().parent.parent / "g2s_caffe/data/attributes/demo.yaml")
    assert al.names == list(dd.ATTRIBUTES) and al.dataset == "demo"
    parse_attributes({"dataset": "demo", "attributes": [{"name": n} for n in dd.ATTRIBUTES]}, "names")


def test_deterministic_same_seed_same_bytes(small, tmp_path):
    again = dd.generate(tmp_path / "again", seed=11, count=N, progress=False, workers=1)
    assert _digest(again) == _digest(small)
    other = dd.generate(tmp_path / "other", seed=12, count=N, progress=False)
    d0, d1 = _digest(small), _digest(other)
    differ = [k for k in d0 if k.startswith("img_celeba/") and d0[k] != d1[k]]
    assert len(differ) == N
    assert d0["list_attr_celeba.txt"] != d1["list_attr_celeba.txt"]


def test_rerun_is_a_no_op_and_foreign_dirs_are_refused(small, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in small.rglob("*")}
    dd.generate(small, seed=11, count=N, progress=False)
    assert before == {p: p.stat().st_mtime_ns for p in small.rglob("*")}
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("not a demo")
    with pytest.raises(G2SError, match="not a demo dataset"):
        dd.generate(tmp_path / "x", seed=1, count=5, progress=False)


# What docs/demo.md says of the set-up's dataset: 2,000 images, 1,400 / 300 / 300, each attribute
# in 20-60 % of the images, drawn independently.
DEMO_SPLITS = {0: 1400, 1: 300, 2: 300}
DEMO_PREVALENCE = (0.20, 0.60)


def test_prevalence_and_independence_in_the_generated_files():
    """Read back from the annotation files set-up generated (generated here if missing): each
    attribute's share is its declared probability within 4 binomial standard deviations and in
    docs/demo.md's 20-60 %; every pair's correlation is within 4 / sqrt(n) of 0 (independent draws)."""
    root = dd.ensure_demo_data()
    idx = read_celeba(root)
    n = len(idx.records)
    assert n == dd.DEFAULT_COUNT == sum(DEMO_SPLITS.values())
    splits = [int(line.split()[1]) for line in (root / "list_eval_partition.txt").read_text().splitlines()]
    assert {k: splits.count(k) for k in DEMO_SPLITS} == DEMO_SPLITS
    labels = np.array([r.labels for r in idx.records], dtype=float)
    share = labels.mean(0)
    for name, got in zip(idx.attributes, share):
        p = dd.ATTRIBUTES[name]
        assert abs(got - p) <= 4 * np.sqrt(p * (1 - p) / n), (name, p, got)
        assert DEMO_PREVALENCE[0] <= got <= DEMO_PREVALENCE[1], (name, got)
    corr = np.corrcoef(labels.T)
    off = np.abs(corr[~np.eye(len(share), dtype=bool)])
    assert off.max() < 4 / np.sqrt(n), off.max()


# Where each local attribute lives, in the face frame (a along the eyes, b towards the mouth,
# in inter-ocular distances): a box (a0, a1, b0, b1) it must change; b is counted from the
# eye line, or from the mouth line for the attributes placed below it.
REGIONS = {
    "Eyeglasses": (-1.3, 1.3, -0.5, 0.4, "eyes"),
    "Eye_Shadow": (-0.9, 0.9, -0.4, 0.0, "eyes"),
    "Wearing_Hat": (-1.6, 1.6, -2.6, -0.9, "eyes"),
    "Bangs": (-1.2, 1.2, -1.3, -0.6, "eyes"),
    "Beard": (-1.2, 1.2, -0.5, 1.2, "mouth"),
    "Wearing_Mask": (-1.3, 1.3, -1.3, 0.6, "mouth"),     # with the ear loops
    "Wearing_Earrings": (-1.45, 1.45, 0.5, 1.3, "eyes"),
    "Wearing_Necktie": (-0.6, 0.6, 0.7, 3.0, "mouth"),
}


def _region_mask(shape, lm, region):
    f = dd.Frame(np.asarray(lm, np.float64))
    a0, a1, b0, b1, origin = region
    if origin == "mouth":
        b0, b1 = b0 + f.mouth_b, b1 + f.mouth_b
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(f.poly([(a0, b0), (a1, b0), (a1, b1), (a0, b1)])).astype(np.int32)], 1)
    return m.astype(bool)


@pytest.mark.parametrize("name", sorted(REGIONS))
def test_local_attribute_changes_its_region_only(photos, name):
    """Counterfactual spot check: the same image with and without the attribute differs inside
    the attribute's region, strongly, and hardly anywhere else."""
    for i in range(4):
        j0, _, lm, _ = dd.compose(i, 5, photos, force={name: False})
        j1, _, lm1, _ = dd.compose(i, 5, photos, force={name: True})
        assert np.array_equal(lm, lm1)
        d = np.abs(_decode(j1) - _decode(j0)).mean(axis=2)
        inside = _region_mask(d.shape, lm, REGIONS[name])
        # A clearly visible change: a tenth of the region changes by more than 20 grey levels.
        strong = np.percentile(d[inside], 90)
        assert strong > 20, (name, i, strong)
        # Elsewhere only JPEG noise: the change stays in the region (within a small halo).
        halo = cv2.dilate(inside.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert np.percentile(d[~halo], 99) < 0.5 * strong, (name, i, np.percentile(d[~halo], 99), strong)


def test_blurry_and_pale_are_measurable_in_the_files(small):
    """Feature checks on the written JPEGs: sharpness (Laplacian variance on the face) and the
    face's brightness relative to its own picture separate the labelled groups."""
    idx = read_celeba(small)
    k_blur, k_pale = idx.attributes.index("Blurry"), idx.attributes.index("Pale_Skin")
    sharp, bright, yb, yp = [], [], [], []
    for r in idx.records:
        img = cv2.imread(str(r.path)).astype(np.float32)
        x, y, w, h = (int(round(v)) for v in r.box)
        face = img[max(0, y):y + h, max(0, x):x + w]
        sharp.append(cv2.Laplacian(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var())
        lm = np.asarray(r.landmarks)
        cheeks = _region_mask(img.shape, lm, (-0.6, 0.6, 0.1, 0.5, "eyes"))
        sat = cv2.cvtColor(img.clip(0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV)[..., 1].astype(np.float32)
        # Pale = lighter and less saturated skin than the picture's own mean.
        bright.append(img[cheeks].mean() / (img.mean() + 1) - sat[cheeks].mean() / (sat.mean() + 1))
        yb.append(r.labels[k_blur])
        yp.append(r.labels[k_pale])
    assert _auc(-np.array(sharp), np.array(yb)) > 0.9
    assert _auc(np.array(bright), np.array(yp)) > 0.75


def _auc(score, y) -> float:
    pos, neg = score[y == 1], score[y == 0]
    assert len(pos) and len(neg)
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def test_generation_rejects_bad_arguments(tmp_path):
    with pytest.raises(G2SError, match="at least 3"):
        dd.generate(tmp_path / "t", count=2, progress=False)
    with pytest.raises(G2SError, match="unknown demo attribute"):
        dd.compose(0, 0, {}, force={"Smiling": True})
    with pytest.raises(G2SError, match="unreadable|missing"):
        dd.load_photos(tmp_path)
