"""Face identities through the readers (CelebA's identity_CelebA.txt, LFW's folder names),
the prepared data contract (identities_lmdb, written or added later without detecting again)
and the demo generator's identity file; bad identity files name file:line and what to do."""
from __future__ import annotations

import json
import shutil

import pytest

from data_prep.celeba import read_celeba
from data_prep.lfwa import read_lfwa
from g2s_caffe.core import layout
from g2s_caffe.core.errors import G2SError
from test_readers import _edit, make_celeba, make_lfwa


def write_identities(root, names, numbers, where="Anno"):
    d = root / where if where else root
    d.mkdir(parents=True, exist_ok=True)
    (d / "identity_CelebA.txt").write_text("".join(f"{n} {i}\n" for n, i in zip(names, numbers)))
    return d / "identity_CelebA.txt"


def test_celeba_identities_are_read_from_anno_and_are_optional(tmp_path):
    truth = make_celeba(tmp_path, n=5)
    idx = read_celeba(tmp_path)
    assert not idx.has_identities and all(r.identity is None for r in idx.records)
    assert "identity_CelebA.txt" in idx.sources["identity_note"] and "Anno" in idx.sources["identity_note"]
    path = write_identities(tmp_path, truth["names"], [2880, 7, 2880, 10177, 7])
    idx = read_celeba(tmp_path)
    assert idx.has_identities and idx.sources["identities"] == str(path)
    assert [r.identity_number for r in idx.records] == [2880, 7, 2880, 10177, 7]
    assert [r.identity for r in idx.records] == ["2880", "7", "2880", "10177", "7"]


@pytest.mark.parametrize("line, new, expect", [
    (2, "000002.jpg 7 8", r"identity_CelebA.txt:2: expected an image name and 1 value, got 2"),
    (2, "000002.jpg", r"identity_CelebA.txt:2: expected an image name and 1 value, got 0"),
    (3, "000003.jpg x12", r"identity_CelebA.txt:3: identity 'x12' of 000003.jpg is not a whole number"),
    (3, "000003.jpg 2.5", r"identity_CelebA.txt:3: identity '2.5' of 000003.jpg is not a whole number"),
    (3, "000003.jpg -4", r"identity_CelebA.txt:3: identity '-4'"),
    (4, "000099.jpg 5", r"identity_CelebA.txt:4: image 000099.jpg is not in .*list_attr_celeba.txt"),
    (4, "000001.jpg 5", r"identity_CelebA.txt:4: image 000001.jpg is listed twice \(first at line 1\)"),
    (4, None, r"list_attr_celeba.txt:6: image 000004.jpg has no entry in .*identity_CelebA.txt"),
])
def test_bad_identity_files_name_file_and_line(tmp_path, line, new, expect):
    truth = make_celeba(tmp_path, n=4)
    path = write_identities(tmp_path, truth["names"], [1, 2, 3, 4], where="")
    _edit(path, line, new)
    with pytest.raises(G2SError, match=expect):
        read_celeba(tmp_path)


def test_an_identity_file_given_but_missing_is_an_error(tmp_path):
    make_celeba(tmp_path, n=2)
    with pytest.raises(G2SError, match=r"nope.txt: no such file \(given for identity_CelebA.txt\)"):
        read_celeba(tmp_path, files={"identities": tmp_path / "nope.txt"})


def test_lfw_identity_is_the_folder_name_numbered_in_sorted_order(tmp_path):
    make_lfwa(tmp_path, n=6)
    idx = read_lfwa(tmp_path)
    assert idx.has_identities and "folder names" in idx.sources["identities"]
    for r in idx.records:
        assert r.identity == r.name.split("/")[0]
        assert r.identity_number == ["Aaron_Eckhart", "Zico"].index(r.identity)


