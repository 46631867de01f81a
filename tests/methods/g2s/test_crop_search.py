"""`g2s crop-search` on a tiny real prepared dataset: real `g2s train` fine-tunes, real scoring."""
from __future__ import annotations

import csv
import shutil

import pytest
import yaml

from support import make_tiny_prepared
from test_eval import TRAIN_CFG

pytestmark = pytest.mark.caffe

ATTRS = ["Bald", "Eyeglasses"]


def test_crop_search_writes_an_attributes_file_gen_reads_and_resumes(tmp_path, capsys):
    from g2s_caffe import cli
    from g2s_caffe.core.attributes import load_attributes
    from g2s_caffe.core.runs import load_run

    prep = make_tiny_prepared(tmp_path / "data", ATTRS, counts={"train": 32, "val": 8}, size=32,
                              schemes=("a", "g"), seed=4)
    start = tmp_path / "start.yaml"
    start.write_text(yaml.safe_dump({"dataset": "tiny", "attributes": [{"name": "Bald", "crop": "d"},
                                                                       {"name": "Eyeglasses", "crop": "g"}]}))
    (tmp_path / "cfg.yaml").write_text(TRAIN_CFG)
    argv = ["crop-search", "--data", str(prep), "--attributes", str(start), "--config", str(tmp_path / "cfg.yaml"),
            "--iters", "4", "--work", str(tmp_path / "w")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    scores = list(csv.DictReader(open(tmp_path / "w" / "scores.csv")))
    assert sorted((r["attribute"], r["scheme"], r["iters"]) for r in scores) == \
        [("Bald", "a", "4"), ("Bald", "g", "4"), ("Eyeglasses", "a", "4"), ("Eyeglasses", "g", "4")]
    for r in scores:   # 8 val images: accuracies are multiples of 12.5 %
        assert float(r["accuracy"]) % 12.5 == pytest.approx(0, abs=1e-3)
    # Each scheme was one `g2s train` run whose Step-3 nets read that scheme, trained 4 iterations.
    for s in "ag":
        run = load_run(tmp_path / "w" / "runs" / f"{s}_iters4" / "steps_3")
        assert {j.scheme for j in run.jobs} == {s}
        assert all(j.status == "done" and j.final.iteration == 4 for j in run.jobs)
    acc = {(r["attribute"], r["scheme"]): float(r["accuracy"]) for r in scores}
    chosen = load_attributes(tmp_path / "w" / "attributes.yaml")
    assert chosen.names == ATTRS
    for a in chosen.attributes:
        assert acc[(a.name, a.crop)] == max(acc[(a.name, s)] for s in "ag")
    assert "mean val accuracy: searched" in out
    assert (tmp_path / "w" / "crop_search.png").stat().st_size > 1000
    # `g2s gen` reads the written file.
    assert cli.main(["gen", "--attributes", str(tmp_path / "w" / "attributes.yaml"), "--variant", "small",
                     "--monitor-size", "8", "--out", str(tmp_path / "nets")]) == 0
    # Resume: every pair is scored already, so nothing is trained again.
    (tmp_path / "w" / "attributes.yaml").unlink()
    shutil.rmtree(tmp_path / "w" / "runs")
    assert cli.main(argv) == 0
    assert "4 of 4 already scored" in capsys.readouterr().out
    assert (tmp_path / "w" / "attributes.yaml").is_file() and not (tmp_path / "w" / "runs").exists()


def test_the_choice_breaks_ties_to_the_current_crop_then_alphabetically():
    """Hand-made scores (accuracy, balanced accuracy) in %, where the best scheme is known."""
    from g2s_caffe.core.attributes import parse_attributes
    from g2s_caffe.methods.g2s.crop_search import choose

    attrs = parse_attributes({"dataset": "tiny", "attributes": [
        {"name": "Tie_with_current", "crop": "g"}, {"name": "Tie_without_current", "crop": "d"},
        {"name": "Clear_winner", "crop": "a"}]}, "hand-made")
    scores = {("Tie_with_current", "a", 4): (80.0, 60.0), ("Tie_with_current", "d", 4): (70.0, 90.0),
              ("Tie_with_current", "g", 4): (80.0, 60.0),
              ("Tie_without_current", "a", 4): (75.0, 50.0), ("Tie_without_current", "d", 4): (60.0, 50.0),
              ("Tie_without_current", "g", 4): (75.0, 50.0),
              ("Clear_winner", "a", 4): (70.0, 70.0), ("Clear_winner", "d", 4): (69.0, 69.0),
              ("Clear_winner", "g", 4): (90.0, 40.0)}
    by_accuracy = choose(attrs, attrs.names, ["a", "d", "g"], scores, 4, "accuracy")
    assert by_accuracy == {"Tie_with_current": "g", "Tie_without_current": "a", "Clear_winner": "g"}
    # The other metric: another winner, and a three-way tie that keeps the current crop.
    by_balanced = choose(attrs, attrs.names, ["g", "d", "a"], scores, 4, "balanced_accuracy")
    assert by_balanced == {"Tie_with_current": "d", "Tie_without_current": "d", "Clear_winner": "a"}
    # A searched subset: only its attributes are chosen.
    assert choose(attrs, ["Clear_winner"], ["a", "d"], scores, 4, "accuracy") == {"Clear_winner": "a"}


def test_crop_search_bad_input(tmp_path, capsys):
    from g2s_caffe import cli

    prep = make_tiny_prepared(tmp_path / "data", ATTRS, counts={"train": 4, "val": 4}, size=32, seed=1)
    base = ["crop-search", "--data", str(prep), "--work", str(tmp_path / "w")]
    good = tmp_path / "a.yaml"
    good.write_text(yaml.safe_dump({"attributes": [{"name": n, "crop": "a"} for n in ATTRS]}))
    swapped = tmp_path / "b.yaml"
    swapped.write_text(yaml.safe_dump({"attributes": [{"name": n, "crop": "a"} for n in ATTRS[::-1]]}))
    assert cli.main(base + ["--attributes", str(swapped)]) == 2
    assert "must be the data's, in its order" in capsys.readouterr().err
    assert cli.main(base + ["--attributes", str(good), "--only", "Young"]) == 2
    assert "no attribute named 'Young'" in capsys.readouterr().err
    assert cli.main(base + ["--attributes", str(good), "--schemes", "ah"]) == 2
    assert "crop scheme 'h' was not prepared" in capsys.readouterr().err
    assert cli.main(base + ["--attributes", str(good), "--init", str(tmp_path / "none.caffemodel")]) == 2
    assert "none.caffemodel: no such weights file" in capsys.readouterr().err
    assert cli.main(base) == 2   # no packaged list for dataset 'tiny'
    assert "no packaged attribute list for 'tiny'" in capsys.readouterr().err
