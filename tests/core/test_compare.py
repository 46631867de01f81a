"""`g2s compare` on small results files: the side-by-side table, Table 1, and bad input."""
from __future__ import annotations

import csv
import io

import pytest

from g2s_caffe import cli
from g2s_caffe.core.evaluation import published


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
    assert list(rows[0]) == ["attribute", "reproduced", "reproduced_lo", "reproduced_hi", "paper", "paper_inside",
                             "diff", "facetracer", "lnets_anet", "moon", "walk_and_learn", "affact", "kalayeh"]
    by = {r["attribute"]: r for r in rows}
    assert by["Eyeglasses"] == {"attribute": "Eyeglasses", "reproduced": "98.70", "reproduced_lo": "",
                                "reproduced_hi": "", "paper": "99.7", "paper_inside": "", "diff": "-1.00",
                                "facetracer": "98", "lnets_anet": "99", "moon": "99.5",
                                "walk_and_learn": "97", "affact": "99.6", "kalayeh": "99.3"}
    # Bare numbers: said plainly that no interval can be computed.
    assert "no interval can be computed without the image counts" in err
    avg = by["Average (paper: as printed)"]
    assert float(avg["reproduced"]) == pytest.approx(t.column_mean("ours") - 1, abs=0.005)
    assert avg["paper"] == "91.6" and avg["affact"] == "91.5"
    assert len(rows) == 41  # nothing missing: no like-for-like average row, no extra rows
    # The files: Markdown, CSV (same table), PNG.
    o = tmp_path / "o"
    assert (o / "compare_celeba.csv").read_text() == out
    assert (o / "compare_celeba.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (o / "compare_celeba.md").read_text()
    assert "| Eyeglasses | 98.70 | 99.7 |  | -1.00 |" in md
    assert "no interval can be computed without the image counts" in md
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


# ---------------------------------------------------------------- intervals and paired tests
def test_counts_give_intervals_and_the_paper_inside_count(tmp_path, capsys):
    t = published.load_table("celeba")
    n = 1000
    rows = []
    far = {"Bald", "Young", "Smiling"}           # 5 points below the paper: far outside +-2
    for a in t.attributes:
        right = round(10 * (t.value("ours", a) - (5 if a in far else 0)))
        rows.append(["celeba", a, f"{100 * right / n:.4f}", n, right - 100, 100])
    res = _write(tmp_path / "r.csv", ["dataset", "attribute", "accuracy", "n", "tp", "tn"], rows)
    rc, out, err = _g2s(capsys, res, "--format", "csv", "--out", tmp_path / "o")
    assert rc == 0, err
    by = {r["attribute"]: r for r in csv.DictReader(io.StringIO(out))}
    from g2s_caffe.core.evaluation import stats
    iv = stats.wilson_interval(997, 1000).scaled(100)            # Eyeglasses: 99.7 % of 1000
    assert by["Eyeglasses"]["reproduced_lo"] == f"{iv.lo:.2f}" and by["Eyeglasses"]["reproduced_hi"] == f"{iv.hi:.2f}"
    assert by["Eyeglasses"]["paper_inside"] == "yes" and by["Bald"]["paper_inside"] == "no"
    assert "the paper's number lies inside our 95 % interval for 37 of 40 attributes" in err
    # No per-image predictions: the means have no interval, and the output says why.
    assert by["Average (paper: as printed)"]["reproduced_lo"] == ""
    assert "no per-image predictions" in err
    md = (tmp_path / "o" / "compare_celeba.md").read_text()
    assert f"| Eyeglasses | 99.70 [{iv.lo:.2f}, {iv.hi:.2f}] | 99.7 | yes | 0.00 |" in md
    assert "37 of 40 attributes" in md


def _eval_like_results(tmp_path, n=300, seed=0):
    """Two runs written the way `g2s eval` writes them (prediction files + results CSV):
    steps_1 right on ~85 % of the decisions, steps_1_2_3 on 98 % of the first attribute's
    images, so that difference is real; the others differ by chance (5 % of decisions flipped)."""
    import numpy as np

    from g2s_caffe.core.evaluation import metrics, results
    from g2s_caffe.core.evaluation.predictions import save_predictions

    t = published.load_table("celeba")
    names = list(t.attributes)
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(names))) < 0.3).astype(int)
    keys = [f"{i:08d}_{i + 1:06d}.jpg" for i in range(n)]
    right1 = rng.random((n, len(names))) < 0.85
    right3 = right1.copy()
    flip = rng.random((n, len(names))) < 0.05               # chance changes everywhere
    right3 ^= flip
    right3[:, 0] = rng.random(n) < 0.98                     # a real gain on the first attribute
    csv_path = tmp_path / "eval_test.csv"
    rows = []
    for run, right in (("steps_1", right1), ("steps_1_2_3", right3)):
        probs = np.where(right, labels, 1 - labels) * 0.6 + 0.2
        npz = save_predictions(tmp_path / "runs" / run / "eval" / "test" / "probs.npz", keys, names, probs, labels)
        s = metrics.summarize(probs, labels, names, resamples=300)
        rows += results.result_rows(run, "celeba", "test", s, ["a"] * len(names), results.relative_to(npz, csv_path))
    csv_path.write_text(results.csv_text(results.RESULT_COLUMNS, rows))
    return csv_path, names, (right1, right3, labels)