@pytest.mark.caffe
def test_identity_datums_round_trip_and_the_contract_refuses_missing_identities(tmp_path):
    from support import make_tiny_prepared

    raw = layout.identity_datum(10177, 5)
    assert layout.parse_identity_datum(raw) == (5, 10177)
    with pytest.raises(ValueError):
        layout.identity_datum(1 << 24, 0)
    without = layout.open_prepared(make_tiny_prepared(tmp_path / "a", ["A"], counts={"train": 4}))
    assert not without.has_identities
    with pytest.raises(G2SError, match=r"prepared without face identities.*identity_CelebA.txt.*Anno"):
        without.lmdb("train", layout.IDENTITIES)
    with_ids = layout.open_prepared(make_tiny_prepared(tmp_path / "b", ["A"], counts={"train": 4}, people=2))
    assert with_ids.lmdb("train", layout.IDENTITIES).is_dir()


@pytest.mark.caffe
def test_prep_writes_identities_and_adds_them_later_without_detecting_again(tmp_path, capsys):
    """A real `g2s prep` (MTCNN) on a demo-generated CelebA: identities_lmdb follows the contract;
    prepared again without the identity file it says identities: false; the file put back, a
    rerun of the same command adds them (no detection, no crops: the LMDBs are unchanged)."""
    from data_prep import demo_data
    from data_prep.lmdb_build import content_sha256, read_items
    from data_prep.prep import prepare

    root = demo_data.generate(tmp_path / "celeba", seed=11, count=24, progress=False, workers=2)
    ident = root / "identity_CelebA.txt"
    assert len(ident.read_text().splitlines()) == 24
    index = read_celeba(root)
    assert index.has_identities
    truth = {r.name: r.identity_number for r in index.records}
    assert set(truth.values()) <= set(range(1, len(demo_data.SOURCES) + 1))
    assert all(truth[demo_data.image_name(i)] == demo_data.identity_of(i, 11) for i in range(24))

    out = tmp_path / "prepared"
    kw = dict(schemes=["a", "c"], image_size=32, workers=2)
    m = prepare(index, out, **kw)
    assert m["identities"] is True and m["identity_source"]["path"] == str(ident)
    data = layout.open_prepared(out)
    for split in data.splits():
        keys = [k for k, _ in read_items(data.lmdb(split, layout.LABELS))]
        items = read_items(data.lmdb(split, layout.IDENTITIES))
        assert [k for k, _ in items] == keys
        for i, (k, v) in enumerate(items):
            assert layout.parse_identity_datum(v) == (i, truth[k.decode().split("_", 1)[1]])
        sha, _ = content_sha256(data.lmdb(split, layout.IDENTITIES))
        assert m["splits"][split]["lmdbs"]["identities"]["sha256"] == sha
        assert m["splits"][split]["identities"] == len({truth[k.decode().split("_", 1)[1]] for k in keys})

    # The same dataset prepared without the identity file ...
    bare = tmp_path / "bare"
    shutil.copytree(root, bare)
    (bare / "identity_CelebA.txt").unlink()
    out2 = tmp_path / "prepared2"
    m2 = prepare(read_celeba(bare), out2, **kw)
    assert m2["identities"] is False and "identity_CelebA.txt" in m2["identity_note"]
    assert not list(out2.glob("*/identities_lmdb"))
    before = {s: content_sha256(layout.lmdb_dir(out2, s, "a"))[0] for s in m2["splits"]}
    # ... and the file put back: the rerun adds the identities and touches nothing else.
    shutil.copy(ident, bare / "identity_CelebA.txt")
    capsys.readouterr()
    m3 = prepare(read_celeba(bare), out2, **kw)
    err = capsys.readouterr().err
    assert "identities written" in err and "detect+align" not in err and "crop+write" not in err
    assert m3["identities"] is True and "identity_note" not in m3
    assert json.loads((out2 / "manifest.json").read_text())["identities"] is True
    for s in m3["splits"]:
        assert content_sha256(layout.lmdb_dir(out2, s, "a"))[0] == before[s]
        assert m3["splits"][s]["lmdbs"]["identities"]["sha256"] == m["splits"][s]["lmdbs"]["identities"]["sha256"]
    # Nothing to do the next time.
    capsys.readouterr()
    prepare(read_celeba(bare), out2, **kw)
    assert "nothing to do" in capsys.readouterr().out
