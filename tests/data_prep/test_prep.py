"""The whole prep pipeline on a tiny CelebA built from real face photos (skimage's astronaut,
re-framed, rotated and composed into raw-CelebA-sized pictures), with the real MTCNN port,
real JPEGs and real LMDBs; and kill -9 resumption compared with an uninterrupted run."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from data_prep import align as al
from data_prep.detection_cache import DetectionCache
from data_prep.lmdb_build import ResumableLmdb, content_sha256, read_items
from g2s_caffe import cli
from g2s_caffe.core import layout
from g2s_caffe.core.attributes import default_attributes

from support import ROOT
ASTRO_BOX = np.array([[179.0, 60.0], [268.0, 173.0]])
ASTRO_LM = np.array([(203, 101), (246, 103), (224, 128), (201, 139), (244, 141)], float)
SIZE = 64


def _frame(img, angle, scale, centre_at, canvas=(500, 400)):
    """The astronaut's face rotated/scaled and placed at ``centre_at`` of a W x H canvas;
    returns the picture and the face's box (x, y, w, h) and landmarks in it."""
    face_c = ASTRO_LM.mean(axis=0)
    m = cv2.getRotationMatrix2D(tuple(face_c), angle, scale)
    m[:, 2] += np.asarray(centre_at, float) - face_c
    out = cv2.warpAffine(img, m, canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lm = al.apply(m, ASTRO_LM)
    corners = al.apply(m, [ASTRO_BOX[0], [ASTRO_BOX[1, 0], ASTRO_BOX[0, 1]], ASTRO_BOX[1], [ASTRO_BOX[0, 0], ASTRO_BOX[1, 1]]])
    (x1, y1), (x2, y2) = corners.min(axis=0), corners.max(axis=0)
    return out, (x1 - 10, y1 - 20, x2 - x1 + 20, y2 - y1 + 30), lm   # CelebA boxes are looser


def make_photo_celeba(root: Path) -> dict:
    """A raw-layout CelebA of 17 listed images: what each should become is in the result."""
    astro = skdata.astronaut()[:, :, ::-1].copy()
    no_face = cv2.resize(skdata.coffee()[:, :, ::-1], (500, 400))
    imgs = root / "img_celeba"
    imgs.mkdir(parents=True)
    rows = []   # (name, split, box, landmarks, expected state)

    def add(name, split, img, box, lm, state, writer="cv2"):
        if img is not None:
            if writer == "cmyk":
                Image.fromarray(img[:, :, ::-1]).convert("CMYK").save(imgs / name, quality=92)
            else:
                cv2.imwrite(str(imgs / name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        rows.append((name, split, box, lm, state))

    poses = [(0, 1.0, (250, 170)), (12, 1.1, (230, 190)), (-18, 0.9, (280, 160)), (25, 1.2, (250, 200)),
             (-8, 1.0, (200, 150)), (5, 0.95, (300, 180)), (-25, 1.05, (260, 170)), (15, 1.0, (240, 210))]
    for i, (angle, scale, at) in enumerate(poses):
        split = ("train", "train", "train", "val", "val", "test", "test", "test")[i]
        img, box, lm = _frame(astro, angle, scale, at)
        add(f"{i + 1:06d}.jpg", split, img, box, lm, "detected", "cmyk" if i == 4 else "cv2")
    # Two faces: the dataset labels the smaller, right one; the big one must not be chosen.
    big, _, _ = _frame(astro, 0, 1.3, (140, 190))
    small, box, lm = _frame(astro, 8, 0.9, (380, 180))
    two = big.copy()
    two[:, 260:] = small[:, 260:]
    add("000009.jpg", "train", two, box, lm, "detected")
    add("000010.jpg", "train", no_face, (200, 100, 120, 150), _frame(astro, 0, 1, (260, 175))[2], "discarded")
    add("000011.jpg", "test", no_face, (200, 100, 120, 150), _frame(astro, 0, 1, (260, 175))[2], "fallback")
    (imgs / "000012.jpg").write_bytes(b"")
    add("000012.jpg", "val", None, (1, 1, 10, 10), ASTRO_LM, "discarded")
    cut = cv2.imencode(".jpg", astro)[1].tobytes()
    (imgs / "000013.jpg").write_bytes(cut[: len(cut) // 2])
    add("000013.jpg", "test", None, (1, 1, 10, 10), ASTRO_LM, "discarded")
    add("000014.jpg", "test", None, (1, 1, 10, 10), ASTRO_LM, "missing")   # never written
    gray, box, lm = _frame(astro, -5, 1.0, (250, 180))
    add("000015.jpg", "val", cv2.cvtColor(cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)[:, :, :1],
        box, lm, "detected")
    img, box, lm = _frame(astro, 30, 1.0, (250, 190))
    add("000016.jpg", "train", img, box, lm, "detected")
    # A misplaced dataset box (right landmarks): nothing near the box, the face in the whole image.
    img, _, lm = _frame(astro, -10, 0.8, (390, 250))
    add("000017.jpg", "train", img, (10, 10, 90, 110), lm, "detected")

    names = default_attributes("celeba").names
    rng = np.random.default_rng(7)
    labels = rng.choice([-1, 1], size=(len(rows), len(names)))
    n = len(rows)
    (root / "list_attr_celeba.txt").write_text("\n".join(
        [str(n), " ".join(names)] + [r[0] + " " + " ".join(f"{v:>2}" for v in lab) for r, lab in zip(rows, labels)]) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(
        f"{r[0]} {('train', 'val', 'test').index(r[1])}\n" for r in rows))
    (root / "list_bbox_celeba.txt").write_text(f"{n}\nimage_id x_1 y_1 width height\n" + "".join(
        f"{r[0]} " + " ".join(str(int(round(v))) for v in r[2]) + "\n" for r in rows))
    (root / "list_landmarks_celeba.txt").write_text(f"{n}\nlefteye_x lefteye_y ...\n" + "".join(
        f"{r[0]} " + " ".join(str(int(round(v))) for v in np.ravel(r[3])) + "\n" for r in rows))
    return {"rows": rows, "labels": (labels > 0).astype(int), "names": names}


def _prep_args(root, out, *extra):
    return ["prep", "celeba", "--root", str(root), "--out", str(out), "--image-size", str(SIZE),
            "--missing", "report", *extra]


@pytest.fixture(scope="module")
def photo_celeba(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    return root, make_photo_celeba(root)


@pytest.fixture(scope="module")
def prepared(photo_celeba, tmp_path_factory):
    root, truth = photo_celeba
    out = tmp_path_factory.mktemp("prepared") / "out"
    assert cli.main(_prep_args(root, out, "--workers", "2", "--map-size", "65536")) == 0
    return out, truth


def _lmdb_dict(path):
    return dict(read_items(path))


@pytest.mark.caffe
def test_every_image_ends_in_exactly_one_state(prepared):
    out, truth = prepared
    ds = layout.open_prepared(out)
    expected = {r[0]: r[4] for r in truth["rows"]}
    seen = {}
    for split in ("train", "val", "test"):
        with open(layout.report_path(out, split)) as f:
            for row in csv.DictReader(f):
                assert row["name"] not in seen
                seen[row["name"]] = row
        states = ds.manifest["splits"][split]["states"]
        kept = states["detected"] + states["fallback"]
        assert ds.count(split) == kept
        assert sum(states.values()) == sum(1 for r in truth["rows"] if r[1] == split)
    assert {n: r["state"] for n, r in seen.items()} == expected
    assert "CMYK" in seen["000005.jpg"]["conversion"]
    assert "truncated JPEG" in seen["000013.jpg"]["reason"]
    assert "empty file" in seen["000012.jpg"]["reason"]
    assert "not on disk" in seen["000014.jpg"]["reason"]
    assert "discarded" in seen["000010.jpg"]["reason"] and seen["000011.jpg"]["index"] != ""
    # Where each kept face came from: near the dataset's box, the whole image, the dataset itself.
    assert {n: seen[n]["path"] for n in ("000001.jpg", "000017.jpg", "000011.jpg", "000010.jpg", "000014.jpg")} == \
        {"000001.jpg": "box", "000017.jpg": "image", "000011.jpg": "dataset", "000010.jpg": "", "000014.jpg": ""}
    assert "near the dataset's box: no face detected; in the whole image: no face detected" \
        in seen["000010.jpg"]["reason"]
    for split in ("train", "val", "test"):
        s = ds.manifest["splits"][split]
        rows = [seen[row[0]] for row in truth["rows"] if row[1] == split]
        assert s["paths"] == {p: sum(r["path"] == p for r in rows) for p in ("box", "image", "dataset")}
        assert sum(s["paths"].values()) == s["count"]


@pytest.mark.caffe
def test_lmdbs_follow_the_layout_contract(prepared):
    out, truth = prepared
    ds = layout.open_prepared(out)
    assert ds.schemes == list("abcdefgh") and ds.image_size == SIZE
    assert ds.attributes == truth["names"]
    label_of = {r[0]: lab for r, lab in zip(truth["rows"], truth["labels"])}
    for split in ds.splits():
        labels = read_items(ds.lmdb(split, layout.LABELS))
        keys = [k for k, _ in labels]
        assert len(keys) == ds.count(split)
        for i, (k, v) in enumerate(labels):
            name = k.decode().split("_", 1)[1]
            assert k.decode() == layout.key_for(i, name)
            idx, lab = layout.parse_label_datum(v)
            assert idx == i and lab == list(label_of[name])
        for s in ds.schemes:
            items = read_items(ds.lmdb(split, s))
            assert [k for k, _ in items] == keys
            from caffe.proto import caffe_pb2
            for i, (_, v) in enumerate(items):
                d = caffe_pb2.Datum()
                d.ParseFromString(v)
                assert d.encoded and d.label == i and (d.channels, d.height, d.width) == (3, SIZE, SIZE)
                img = cv2.imdecode(np.frombuffer(d.data, np.uint8), cv2.IMREAD_COLOR)
                assert img.shape == (SIZE, SIZE, 3)
            sha, n = content_sha256(ds.lmdb(split, s))
            assert ds.manifest["splits"][split]["lmdbs"][s]["sha256"] == sha and n == len(keys)
    assert not list(out.rglob("*.partial"))
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape[1] == 9 * 128 and sheet.shape[0] % 128 == 0 and sheet.shape[0] >= 128


def _crop(out, split, scheme, name):
    for k, v in read_items(layout.lmdb_dir(out, split, scheme)):
        if k.decode().split("_", 1)[1] == name:
            from caffe.proto import caffe_pb2
            d = caffe_pb2.Datum()
            d.ParseFromString(v)
            return cv2.imdecode(np.frombuffer(d.data, np.uint8), cv2.IMREAD_COLOR).astype(int)
    raise KeyError(name)


@pytest.mark.caffe
def test_aligned_crops_of_differently_rotated_photos_agree(prepared):
    out, _ = prepared
    ref = _crop(out, "train", "a", "000001.jpg")
    for split, name in [("train", "000002.jpg"), ("train", "000003.jpg"), ("val", "000004.jpg"),
                        ("train", "000016.jpg")]:
        assert np.mean(np.abs(_crop(out, split, "a", name) - ref)) < 25, name
    # Not trivially true: the same crop of a different scheme differs a lot.
    assert np.mean(np.abs(_crop(out, "train", "e", "000001.jpg") - ref)) > 35
    cache = DetectionCache(out / ".cache" / "train.jsonl").load()
    for name, angle in [("000001.jpg", 0), ("000002.jpg", 12), ("000003.jpg", -18), ("000016.jpg", 30)]:
        base = np.degrees(np.arctan2(2, 43))   # the astronaut's own eye line
        assert cache[name]["alignment"]["angle"] == pytest.approx(base - angle, abs=4), name


@pytest.mark.caffe
def test_several_faces_keep_the_dataset_face_and_no_face_test_images_fall_back(prepared, photo_celeba):
    out, truth = prepared
    rows = {r[0]: r for r in truth["rows"]}
    e = DetectionCache(out / ".cache" / "train.jsonl").load()["000009.jpg"]
    # Near the dataset's box only the labelled face is seen; the whole image holds both.
    assert e["path"] == "box" and e["faces"] == 1
    assert np.abs(np.asarray(e["face"]["landmarks"]) - rows["000009.jpg"][3]).max() < 8
    from data_prep.mtcnn import MTCNN
    from data_prep.prep import face_size_floor
    root, _ = photo_celeba
    whole = MTCNN(min_face=face_size_floor("auto", rows["000009.jpg"][2])).detect(
        cv2.imread(str(root / "img_celeba" / "000009.jpg")))
    assert len(whole) >= 2
    fb = DetectionCache(out / ".cache" / "test.jsonl").load()["000011.jpg"]
    assert fb["state"] == "fallback" and fb["face"] is None
    box, lm = np.round(rows["000011.jpg"][2]), np.round(rows["000011.jpg"][3])
    a = al.align(al.xywh_to_xyxy(box), lm)
    expect = al.crops(cv2.imread(str(root / "img_celeba" / "000011.jpg")), a, ["c"], SIZE)["c"]
    stored = cv2.imdecode(cv2.imencode(".jpg", expect, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], cv2.IMREAD_COLOR)
    assert np.array_equal(_crop(out, "test", "c", "000011.jpg"), stored.astype(int))


@pytest.mark.caffe
def test_second_run_does_nothing_and_other_options_are_refused(prepared, photo_celeba, capsys):
    out, _ = prepared
    root, _ = photo_celeba
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert cli.main(_prep_args(root, out, "--workers", "2")) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    assert cli.main(_prep_args(root, out, "--jpeg-quality", "80")) == 2
    assert "prepared with other options (jpeg_quality: 95 then, 80 now)" in capsys.readouterr().err


def _lmdb_entries(path: Path) -> int:
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, subdir=True)
    except lmdb.Error:
        return 0
    try:
        return env.stat()["entries"]
    finally:
        env.close()


@pytest.mark.caffe
def test_kill_9_at_any_moment_then_resume_gives_identical_lmdbs(prepared, photo_celeba, tmp_path):
    """Real SIGKILLs of the whole process group: once during detection, then whenever a
    partial LMDB holds records; the resumed result must equal the uninterrupted one."""
    ref, _ = prepared
    root, _ = photo_celeba
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "g2s_caffe.cli", *_prep_args(root, out, "--workers", "1", "--commit-every", "1",
                                                              "--map-size", "65536")]
    env = {**os.environ, "GLOG_minloglevel": "2", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])])}

    def killed_when(condition) -> bool:
        p = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while p.poll() is None and time.time() < deadline:
            if condition():
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                return True
            time.sleep(0.002)
        assert p.wait() == 0, p.stderr.read().decode()
        return False

    cache = out / ".cache" / "train.jsonl"
    assert killed_when(lambda: cache.is_file() and cache.read_bytes().count(b"\n") >= 3)
    partial_kills = 0
    for _ in range(4):
        caught = killed_when(lambda: any(_lmdb_entries(p) > 0 for p in out.glob("*/*.partial")))
        partial_kills += caught
        if not caught:
            break
    else:
        assert killed_when(lambda: False) is False
    assert partial_kills >= 1
    assert not list(out.rglob("*.partial"))
    for split in ("train", "val", "test"):
        for what in ("labels", *"abcdefgh"):
            assert _lmdb_dict(layout.lmdb_dir(out, split, what)) == _lmdb_dict(layout.lmdb_dir(ref, split, what)), (split, what)
        assert layout.report_path(out, split).read_text() == layout.report_path(ref, split).read_text()
    m_out, m_ref = (json.loads((d / "manifest.json").read_text()) for d in (out, ref))
    for split in m_ref["splits"]:
        for what, v in m_ref["splits"][split]["lmdbs"].items():
            assert m_out["splits"][split]["lmdbs"][what]["sha256"] == v["sha256"]