def test_results_with_predictions_give_mean_intervals_and_table1(tmp_path, capsys):
    res, names, _ = _eval_like_results(tmp_path)
    rc, out, err = _g2s(capsys, res, "--format", "csv", "--resamples", "300", "--out", tmp_path / "o")
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[:10] == ["attribute", "reproduced", "reproduced_lo", "reproduced_hi", "paper",
                                  "paper_inside", "diff", "reproduced_balanced", "reproduced_balanced_lo",
                                  "reproduced_balanced_hi"]
    avg = {r["attribute"]: r for r in rows}["Average (paper: as printed)"]
    lo, mean, hi = float(avg["reproduced_lo"]), float(avg["reproduced"]), float(avg["reproduced_hi"])
    assert lo < mean < hi and hi - lo < 3
    assert avg["paper_inside"] == "no"       # synthetic numbers near 86 %, the paper's 91.6
    t1 = {r["run"]: r for r in csv.DictReader(open(tmp_path / "o" / "table1_celeba.csv"))}
    one = {k: float(t1["steps_1"][k]) for k in ("reproduced_lo", "reproduced", "reproduced_hi")}
    assert one["reproduced_lo"] < one["reproduced"] < one["reproduced_hi"]
    assert t1["steps_1_2_3"]["paper_inside"] == "no"
    # The same numbers again (fixed seed): the bootstrap is reproducible.
    rc, out2, _ = _g2s(capsys, res, "--format", "csv", "--resamples", "300", "--out", tmp_path / "o2")
    assert out2 == out
    # A results file moved away from its prediction files still compares, and says so.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "eval_test.csv").write_text(res.read_text())
    rc, out, err = _g2s(capsys, moved / "eval_test.csv", "--out", tmp_path / "o3")
    assert rc == 0 and "is missing; was RESULTS moved without the runs?" in out


def test_paired_comparison_of_two_runs(tmp_path, capsys):
    import numpy as np

    from g2s_caffe.core.evaluation import stats

    res, names, (right1, right3, labels) = _eval_like_results(tmp_path)
    rc, out, err = _g2s(capsys, res, "--paired", "steps_1", "steps_1_2_3", "--format", "csv", "--resamples", "400",
                        "--out", tmp_path / "o")
    assert rc == 0, err
    rows = {r["attribute"]: r for r in csv.DictReader(io.StringIO(out))}
    only_a = (right1 & ~right3).sum(axis=0)
    only_b = (~right1 & right3).sum(axis=0)
    p = [stats.mcnemar_exact(x, y) for x, y in zip(only_a, only_b)]
    holm = stats.holm(p)
    for i, a in enumerate(names):
        assert int(rows[a]["only_a_right"]) == only_a[i] and int(rows[a]["only_b_right"]) == only_b[i]
        assert float(rows[a]["p_mcnemar"]) == pytest.approx(p[i], rel=1e-5)
        assert float(rows[a]["p_adjusted"]) == pytest.approx(holm[i], rel=1e-5)
        assert rows[a]["real"] == str(holm[i] < 0.05)
    assert rows[names[0]]["real"] == "True"
    mean = rows["mean accuracy"]
    assert float(mean["diff"]) == pytest.approx(100 * (right3.mean() - right1.mean()), abs=1e-3)
    assert float(mean["diff_lo"]) < float(mean["diff"]) < float(mean["diff_hi"])
    assert "real at 5 %:" in err and "Holm" in err
    o = tmp_path / "o"
    for ext in ("md", "csv", "png"):
        assert (o / f"paired_steps_1_vs_steps_1_2_3.{ext}").stat().st_size > 0
    md = (o / "paired_steps_1_vs_steps_1_2_3.md").read_text()
    assert "exact McNemar" in md and "| real |" in md and "| noise |" in md
    # Benjamini-Hochberg on request: never fewer "real" than Holm.
    rc, out_bh, _ = _g2s(capsys, res, "--paired", "steps_1", "steps_1_2_3", "--format", "csv", "--correction", "bh",
                         "--resamples", "400", "--out", tmp_path / "o")
    bh = {r["attribute"]: r for r in csv.DictReader(io.StringIO(out_bh))}
    assert sum(bh[a]["real"] == "True" for a in names) >= sum(rows[a]["real"] == "True" for a in names)
    np.testing.assert_allclose([float(bh[a]["p_adjusted"]) for a in names], stats.benjamini_hochberg(p), rtol=1e-5)


