"""CelebA text files and LFWA .mat files (MATLAB v7.3 = HDF5, and MATLAB v5), written here in
the releases' layouts."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from data_prep.celeba import read_celeba
from data_prep.lfwa import read_lfwa
from g2s_caffe.core.errors import G2SError

NAMES = [f"Attr_{i}" for i in range(40)]
LANDMARK_HEADER = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"


def _attr_line(name, values):
    # Right-aligned columns separated by runs of spaces, as in the release.
    return f"{name} " + "".join(f"{v:>3}" for v in values)


def make_celeba(root: Path, n: int = 4, aligned: bool = False, write_images: bool = True) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    img_dir = root / ("img_align_celeba" if aligned else "img_celeba")
    img_dir.mkdir(exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    rng = np.random.default_rng(0)
    labels = rng.choice([-1, 1], size=(n, 40))
    parts = [i % 3 for i in range(n)]
    lms = [[70 + i, 110, 110 + i, 112, 90, 130, 72, 150, 108, 151] for i in range(n)]
    files = {
        "list_attr_celeba.txt": [str(n), " ".join(NAMES)] + [_attr_line(nm, lab) for nm, lab in zip(names, labels)],
        "list_eval_partition.txt": [f"{nm} {p}" for nm, p in zip(names, parts)],
        ("list_landmarks_align_celeba.txt" if aligned else "list_landmarks_celeba.txt"):
            [str(n), LANDMARK_HEADER] + [f"{nm}  " + " ".join(f"{v:>4}" for v in lm) for nm, lm in zip(names, lms)],
    }
    if not aligned:
        files["list_bbox_celeba.txt"] = [str(n), "image_id x_1 y_1 width height"] + \
            [f"{nm}    {40 + i:>4} {60:>4} {120:>4} {150:>4}" for i, nm in enumerate(names)]
    for fname, lines in files.items():
        (root / fname).write_text("\n".join(lines) + "\n")
    if write_images:
        for nm in names:
            (img_dir / nm).write_bytes(b"\xff\xd8 not decoded by the reader \xff\xd9")
    return {"names": names, "labels": labels, "parts": parts, "lms": lms}


def test_celeba_reads_labels_splits_boxes_and_landmarks(tmp_path):
    truth = make_celeba(tmp_path, n=5)
    idx = read_celeba(tmp_path)
    assert idx.attributes == NAMES
    assert [r.name for r in idx.records] == truth["names"]
    assert [r.split for r in idx.records] == [("train", "val", "test")[p] for p in truth["parts"]]
    for r, lab, lm in zip(idx.records, truth["labels"], truth["lms"]):
        assert r.labels == tuple(int(v == 1) for v in lab)
        assert r.landmarks[1] == (lm[2], lm[3])
        assert r.on_disk and r.path == tmp_path / "img_celeba" / r.name
    assert idx.records[2].box == (42.0, 60.0, 120.0, 150.0)
    assert idx.records[3].where.endswith("list_attr_celeba.txt:6")


def test_celeba_aligned_variant_derives_box_from_landmarks(tmp_path):
    make_celeba(tmp_path, n=3, aligned=True)
    idx = read_celeba(tmp_path, aligned=True)
    x, y, w, h = idx.records[0].box
    assert w == h > 0
    eyes_x = (idx.records[0].landmarks[0][0] + idx.records[0].landmarks[1][0]) / 2
    assert x < eyes_x < x + w
    assert y < 110 < 150 < y + h   # eyes and mouth inside the box


def test_celeba_annotation_files_may_live_in_anno_and_eval(tmp_path):
    make_celeba(tmp_path, n=3)
    (tmp_path / "Anno").mkdir()
    (tmp_path / "Eval").mkdir()
    for f in ("list_attr_celeba.txt", "list_bbox_celeba.txt", "list_landmarks_celeba.txt"):
        (tmp_path / f).rename(tmp_path / "Anno" / f)
    (tmp_path / "list_eval_partition.txt").rename(tmp_path / "Eval" / "list_eval_partition.txt")
    assert len(read_celeba(tmp_path).records) == 3


def _edit(path: Path, line_no: int, new: str | None):
    lines = path.read_text().splitlines()
    if new is None:
        del lines[line_no - 1]
    else:
        lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("fname, line, new, expect", [
    ("list_attr_celeba.txt", 1, "7", r"list_attr_celeba.txt:1: says 7 images but 4"),
    ("list_attr_celeba.txt", 4, "000002.jpg " + " 1" * 39, r"list_attr_celeba.txt:4: expected an image name and 40 values, got 39"),
    ("list_attr_celeba.txt", 4, "000002.jpg " + " 1" * 39 + " 0", r"list_attr_celeba.txt:4: attribute value '0'"),
    ("list_attr_celeba.txt", 4, "000001.jpg " + " 1" * 40, r"list_attr_celeba.txt:4: image 000001.jpg is listed twice \(first at line 3\)"),
    ("list_eval_partition.txt", 2, "000002.jpg 3", r"list_eval_partition.txt:2: partition '3'"),
    ("list_eval_partition.txt", 2, "000099.jpg 0", r"list_eval_partition.txt:2: image 000099.jpg is not in"),
    ("list_bbox_celeba.txt", 4, "000002.jpg 1 2 x 4", r"list_bbox_celeba.txt:4: expected numbers"),
    ("list_bbox_celeba.txt", 4, "000002.jpg 1 2 0 4", r"list_bbox_celeba.txt:4: box of 000002.jpg has width 0"),
    ("list_landmarks_celeba.txt", 5, None, r"list_landmarks_celeba.txt:1: says 4 images but 3"),
])
def test_celeba_errors_name_file_and_line(tmp_path, fname, line, new, expect):
    make_celeba(tmp_path, n=4)
    _edit(tmp_path / fname, line, new)
    with pytest.raises(G2SError, match=expect):
        read_celeba(tmp_path)


def test_celeba_missing_image_is_an_error_or_a_report_entry(tmp_path):
    make_celeba(tmp_path, n=4)
    (tmp_path / "img_celeba" / "000003.jpg").unlink()
    with pytest.raises(G2SError, match=r"list_attr_celeba.txt:5: image 000003.jpg is listed but .* --missing report"):
        read_celeba(tmp_path)
    idx = read_celeba(tmp_path, missing="report")
    assert [r.on_disk for r in idx.records] == [True, True, False, True]


def test_celeba_missing_annotation_file_says_where_it_looked(tmp_path):
    make_celeba(tmp_path, n=2)
    (tmp_path / "list_bbox_celeba.txt").unlink()
    with pytest.raises(G2SError, match=r"list_bbox_celeba.txt not found .*Anno"):
        read_celeba(tmp_path)


# ------------------------------------------------------------------ LFWA (MATLAB v7.3 = HDF5)
def _cellstr(f: h5py.File, var: str, strings: list[str]) -> None:
    """A MATLAB N x 1 cell of char row vectors, as MATLAB v7.3 writes it."""
    refs = f.require_group("#refs#")
    ref_dtype = h5py.special_dtype(ref=h5py.Reference)
    cell = np.empty((1, len(strings)), dtype=ref_dtype)   # MATLAB N x 1, stored transposed
    for i, s in enumerate(strings):
        d = refs.create_dataset(f"{var}_{i}", data=np.array([[ord(c)] for c in s], dtype=np.uint16))
        d.attrs["MATLAB_class"] = np.bytes_("char")
        cell[0, i] = d.ref
    ds = f.create_dataset(var, data=cell)
    ds.attrs["MATLAB_class"] = np.bytes_("cell")


def _matlab_v73_header(path: Path) -> None:
    """MATLAB's 128-byte text header in the file's 512-byte HDF5 user block, as `save -v7.3` writes it."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as f:
        f.write(header)