# ------------------------------------------------------------------ the resumable parts alone
def test_detection_cache_drops_a_torn_last_line(tmp_path):
    c = DetectionCache(tmp_path / "c.jsonl")
    c.add({"name": "a", "state": "detected"})
    c.add({"name": "b", "state": "discarded"})
    c.close()
    with open(tmp_path / "c.jsonl", "ab") as f:
        f.write(b'{"name": "c", "sta')
    again = DetectionCache(tmp_path / "c.jsonl").load()
    assert sorted(again.entries) == ["a", "b"]
    assert (tmp_path / "c.jsonl").read_bytes().endswith(b'"discarded"}\n')


def test_resumable_lmdb_grows_its_map_resumes_and_publishes(tmp_path):
    final = tmp_path / "x_lmdb"
    db = ResumableLmdb(final, map_size=1 << 15).open()
    items = [(layout.key_for(i, f"{i}.jpg").encode(), os.urandom(3000)) for i in range(40)]
    db.write(items[:25])
    assert db.grown >= 1 and db.next_index() == 25
    db.close()
    db = ResumableLmdb(final, map_size=1 << 15).open()
    assert db.next_index() == 25 and not db.published
    db.write(items[25:])
    db.publish()
    assert db.published and not (tmp_path / "x_lmdb.partial").exists()
    assert read_items(final) == items