def test_paired_needs_predictions_and_matching_images(tmp_path, capsys):
    import numpy as np

    from g2s_caffe.core.evaluation.predictions import load_predictions, save_predictions

    t = published.load_table("celeba")
    bare = _write(tmp_path / "bare.csv", ["run", "attribute", "accuracy"],
                  [[r, a, 90.0] for r in ("x", "y") for a in t.attributes])
    rc, _, err = _g2s(capsys, bare, "--paired", "x", "y", "--out", tmp_path / "o")
    assert rc == 2 and "run 'x': the results give no per-image predictions" in err
    rc, _, err = _g2s(capsys, bare, "--paired", "x", "z", "--out", tmp_path / "o")
    assert rc == 2 and "no run 'z' to pair" in err
    res, names, _ = _eval_like_results(tmp_path)
    # steps_1_2_3 evaluated on other images: a clear error, no output.
    p3 = tmp_path / "runs" / "steps_1_2_3" / "eval" / "test" / "probs.npz"
    z = load_predictions(p3)
    save_predictions(p3, [k.replace("_0", "_9", 1) for k in z.keys], z.attributes, z.probs, z.labels)
    rc, _, err = _g2s(capsys, res, "--paired", "steps_1", "steps_1_2_3", "--out", tmp_path / "p")
    assert rc == 2 and "are not the same test images" in err
    assert not (tmp_path / "p").exists()
    # An edited results file whose accuracies the prediction file does not give.
    save_predictions(p3, z.keys, z.attributes, np.clip(1 - z.probs, 0, 1), z.labels)
    rc, _, err = _g2s(capsys, res, "--paired", "steps_1", "steps_1_2_3", "--out", tmp_path / "p")
    assert rc == 2 and "from different evaluations" in err


def test_a_baseline_run_stands_next_to_its_own_published_column_and_beside_g2s(tmp_path, capsys):
    """Results with a G2S run and an LNets+ANet run (column method): each is compared with its
    method's published column, and the two are put side by side."""
    t = published.load_table("celeba")
    n = 1000
    rows = []
    for run, method, col, delta in (("steps_1_2_3", "g2s", "ours", 0.0), ("lnets_anet", "lnets_anet", "lnets_anet", -2.0)):
        for a in t.attributes:
            right = round((t.value(col, a) + delta) * n / 100)
            rows.append([run, method, "celeba", a, f"{100 * right / n:.4f}", n, right, 0])
    res = _write(tmp_path / "r.csv", ["run", "method", "dataset", "attribute", "accuracy", "n", "tp", "tn"], rows)
    rc, out, err = _g2s(capsys, res, "--out", tmp_path / "o")
    assert rc == 0, err
    o = tmp_path / "o"
    base = {r["attribute"]: r for r in csv.DictReader(open(o / "compare_celeba_lnets_anet.csv"))}
    assert base["Eyeglasses"]["paper"] == t.cells["lnets_anet"]["Eyeglasses"].text      # its own column
    assert "ours" in base["Eyeglasses"] and "lnets_anet" not in base["Eyeglasses"]      # G2S's as another method
    assert float(base["Eyeglasses"]["diff"]) == pytest.approx(-2.0, abs=0.1)
    main = {r["attribute"]: r for r in csv.DictReader(open(o / "compare_celeba.csv"))}
    assert main["Eyeglasses"]["paper"] == t.cells["ours"]["Eyeglasses"].text
    md = (o / "compare_celeba.md").read_text()
    assert "## Methods side by side" in md and "--paired lnets_anet steps_1_2_3" in md
    assert "reproduced (lnets_anet)" in md and published.METHOD_LABELS["lnets_anet"] in md
