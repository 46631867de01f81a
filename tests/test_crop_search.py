"""`g2s crop-search` on a tiny real prepared dataset: real Caffe fine-tunes of generated nets."""
from __future__ import annotations

import csv

import pytest
import yaml

from support import make_tiny_prepared

pytestmark = pytest.mark.caffe

ATTRS = ["Bald", "Eyeglasses"]


def test_crop_search_writes_an_attributes_file_gen_reads_and_resumes(tmp_path, capsys):
    from g2s_caffe import cli
    from g2s_caffe.attributes import load_attributes

    prep = make_tiny_prepared(tmp_path / "data", ATTRS, counts={"train": 16, "val": 8}, size=64,
                              schemes=("a", "g"), seed=4)
    start = tmp_path / "start.yaml"
    start.write_text(yaml.safe_dump({"dataset": "tiny", "attributes": [{"name": "Bald", "crop": "d"},
                                                                       {"name": "Eyeglasses", "crop": "g"}]}))
    argv = ["crop-search", "--data", str(prep), "--attributes", str(start), "--variant", "small",
            "--iters", "2", "--work", str(tmp_path / "w")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    scores = list(csv.DictReader(open(tmp_path / "w" / "scores.csv")))
    assert sorted((r["attribute"], r["scheme"]) for r in scores) == \
        [("Bald", "a"), ("Bald", "g"), ("Eyeglasses", "a"), ("Eyeglasses", "g")]
    acc = {(r["attribute"], r["scheme"]): float(r["accuracy"]) for r in scores}
    for r in scores:   # 8 val images: accuracies are multiples of 12.5 %
        assert float(r["accuracy"]) % 12.5 == pytest.approx(0, abs=1e-3)
    chosen = load_attributes(tmp_path / "w" / "attributes.yaml")
    assert chosen.names == ATTRS
    for a in chosen.attributes:
        best = max(acc[(a.name, s)] for s in "ag")
        assert acc[(a.name, a.crop)] == best
    assert "mean val accuracy: searched" in out
    assert (tmp_path / "w" / "crop_search.png").stat().st_size > 1000
    # `g2s gen` reads the written file.
    assert cli.main(["gen", "--attributes", str(tmp_path / "w" / "attributes.yaml"), "--variant", "small",
                     "--monitor-size", "8", "--out", str(tmp_path / "nets")]) == 0
    # Resume: everything is scored already, so nothing is retrained (the nets dir is not even rebuilt).
    (tmp_path / "w" / "attributes.yaml").unlink()
    import shutil
    shutil.rmtree(tmp_path / "w" / "nets")
    assert cli.main(argv) == 0
    assert (tmp_path / "w" / "attributes.yaml").is_file() and not (tmp_path / "w" / "nets").exists()


def test_crop_search_bad_input(tmp_path, capsys):
    from g2s_caffe import cli

    prep = make_tiny_prepared(tmp_path / "data", ATTRS, counts={"train": 4, "val": 4}, size=64, seed=1)
    base = ["crop-search", "--data", str(prep), "--variant", "small", "--work", str(tmp_path / "w")]
    good = tmp_path / "a.yaml"
    good.write_text(yaml.safe_dump({"attributes": [{"name": n, "crop": "a"} for n in ATTRS]}))
    swapped = tmp_path / "b.yaml"
    swapped.write_text(yaml.safe_dump({"attributes": [{"name": n, "crop": "a"} for n in ATTRS[::-1]]}))
    assert cli.main(base + ["--attributes", str(swapped)]) == 2
    assert "must be the data's, in its order" in capsys.readouterr().err
    assert cli.main(base + ["--attributes", str(good), "--only", "Young"]) == 2
    assert "no attribute named 'Young'" in capsys.readouterr().err
    base += ["--attributes", str(good)]
    assert cli.main(base + ["--schemes", "ah"]) == 2
    assert "crop scheme 'h' was not prepared" in capsys.readouterr().err
    assert cli.main(base + ["--init", str(tmp_path / "none.caffemodel")]) == 2
    assert "none.caffemodel: no such weights file" in capsys.readouterr().err
    assert cli.main(base + ["--variant", "full"]) == 2
    assert "images are 64 px but the full nets expect 240" in capsys.readouterr().err
    assert cli.main(base[:-2]) == 2   # no packaged list for dataset 'tiny'
    assert "no packaged attribute list for 'tiny'" in capsys.readouterr().err