@pytest.mark.caffe
def test_lfwa_end_to_end_uses_the_centre_box_for_choice_and_fallback(tmp_path, capsys):
    import h5py
    from test_readers import _cellstr

    root = tmp_path / "lfwa"
    astro = skdata.astronaut()[:, :, ::-1].copy()
    no_face = cv2.resize(skdata.coffee()[:, :, ::-1], (250, 250))
    pics = {"A_B/A_B_0001.jpg": _frame(astro, 0, 1.0, (125, 130), (250, 250))[0],
            "A_B/A_B_0002.jpg": _frame(astro, 10, 0.9, (125, 125), (250, 250))[0],
            "C_D/C_D_0001.jpg": no_face, "C_D/C_D_0002.jpg": no_face,
            "C_D/C_D_0003.jpg": _frame(astro, -5, 1.1, (120, 125), (250, 250))[0]}
    for name, img in pics.items():
        (root / "lfw" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "lfw" / name), img)
    names = [n.replace("/", "\\") for n in pics]
    labels = np.random.default_rng(3).integers(0, 2, size=(len(names), 40))
    with h5py.File(root / "lfw_att_40.mat", "w") as f:
        _cellstr(f, "name", names)
        f.create_dataset("label", data=labels.T.astype(np.float64))
        _cellstr(f, "AttrName", default_attributes("lfwa").names)
    with h5py.File(root / "indices_train_test.mat", "w") as f:
        f.create_dataset("indices_img_train", data=np.array([[1, 3, 2]], dtype=np.float64))
        f.create_dataset("indices_img_test", data=np.array([[4, 5]], dtype=np.float64))
    out = tmp_path / "out"
    assert cli.main(["prep", "lfwa", "--root", str(root), "--out", str(out), "--image-size", "48",
                     "--workers", "1", "--schemes", "a,e", "--min-face", "auto"]) == 0
    ds = layout.open_prepared(out)
    assert ds.splits() == ["train", "test"] and ds.schemes == ["a", "e"]
    assert ds.manifest["splits"]["train"]["states"] == {"detected": 2, "fallback": 0, "discarded": 1, "missing": 0}
    assert ds.manifest["splits"]["test"]["states"] == {"detected": 1, "fallback": 1, "discarded": 0, "missing": 0}
    keys = [k.decode() for k, _ in read_items(ds.lmdb("train", "a"))]
    assert keys == ["00000000_A_B/A_B_0001.jpg", "00000001_A_B/A_B_0002.jpg"]   # index order of the .mat
    assert [layout.parse_label_datum(v)[1] for _, v in read_items(ds.lmdb("train", "labels"))] == \
        [list(labels[0]), list(labels[1])]
    fb = DetectionCache(out / ".cache" / "test.jsonl").load()["C_D/C_D_0002.jpg"]
    side = 250 / 2.2
    assert fb["state"] == "fallback" and fb["alignment"]["angle"] == 0
    assert fb["alignment"]["box"] == pytest.approx([125 - side / 2, 125 - side / 2, side, side])
    capsys.readouterr()
    assert cli.main(["prep", "lfwa", "--root", str(root), "--out", str(tmp_path / "o2"), "--splits", "test,val"]) == 2
    assert "split 'val' has no images in lfwa (its splits: train, test); fix --splits" in capsys.readouterr().err


