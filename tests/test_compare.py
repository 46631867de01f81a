"""`g2s compare` on small results files: the side-by-side table, Table 1, and bad input."""
from __future__ import annotations

import csv
import io

import pytest

from g2s_caffe import cli, published


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _g2s(capsys, *argv):
    rc = cli.main(["compare", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_side_by_side_csv_with_one_column_per_method(tmp_path, capsys):
    t = published.load_table("celeba")
    # Paper's numbers minus 1 for every attribute: diff -1 everywhere, mean = column mean - 1.
    res = _write(tmp_path / "r.csv", ["attribute", "accuracy"],
                 [[a, t.value("ours", a) - 1] for a in t.attributes])
    rc, out, err = _g2s(capsys, res, "--dataset", "celeba", "--format", "csv", "--out", tmp_path / "o")
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["attribute", "reproduced", "paper", "diff",
                             "facetracer", "lnets_anet", "moon", "walk_and_learn", "affact", "kalayeh"]
    by = {r["attribute"]: r for r in rows}
    assert by["Eyeglasses"] == {"attribute": "Eyeglasses", "reproduced": "98.70", "paper": "99.7",
                                "diff": "-1.00", "facetracer": "98", "lnets_anet": "99", "moon": "99.5",
                                "walk_and_learn": "97", "affact": "99.6", "kalayeh": "99.3"}
    avg = by["Average (paper: as printed)"]
    assert float(avg["reproduced"]) == pytest.approx(t.column_mean("ours") - 1, abs=0.005)
    assert avg["paper"] == "91.6" and avg["affact"] == "91.5"
    assert len(rows) == 41  # nothing missing: no like-for-like average row, no extra rows
    # The files: Markdown, CSV (same table), PNG.
    o = tmp_path / "o"
    assert (o / "compare_celeba.csv").read_text() == out
    assert (o / "compare_celeba.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (o / "compare_celeba.md").read_text()
    assert "| Eyeglasses | 98.70 | 99.7 | -1.00 |" in md
    assert not (o / "table1_celeba.csv").exists()   # no step-combination runs given
    assert not list(o.glob(".*tmp"))                 # no temp files left behind


def test_missing_extra_and_the_papers_own_inconsistency_are_reported(tmp_path, capsys):
    t = published.load_table("lfwa")
    rows = [["lfwa", a, 80.0, 75.0] for a in t.attributes if a not in ("Young", "Bald")]
    rows.append(["lfwa", "Has_Tattoo", 60.0, 55.0])
    res = _write(tmp_path / "r.csv", ["dataset", "attribute", "accuracy", "balanced_accuracy"], rows)
    rc, out, err = _g2s(capsys, res, "--out", tmp_path / "o")
    assert rc == 0, err
    assert "missing: 2 of 40 lfwa attributes have no result" in out and "Bald, Young" in out
    assert "extra: 1 attribute(s)" in out and "Has_Tattoo" in out
    assert "prints 87.1 as the average of Kalayeh et al. [6], but its column's mean is 87.50" in out
    table = list(csv.DictReader(open(tmp_path / "o" / "compare_lfwa.csv")))
    by = {r["attribute"]: r for r in table}
    assert by["Young"]["reproduced"] == "" and by["Young"]["paper"] == "86.7"   # kept, marked empty
    assert by["Has_Tattoo"]["reproduced"] == "60.00" and by["Has_Tattoo"]["paper"] == ""
    like = by["Average over the 38 attributes present"]
    present = [a for a in t.attributes if a not in ("Young", "Bald")]
    assert float(like["paper"]) == pytest.approx(sum(t.value("ours", a) for a in present) / 38, abs=0.005)
    assert like["reproduced"] == "80.00" and like["reproduced_balanced"] == "75.00"
    assert by["Average (paper: as printed)"]["diff"] == ""  # not comparable with missing attributes
    md = (tmp_path / "o" / "compare_lfwa.md").read_text()
    assert "Bald, Young" in md and "Has_Tattoo" in md


def test_table1_from_several_runs(tmp_path, capsys):
    t = published.load_table("celeba")
    rows = []
    for run, acc in (("steps_1", 90.0), ("steps_1_3", 91.0), ("steps_1_2_3", 92.0), ("my_probe", 50.0)):
        rows += [[run, a, acc] for a in t.attributes]
    res = _write(tmp_path / "runs.csv", ["run", "attribute", "accuracy"], rows)
    rc, out, err = _g2s(capsys, res, "--dataset", "celeba", "--out", tmp_path / "o")
    assert rc == 0, err
    # The per-attribute comparison uses the full strategy's run.
    assert "reproduced (steps_1_2_3)" in out
    t1 = {r["run"]: r for r in csv.DictReader(open(tmp_path / "o" / "table1_celeba.csv"))}
    assert list(t1) == ["steps_1", "steps_2", "steps_3", "steps_1_2", "steps_1_3", "steps_2_3", "steps_1_2_3"]
    assert t1["steps_1"]["reproduced"] == "90.00" and t1["steps_1"]["paper"] == "90.6"
    assert t1["steps_1"]["diff"] == "-0.60"
    assert t1["steps_1_2_3"]["diff"] == "0.40" and t1["steps_1_2_3"]["attributes"] == "40"
    assert t1["steps_2"]["reproduced"] == ""
    assert "not run: steps_2, steps_3, steps_1_2, steps_2_3" in out
    assert "not step combinations (not in Table 1): my_probe" in out
    assert (tmp_path / "o" / "table1_celeba.png").stat().st_size > 1000
    # A separate ablations file, and choosing another run.
    rc, out, err = _g2s(capsys, res, "--dataset", "celeba", "--run", "my_probe", "--ablations", "none",
                        "--out", tmp_path / "p")
    assert rc == 0 and "reproduced (my_probe)" in out
    assert not (tmp_path / "p" / "table1_celeba.csv").exists()


@pytest.mark.parametrize("text,message", [
    ("", "r.csv:1: empty file"),
    ("attr,acc\nBald,90\n", "r.csv:1: no 'attribute' column"),
    ("attribute,accuracy\nBald,90\nBangs,ninety\n", "r.csv:3: accuracy of Bangs: 'ninety' is not a number"),
    ("attribute,accuracy\nBald,90\nBangs,90,1\n", "r.csv:3: 3 fields, the header has 2"),
    ("attribute,accuracy\nBald,90\nBald,91\n", "r.csv:3: attribute 'Bald' appears twice"),
    ("attribute,accuracy\nBald,190\n", "r.csv:2: accuracy of Bald: 190 is not a percentage"),
    ("attribute,accuracy\nBald,0.9\nBangs,0.95\n", "must be in percent"),
    ("attribute,accuracy\n,90\n", "r.csv:2: empty attribute name"),
    ("attribute,accuracy\nFoo,90\n", "none of its 1 attributes is one of celeba's"),
    ("run,attribute,accuracy\na,Bald,90\nb,Bald,91\n", "2 runs (a, b); pick one with --run"),
])
def test_malformed_results_are_clear_errors(tmp_path, capsys, text, message):
    (tmp_path / "r.csv").write_text(text)
    rc, out, err = _g2s(capsys, tmp_path / "r.csv", "--dataset", "celeba", "--out", tmp_path / "o")
    assert rc == 2
    assert message in err
    assert not (tmp_path / "o").exists()   # nothing half-written


def test_ablations_from_a_separate_file(tmp_path, capsys):
    t = published.load_table("lfwa")
    res = _write(tmp_path / "r.csv", ["attribute", "accuracy"], [[a, 88.0] for a in t.attributes])
    abl = _write(tmp_path / "abl.csv", ["run", "attribute", "accuracy"],
                 [[run, a, acc] for run, acc in (("steps_2", 83.0), ("steps_2_3", 86.0)) for a in t.attributes])
    rc, out, err = _g2s(capsys, res, "--dataset", "lfwa", "--ablations", abl, "--out", tmp_path / "o")
    assert rc == 0, err
    t1 = {r["run"]: r for r in csv.DictReader(open(tmp_path / "o" / "table1_lfwa.csv"))}
    assert t1["steps_2"]["reproduced"] == "83.00" and t1["steps_2"]["paper"] == "83.2"
    assert t1["steps_2_3"]["diff"] == "-0.30" and t1["steps_1_2_3"]["reproduced"] == ""
    assert "Table 1" in (tmp_path / "o" / "compare_lfwa.md").read_text()
