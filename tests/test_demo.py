"""`g2s demo --quick`: the whole pipeline (generate -> prep -> gen -> train -> eval -> report)
with real Caffe on a small demo dataset, and a rerun that reuses every finished stage."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from g2s_caffe import demo
from g2s_caffe.attributes import load_attributes
from g2s_caffe.crops import GENERAL_SCHEME
from g2s_caffe.errors import G2SError

ROOT = Path(__file__).resolve().parent.parent
NAMES = load_attributes(demo.ATTRIBUTES_FILE).names


def _g2s(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GLOG_minloglevel": "2"}
    return subprocess.run([sys.executable, "-m", "g2s_caffe.cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    t0 = time.time()
    r = _g2s("demo", "--quick", "--out", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r, time.time() - t0


@pytest.mark.caffe
def test_quick_demo_writes_every_output(quick):
    out, r, seconds = quick
    # Prep: the report, the contact sheet, LMDBs of all 8 schemes.
    assert (out / "prepared" / "contact_sheet.png").stat().st_size > 10_000
    for split in ("train", "val", "test"):
        assert (out / "prepared" / split / "report.csv").is_file()
    # Gen: the nets of the demo's own attribute list; Step 3 reads each attribute's crop.
    nets = out / "prototxt" / "demo"
    assert (nets / "step1" / "solver.prototxt").is_file()
    for a in load_attributes(demo.ATTRIBUTES_FILE).attributes:
        tv = (nets / "step3" / a.name / "train_val.prototxt").read_text()
        assert f"{a.crop}_lmdb" in tv, a
        assert f"{GENERAL_SCHEME}_lmdb" in (nets / "step2" / a.name / "train_val.prototxt").read_text()
    # Train: both runs, manifests, one curve per job (1 + 1 + 2 x 10).
    for run in demo.RUNS:
        assert (out / "runs" / run / "manifest.json").is_file()
    curves = sorted((out / "curves").rglob("*.png"))
    # Step 1 is trained once: the three-step run reuses the Step-1-alone run's (train/share.py)
    assert len(curves) == 1 + 2 * len(NAMES), [c.name for c in curves]
    from g2s_caffe.runs import load_run
    step1 = load_run(out / "runs" / "steps_1_2_3").job("step1")
    assert step1.extra["shared_from"] == "steps_1/step1"
    assert step1.final.sha256 == load_run(out / "runs" / "steps_1").job("step1").final.sha256
    # Eval + the demo's Table 1.
    for f in ("eval_test.csv", "table1_demo.md", "table1_demo.csv", "table1_demo.png", "report.md"):
        assert (out / f).stat().st_size > 0, f
    report = (out / "report.md").read_text()
    assert "synthetic-attribute dataset" in report and "not the paper's numbers" in report
    assert seconds < 400, seconds


@pytest.mark.caffe
def test_table_follows_from_the_eval_results(quick):
    out, _, _ = quick
    with open(out / "eval_test.csv", newline="") as f:
        ev = {(row["run"], row["attribute"]): row for row in csv.DictReader(f)}
    assert {r for r, _ in ev} == set(demo.RUNS)
    with open(out / "table1_demo.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [t["attribute"] for t in table] == NAMES
    for t in table:
        e1, e3 = ev[("steps_1", t["attribute"])], ev[("steps_1_2_3", t["attribute"])]
        n = int(e3["n"])
        assert float(t["step1"]) == pytest.approx(float(e1["accuracy"]), abs=0.01)
        assert float(t["steps123"]) == pytest.approx(float(e3["accuracy"]), abs=0.01)
        pos = int(e3["positives"])
        assert float(t["chance"]) == pytest.approx(100 * max(pos, n - pos) / n, abs=1e-3)


@pytest.mark.caffe
def test_rerun_reuses_finished_stages(quick):
    out, _, _ = quick
    before = (out / "runs" / "steps_1_2_3" / "manifest.json").read_bytes()
    t0 = time.time()
    r = _g2s("demo", "--quick", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    for stage in ("prep", "gen", "train_1", "train_1_2_3", "eval"):
        assert f"[demo] {stage}: finished before, reused" in r.stdout, stage
    assert (out / "runs" / "steps_1_2_3" / "manifest.json").read_bytes() == before
    assert time.time() - t0 < 60


def _row(run, attr, n, pos, tp, tn):
    return {"run": run, "attribute": attr, "n": str(n), "positives": str(pos), "tp": str(tp), "tn": str(tn),
            "accuracy": f"{100 * (tp + tn) / n:.4f}", "balanced_accuracy": "50.0"}


def test_demo_table_chance_comes_from_counts():
    # 3 positives of 9: always "no" gets 6 right.  6 right is not above chance; 7 is.
    res = {"steps_1": {"A": _row("steps_1", "A", 9, 3, 0, 6)},
           "steps_1_2_3": {"A": _row("steps_1_2_3", "A", 9, 3, 1, 6)}}
    (row,) = demo.demo_table(res, ["A"])
    assert row["chance"] == pytest.approx(100 * 6 / 9)
    assert not row["step1_above_chance"] and row["steps123_above_chance"]
    md = demo.table_markdown([row])
    assert "66.67 (not above chance)" in md and "77.78 |" in md
    with pytest.raises(G2SError, match="no result for attribute B"):
        demo.demo_table(res, ["A", "B"])