def test_search_region_grows_the_box_within_the_image():
    from data_prep.face_search import SEARCH_MARGIN, search_region

    assert SEARCH_MARGIN == 0.5
    assert search_region((100, 80, 60, 40), 500, 400) == (70, 50, 190, 150)      # +30 px (half of 60) each side
    assert search_region((10.5, 5, 100, 120), 150, 130) == (0, 0, 150, 130)       # clipped to the image


@pytest.mark.caffe
def test_gpu_reaches_the_workers_detector_and_a_cpu_only_build_refuses_it(photo_celeba, tmp_path, capsys,
                                                                          monkeypatch):
    from data_prep import prep
    from g2s_caffe.core.device import caffe_build_info
    from g2s_caffe.core.errors import G2SError

    if caffe_build_info().get("cmake_flags", {}).get("CPU_ONLY") != "ON":
        pytest.skip("this Caffe has CUDA")
    root, truth = photo_celeba
    assert cli.main(_prep_args(root, tmp_path / "out", "--gpu", "0")) == 2      # refused before any worker starts
    assert "--gpu 0: this Caffe is a CPU-only build" in capsys.readouterr().err
    assert not (tmp_path / "out" / ".cache" / "train.jsonl").exists()
    name, split, box, lm, _ = truth["rows"][0]
    monkeypatch.setattr(prep, "_DETECTOR", None)
    with pytest.raises(G2SError, match="--gpu 0: this Caffe is a CPU-only build"):   # what a worker does
        prep.detect_task((name, str(root / "img_celeba" / name), split, box, lm, None, "auto", 0, 1))


