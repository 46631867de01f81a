"""`g2s train` end to end on tiny real LMDBs with the real `caffe train` (CPU).

What is and is not deterministic (Caffe 1.0, CPU): a run seeds Caffe's RNG from the
solver's random_seed, so fillers, dropout and the Data transformer's crop/mirror draws, and
the LMDB order, repeat exactly; two uninterrupted runs give bit-identical weights (tested).
A resumed run restores weights, momentum history and the iteration from the .solverstate,
but not the Data layer's LMDB cursor nor the RNG state (Caffe does not store them): after a
resume the data order and random crops restart from the beginning, so its final weights
differ from an uninterrupted run's.  What is tested: it continues at the snapshot's
iteration, with the lr policy's value for that iteration, from the snapshot's weights.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from g2s_caffe.methods.g2s.steps import final_nets, steps_of

from support import TINY_TRAIN_CONFIG as CFG, make_tiny_prepared

pytestmark = pytest.mark.caffe
NAMES = ["Smiling", "Eyeglasses"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    make_tiny_prepared(root / "data", NAMES, counts={"train": 48, "val": 16}, size=32, schemes=("a", "g"))
    (root / "attrs.yaml").write_text("attributes:\n  - {name: Smiling, crop: a}\n  - {name: Eyeglasses, crop: g}\n")
    (root / "cfg.yaml").write_text(CFG)
    return root


def g2s(tiny, runs, *extra, check=True):
    from g2s_caffe.cli import main

    argv = ["train", "--data", str(tiny / "data"), "--runs", str(runs), "--attributes",
            str(tiny / "attrs.yaml"), "--config", str(tiny / "cfg.yaml"), *extra]
    rc = main(argv)
    if check:
        assert rc == 0
    return rc


def blobs(path):
    from g2s_caffe.core.nets.weights import read_caffemodel
    return read_caffemodel(path)


TRUNK = ["conv1_1", "conv3_2", "conv5_3", "fc6", "fc7"]


def same_trunk(a, b):
    return all(all(np.array_equal(x, y) for x, y in zip(a[k], b[k])) for k in TRUNK)


@pytest.fixture(scope="module")
def chain(tiny):
    runs = tiny / "runs_chain"
    g2s(tiny, runs, "--weights-a", "none", "--steps", "1,2,3")
    return runs / "steps_1_2_3"


def test_full_chain_links_point_to_the_right_weights(chain, capsys):
    from g2s_caffe.core.runs import load_run, sha256_file

    run = load_run(chain)
    assert run.complete and run.pretrained["random_init"] and "RANDOM" in run.pretrained["WARNING"]
    assert [j.id for j in run.jobs] == ["step1", "step2/Smiling", "step2/Eyeglasses",
                                        "step3/Smiling", "step3/Eyeglasses"]
    b = blobs(run.path(run.job("step1").final.path))
    for t, name in enumerate(NAMES):
        s2, s3 = run.job(f"step2/{name}"), run.job(f"step3/{name}")
        assert s2.init.source == "B" and s3.init.source == f"C:{name}"
        init2 = blobs(run.path(s2.init.path))
        assert same_trunk(init2, b)
        assert np.array_equal(init2["fc8_attr"][0], b["fc8_joint"][0][2 * t:2 * t + 2])
        assert np.array_equal(init2["fc8_attr"][1], b["fc8_joint"][1][2 * t:2 * t + 2])
        c = blobs(run.path(s2.final.path))
        init3 = blobs(run.path(s3.init.path))
        assert set(init3) == set(c) and all(
            all(np.array_equal(x, y) for x, y in zip(init3[k], c[k])) for k in c)
        assert not same_trunk(c, init2)          # Step 2 trained
        assert s3.scheme == ("a", "g")[t] and f"/{s3.scheme}_lmdb" in run.path(s3.train_val).read_text()
    for j in run.jobs:
        assert sha256_file(run.path(j.final.path)) == j.final.sha256 and j.final.iteration == (20 if j.step == 1 else 10)
        assert (run.path(j.dir) / "curves.png").stat().st_size > 0
        rows = (run.path(j.dir) / "curves.csv").read_text().splitlines()
        assert rows[0] == "phase,iteration,name,value" and any(r.startswith("test,") for r in rows)
        assert len(list((run.path(j.dir) / "snapshots").glob("*.solverstate"))) <= 2
    nets = final_nets(run)
    assert [(a, i, j.id) for a, i, j in nets] == [(n, None, f"step3/{n}") for n in NAMES]
    # A rerun of the same command skips every finished job.
    capsys.readouterr()
    g2s(chain.parent.parent, chain.parent, "--weights-a", "none", "--steps", "1,2,3")
    assert "5 job(s) already done" in capsys.readouterr().out
    assert all(len(j.extra["attempts"]) == 1 for j in load_run(chain).jobs)


def test_seven_ablations_resolve_to_the_right_weights(tiny, chain):
    from g2s_caffe.core.runs import load_run, sha256_file

    model_a = chain / "step1" / "final.caffemodel"       # any caffemodel with the trunk's names
    a = blobs(model_a)
    runs = tiny / "runs_ablate"
    g2s(tiny, runs, "--ablations", "all", "--weights-a", str(model_a), "--set", "solver.max_iter_step1=4",
        "--set", "solver.max_iter_step23=4", "--set", "solver.snapshot=4")
    found = sorted(p.name for p in runs.iterdir())
    assert found == ["steps_1", "steps_1_2", "steps_1_2_3", "steps_1_3", "steps_2", "steps_2_3", "steps_3"]
    for name in found:
        run = load_run(runs / name)
        for job in run.jobs:
            init = job.init
            if init.source == "A" and job.step == 1:
                assert (init.path, init.sha256) == (str(model_a.resolve()), sha256_file(model_a))
                continue
            got = blobs(run.path(init.path))
            src = {"A": model_a, "B": run.path(run.job("step1").final.path) if 1 in steps_of(run) else None}
            if init.source.startswith("C:"):
                src_path = run.path(run.job(f"step2/{job.attribute}").final.path)
            else:
                src_path = src[init.source]
            assert Path(init.derived["source"]).resolve() == src_path.resolve()
            assert init.derived["source_sha256"] == sha256_file(src_path)
            assert same_trunk(got, blobs(src_path)), (name, job.id)
            want = {"steps_2": "A", "steps_3": "A", "steps_1_2": "B", "steps_1_3": "B",
                    "steps_2_3": "A" if job.step == 2 else f"C:{job.attribute}",
                    "steps_1_2_3": "B" if job.step == 2 else f"C:{job.attribute}"}[name]
            assert init.source == want, (name, job.id)
        assert same_trunk(a, blobs(model_a))
    # every distinct training ran once; the repeats reuse its weights (share.py)
    shared = {f"{name}/{job.id}": job.extra.get("shared_from")
              for name in found for job in load_run(runs / name).jobs}
    want_shared = {"steps_1_2/step1": "steps_1/step1", "steps_1_3/step1": "steps_1/step1",
                   "steps_1_2_3/step1": "steps_1/step1"}
    for attr in NAMES:
        want_shared[f"steps_2_3/step2/{attr}"] = f"steps_2/step2/{attr}"
        want_shared[f"steps_1_2_3/step2/{attr}"] = f"steps_1_2/step2/{attr}"
    assert {k: v for k, v in shared.items() if v} == want_shared
    for key, origin in want_shared.items():
        run_name, jid = key.split("/", 1)
        job, orig = load_run(runs / run_name).job(jid), load_run(runs / origin.split("/")[0]).job(jid)
        assert job.final.sha256 == orig.final.sha256 == sha256_file(load_run(runs / run_name).path(job.final.path))
        assert not (runs / run_name / job.dir / "train.log").exists()    # not trained there


def _solver_lr(base_lr, it):   # the paper's inv policy: gamma 1e-4, power 0.5
    return base_lr * (1 + 1e-4 * it) ** -0.5


def test_kill_9_then_rerun_resumes_and_skips_a_corrupt_snapshot(tiny):
    from g2s_caffe.core.runs import load_run

    runs = tiny / "runs_kill"
    cmd = [sys.executable, "-m", "g2s_caffe.cli", "train", "--data", str(tiny / "data"), "--runs", str(runs),
           "--attributes", str(tiny / "attrs.yaml"), "--config", str(tiny / "cfg.yaml"), "--weights-a", "none",
           "--steps", "1", "--set", "solver.max_iter_step1=400", "--keep-snapshots", "3"]
    snaps = runs / "steps_1" / "step1" / "snapshots"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(snaps.glob("*_iter_*.solverstate"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    caffe_pid = load_run(runs / "steps_1").job("step1").extra["attempts"][0]["pid"]
    time.sleep(0.5)
    assert not Path(f"/proc/{caffe_pid}").exists() or "zombie" in Path(f"/proc/{caffe_pid}/status").read_text()
    its = sorted(int(p.stem.split("_iter_")[1]) for p in snaps.glob("*.solverstate"))
    assert len(its) >= 2 and its[-1] < 400
    # damage the newest pair as a kill during Caffe's snapshot write would
    newest = snaps / f"step1_iter_{its[-1]}.solverstate"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    job = load_run(runs / "steps_1").job("step1")
    assert job.status == "done" and job.final.iteration == 400
    second = job.extra["attempts"][-1]
    assert second["resumed_from"] == its[-2] and any(f"iteration {its[-1]}" in c for c in job.extra["corrupt_snapshots"])
    log = (runs / "steps_1" / job.log).read_text()
    part = log.split("Resuming from")[1]
    from g2s_caffe.core.jobs.progress import parse_log
    rec = parse_log(part)
    first = min(rec.train)
    assert first >= its[-2] and first - its[-2] <= 5, (first, its)
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    solver = text_format.Merge((runs / "steps_1" / job.solver).read_text(), caffe_pb2.SolverParameter())
    assert (solver.lr_policy, solver.gamma, solver.power) == ("inv", pytest.approx(1e-4), pytest.approx(0.5))
    for it, row in rec.train.items():
        if "lr" in row:
            assert row["lr"] == pytest.approx(_solver_lr(solver.base_lr, it), rel=1e-4)


def test_two_uninterrupted_runs_are_bit_identical(tiny, chain):
    from g2s_caffe.core.runs import load_run

    runs = chain.parent          # next to the chain's run: share_jobs off, or it would be reused
    g2s(tiny, runs, "--weights-a", "none", "--steps", "1", "--set", "share_jobs=false")
    again = load_run(runs / "steps_1").job("step1")
    assert "shared_from" not in again.extra and (runs / "steps_1" / again.log).is_file()
    assert again.final.sha256 == load_run(chain).job("step1").final.sha256
    assert again.extra["fingerprint"] == load_run(chain).job("step1").extra["fingerprint"]


def _err(tiny, capsys, *extra, data=None):
    from g2s_caffe.cli import main

    capsys.readouterr()
    argv = ["train", "--data", str(data or tiny / "data"), "--runs", str(tiny / "runs_bad"), "--attributes",
            str(tiny / "attrs.yaml"), "--config", str(tiny / "cfg.yaml"), "--weights-a", "none", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert not list((tiny / "runs_bad").rglob("train.log")) and not list((tiny / "runs_bad").rglob("manifest.json"))
    return err


def test_bad_input_fails_before_any_job(tiny, tmp_path, capsys):
    import shutil

    assert "VGG_FACE.caffemodel" in _err(tiny, capsys, "--weights-a", str(tmp_path / "nope.caffemodel"))
    assert "larger than the 32x32" in _err(tiny, capsys, "--nets", str(_nets(tiny, tmp_path, 40)))
    assert "batch 64 is larger than its split" in _err(tiny, capsys, "--set", "solver.batch_size=64")
    assert "effective batch" in _err(tiny, capsys, "--set", "effective_batch=16")
    # missing LMDB
    broken = tmp_path / "broken"
    shutil.copytree(tiny / "data", broken)
    shutil.rmtree(broken / "val" / "labels_lmdb")
    err = _err(tiny, capsys, data=broken)
    assert "labels_lmdb" in err and "g2s prep" in err
    # label Datums with 3 values for 2 attributes
    three = make_tiny_prepared(tmp_path / "three", NAMES + ["Bald"], counts={"train": 48, "val": 16}, size=32,
                               schemes=("a", "g"))
    m = json.loads((three / "manifest.json").read_text())
    m["attributes"] = NAMES
    (three / "manifest.json").write_text(json.dumps(m))
    assert "label Datums hold 3 values" in _err(tiny, capsys, data=three)


def _nets(tiny, tmp_path, crop, image_size=None, **solver):
    from g2s_caffe.methods.g2s import params as hp
    from g2s_caffe.core.attributes import load_attributes
    from g2s_caffe.methods.g2s.gen import generate_tree

    net = hp.NetShape(width_mult=1 / 16, fc_dim=16, crop_size=crop, image_size=image_size or crop)
    solver = hp.SolverSettings(**{**dict(batch_size=8, test_batch_size=8, max_iter_step1=4, max_iter_step23=4,
                                         test_interval=4, snapshot=4, solver_mode="CPU"), **solver})
    out = tmp_path / f"nets{crop}"
    generate_tree(load_attributes(tiny / "attrs.yaml"), out, "custom", net, solver, "x", "test", monitor_size=16)
    return out / "custom"


def test_a_diverging_job_stops_at_the_first_nan_and_says_what_to_change(tiny, tmp_path, capsys):
    from g2s_caffe.core.runs import load_run

    runs = tiny / "runs_diverge"
    nets = _nets(tiny, tmp_path, 28, image_size=32, base_lr=1e8, max_iter_step1=400, snapshot=2)
    rc = g2s(tiny, runs, "--weights-a", "none", "--steps", "1", "--nets", str(nets),
             "--set", "solver.display=1", check=False)
    assert rc != 0
    job = load_run(runs / "steps_1").job("step1")
    assert job.status == "failed" and job.final is None
    d = job.extra["diverged"]
    assert d["loss"] in ("nan", "-nan", "inf", "-inf")
    # stopped at once, not after 400 iterations (poll every 0.1 s; CPU iterations take ms)
    assert d["iteration"] < 400
    assert d["last_finite_iteration"] is None or d["last_finite_iteration"] < d["iteration"]
    err = job.extra["error"]
    assert err.startswith("training diverged: loss = ") and "g2s gen --base-lr" in err
    assert "training diverged" in capsys.readouterr().out
    snaps = runs / "steps_1" / "step1" / "snapshots"
    finite = d["last_finite_iteration"]
    for p in snaps.glob("*.solverstate"):       # what a rerun may resume from: before the blow-up
        assert finite is not None and int(p.stem.split("_iter_")[1]) <= finite
    for it in d["snapshots_set_aside"]:
        assert (snaps / f"step1_iter_{it}.caffemodel.diverged").is_file()
    # the progress parser saw a non-finite loss as such
    from g2s_caffe.core.jobs.progress import parse_log
    rec = parse_log((runs / "steps_1" / job.log).read_text())
    assert not np.isfinite(rec.last_loss[1])


def test_the_progress_total_is_known_from_the_start_and_counts_shared_jobs_as_done(tiny, chain, monkeypatch):
    """steps_1_3 next to the chain: Step 1 is the chain's (reused, no training), Step 3 from B
    is new.  The bar's total is all five jobs' iterations from its first update on."""
    from g2s_caffe.core.jobs import schedule
    from g2s_caffe.core.runs import load_run

    trace = []

    class Recording(schedule.Scheduler):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw, on_progress=lambda n, total: trace.append((n, total)))

    monkeypatch.setattr(schedule, "Scheduler", Recording)
    g2s(tiny, chain.parent, "--weights-a", "none", "--steps", "1,3")
    run = load_run(chain.parent / "steps_1_3")
    assert run.job("step1").extra["shared_from"] in ("steps_1/step1", "steps_1_2_3/step1")   # by test order
    assert all(j.status == "done" for j in run.jobs)
    total = 20 + 2 * 10
    assert trace and {t for _, t in trace} == {total}
    assert all(a <= b for (a, _), (b, _) in zip(trace, trace[1:]))      # never goes back
    assert trace[-1][0] == total and any(n == 20 for n, _ in trace)       # the reused Step 1 counted once


def test_a_driver_that_read_the_manifest_before_another_finished_keeps_its_record(chain):
    """Two drivers of one run (a Slurm script submitted twice): driver A read the manifest while
    step1 was still pending, driver B then trained it.  A, taking the job's lock, works from the
    manifest on disk: it reports the job done by another process and writes nothing over B's
    record (a stale copy committed once undid B's "done" and failed the jobs after it)."""
    from g2s_caffe.core.jobs.schedule import Scheduler, SchedulerSettings
    from g2s_caffe.core.runs import load_run
    from g2s_caffe.methods.g2s.train.job_hooks import G2SMethod

    before = (chain / "manifest.json").read_text()
    stale = load_run(chain)                      # what A read, before B finished step1
    job = stale.job("step1")
    job.status, job.final, job.extra["attempts"] = "pending", None, []
    lines = []
    result = Scheduler(stale, ["step1"], SchedulerSettings(poll_seconds=0.05), G2SMethod("copy"),
                       out=lines.append).run_all()
    assert result == {"step1": "done"} and "[step1] done meanwhile by another g2s process" in lines, lines
    assert (chain / "manifest.json").read_text() == before