def make_lfwa(root: Path, n: int = 6, values=(0, 1), write_images=True, skip_var=None) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    people = ["Aaron_Eckhart", "Zico"]
    names = [f"{people[i % 2]}\\{people[i % 2]}_{i + 1:04d}.jpg" for i in range(n)]
    rng = np.random.default_rng(1)
    labels = rng.choice(values, size=(n, 40))
    train = [1, 3, 5][: n // 2]
    test = [i for i in range(1, n + 1) if i not in train]
    with h5py.File(root / "lfw_att_40.mat", "w", userblock_size=512) as f:
        if skip_var != "name":
            _cellstr(f, "name", names)
        f.create_dataset("label", data=labels.T.astype(np.float64))   # MATLAB n x 40 -> (40, n)
        _cellstr(f, "AttrName", NAMES)
    with h5py.File(root / "indices_train_test.mat", "w", userblock_size=512) as f:
        f.create_dataset("indices_img_train", data=np.array([train], dtype=np.float64))
        if skip_var != "indices_img_test":
            f.create_dataset("indices_img_test", data=np.array([test], dtype=np.float64))
        f.create_dataset("indices_identity_train", data=np.array([[1]], dtype=np.float64))
    for mat in ("lfw_att_40.mat", "indices_train_test.mat"):
        _matlab_v73_header(root / mat)
    if write_images:
        for nm in names:
            p = root / "lfw" / nm.replace("\\", "/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x")
    return {"names": names, "labels": labels, "train": train, "test": test}


@pytest.mark.parametrize("values", [(0, 1), (-1, 1)])
def test_lfwa_reads_transposed_matlab_cells_and_1_based_indices(tmp_path, values):
    truth = make_lfwa(tmp_path, n=6, values=values)
    idx = read_lfwa(tmp_path)
    assert idx.attributes == NAMES
    assert idx.splits() == ["train", "test"]
    train = idx.split("train")
    assert [r.name for r in train] == [truth["names"][i - 1].replace("\\", "/") for i in truth["train"]]
    assert train[0].name == "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    for r in idx.records:
        row = truth["names"].index(r.name.replace("/", "\\"))
        assert r.labels == tuple(int(v > 0) for v in truth["labels"][row])
        assert r.path.is_file()
    assert idx.centre_box_fraction == pytest.approx(1 / 2.2)


def test_lfwa_missing_variable_lists_those_found(tmp_path):
    make_lfwa(tmp_path, skip_var="indices_img_test")
    with pytest.raises(G2SError, match=r"no variable 'indices_img_test'.*found: indices_identity_train, indices_img_train"):
        read_lfwa(tmp_path)


def test_lfwa_rejects_bad_indices_values_and_missing_images(tmp_path):
    make_lfwa(tmp_path)
    with h5py.File(tmp_path / "indices_train_test.mat", "a") as f:
        del f["indices_img_test"]
        f.create_dataset("indices_img_test", data=np.array([[2, 4, 7]], dtype=np.float64))
    with pytest.raises(G2SError, match=r"indices_img_test holds 7; indices must be whole numbers in 1..6"):
        read_lfwa(tmp_path)
    with h5py.File(tmp_path / "indices_train_test.mat", "a") as f:
        del f["indices_img_test"]
        f.create_dataset("indices_img_test", data=np.array([[2, 3, 6]], dtype=np.float64))
    with pytest.raises(G2SError, match=r"image 3 .* is in both"):
        read_lfwa(tmp_path)

    other = tmp_path / "other"
    make_lfwa(other, values=(0, 2))
    with pytest.raises(G2SError, match=r"label holds the values 0, 2; expected 0/1 or -1/1"):
        read_lfwa(other)

    third = tmp_path / "third"
    make_lfwa(third)
    (third / "lfw" / "Zico" / "Zico_0002.jpg").unlink()
    with pytest.raises(G2SError, match=r"name\[2\] Zico/Zico_0002.jpg is listed but"):
        read_lfwa(third)
    assert sum(not r.on_disk for r in read_lfwa(third, missing="report").records) == 1


def test_lfwa_neither_hdf5_nor_matlab_v5_says_so(tmp_path):
    make_lfwa(tmp_path)
    (tmp_path / "lfw_att_40.mat").write_bytes(b"MATLAB 5.0 MAT-file, not really one")
    with pytest.raises(G2SError, match=r"lfw_att_40.mat: neither a MATLAB v7.3 \(HDF5\) nor a MATLAB v5/v4"):
        read_lfwa(tmp_path)


# ------------------------------------------------------------------ LFWA (MATLAB v5, scipy.io)
def make_lfwa_v5(root: Path, n: int = 6, values=(0, 1), attr_names=NAMES) -> dict:
    """The same release layout as make_lfwa, saved as MATLAB v5 by scipy.io.savemat: name an
    N x 1 cell of backslash paths, label N x 40 double, AttrName a 1 x 40 cell, indices k x 1
    double (1-based)."""
    from scipy.io import savemat

    truth = make_lfwa(root, n=n, values=values)          # images, and the v7.3 files overwritten below
    cell = lambda strings, shape: np.array(strings, dtype=object).reshape(shape)
    savemat(root / "lfw_att_40.mat", {"name": cell(truth["names"], (n, 1)),
                                      "label": truth["labels"].astype(np.float64),
                                      "AttrName": cell(attr_names, (1, len(attr_names)))}, format="5")
    savemat(root / "indices_train_test.mat", {
        "indices_img_train": np.array(truth["train"], np.float64).reshape(-1, 1),
        "indices_img_test": np.array(truth["test"], np.float64).reshape(-1, 1),
        "indices_identity_train": np.array([[1.0]])}, format="5")
    return truth


@pytest.mark.parametrize("values", [(0, 1), (-1, 1)])
def test_lfwa_v5_and_v73_files_read_the_same(tmp_path, values):
    v73 = make_lfwa(tmp_path / "v73", n=6, values=values)
    truth = make_lfwa_v5(tmp_path / "v5", n=6, values=values)
    assert (tmp_path / "v5" / "lfw_att_40.mat").read_bytes()[:10] == b"MATLAB 5.0"
    np.testing.assert_array_equal(truth["labels"], v73["labels"])
    a, b = read_lfwa(tmp_path / "v73"), read_lfwa(tmp_path / "v5")
    assert b.attributes == a.attributes == NAMES
    assert [(r.name, r.split, r.labels) for r in b.records] == [(r.name, r.split, r.labels) for r in a.records]
    assert b.split("train")[0].name == "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    assert b.sources["attr_format"] == "MATLAB v5" and a.sources["attr_format"] == "MATLAB v7.3 (HDF5)"


def test_lfwa_v5_with_40_images_is_not_transposed(tmp_path):
    # N x 40 with N = 40: only the file's own orientation can tell rows from columns.
    truth = make_lfwa_v5(tmp_path, n=40)
    idx = read_lfwa(tmp_path)
    row = {r.name: r.labels for r in idx.records}
    for i, name in enumerate(truth["names"]):
        assert row[name.replace("\\", "/")] == tuple(int(v > 0) for v in truth["labels"][i])


def test_lfwa_v5_errors_name_the_variable(tmp_path):
    from scipy.io import savemat

    make_lfwa_v5(tmp_path)
    savemat(tmp_path / "indices_train_test.mat", {"indices_img_train": np.array([[1.0], [7.0]]),
                                                  "indices_img_test": np.array([[2.0]])}, format="5")
    with pytest.raises(G2SError, match=r"indices_img_train holds 7; indices must be whole numbers in 1..6"):
        read_lfwa(tmp_path)
    savemat(tmp_path / "indices_train_test.mat", {"indices_img_train": np.array([[1.0]])}, format="5")
    with pytest.raises(G2SError, match=r"no variable 'indices_img_test'; variables found: indices_img_train"):
        read_lfwa(tmp_path)
    savemat(tmp_path / "lfw_att_40.mat", {"name": np.array([[1.0, 2.0]]), "label": np.zeros((2, 40))}, format="5")
    with pytest.raises(G2SError, match=r"name is not a cell of strings"):
        read_lfwa(tmp_path)