def test_workers_share_the_cores_between_their_detectors(monkeypatch):
    from data_prep import prep
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    assert [prep.Workers(n).threads_each for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_min_face_auto_follows_the_dataset_face():
    from data_prep.prep import face_size_floor

    assert face_size_floor("20", (0, 0, 300, 400)) == 20.0
    assert face_size_floor("auto", (0, 0, 300, 400)) == pytest.approx(120.0)
    assert face_size_floor("auto", (0, 0, 30, 40)) == 20.0     # never below the paper's 20
    assert face_size_floor("auto", None) == 20.0


# ------------------------------------------------------------------ attribute lists (by name)
def test_lfwa_subset_by_attrname_by_packaged_name_and_unknown_names(tmp_path):
    import yaml

    from data_prep.lfwa import read_lfwa
    from data_prep.prep import attribute_list, select_attributes
    from g2s_caffe.core.errors import G2SError
    from test_readers import make_lfwa_v5

    truth = make_lfwa_v5(tmp_path / "lfwa", n=6)          # AttrName: Attr_0 .. Attr_39
    index = read_lfwa(tmp_path / "lfwa")
    packaged = attribute_list("lfwa").names

    def pick(names):
        f = tmp_path / "mine.yaml"
        f.write_text(yaml.safe_dump({"attributes": [{"name": n, "crop": "a"} for n in names]}))
        return select_attributes(index, attribute_list(str(f)), packaged)

    # By the file's AttrName, a packaged name (column 5 is Bald), and ignoring case.
    sub = pick(["Attr_7", "Bald", "attr_2"])
    assert sub.attributes == ["Attr_7", "Bald", "attr_2"]
    assert sub.sources["label_columns"] == "Attr_7=8, Bald=5, attr_2=3"
    for r, full in zip(sub.records, index.records):
        assert r.name == full.name and r.labels == (full.labels[7], full.labels[4], full.labels[2])
    assert len(sub.records) == len(truth["names"])
    with pytest.raises(G2SError, match=r"mine.yaml: attribute 'Has_Tattoo' is not one of the 40 attributes of "
                                       r".*lfw_att_40.mat \(Attr_0, Attr_1"):
        pick(["Attr_1", "Has_Tattoo"])
