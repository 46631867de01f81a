"""The whole schedule as one Slurm submission, on a real Slurm started by the test.

The fixture starts Debian 12's munged, slurmctld and slurmd (Slurm 22.05), unpacked into the
project's cache by tools/slurm/fetch_slurm.py (`make setup`), as a one-node cluster in a
temporary directory (tools/slurm/local_slurm.py), and stops exactly those processes at the
end.  Outside CI it skips, saying why, when the kit cannot be had (no network, not Debian
12, not root); with CI=true it must run.  Every submission goes through `bash FILE`, the
script `g2s train --emit slurm` writes, with the real `caffe train` on a tiny dataset.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from g2s_caffe.methods.g2s.steps import steps_of
import yaml

from support import make_tiny_prepared

from support import ROOT
sys.path.insert(0, str(ROOT / "tools" / "slurm"))
from fetch_slurm import KitError, ensure_kit  # noqa: E402
from local_slurm import LocalSlurm, SlurmError  # noqa: E402

pytestmark = pytest.mark.caffe
NAMES = ["Smiling", "Eyeglasses"]
CFG = """net: {variant: small, crop_size: 28, fc_dim: 16}
solver: {batch_size: 8, test_batch_size: 8, max_iter_step1: 20, max_iter_step23: 10,
         test_interval: 10, test_iter: 2, snapshot: 10, display: 5}
poll_seconds: 0.2
progress_seconds: 2
"""
TIMEOUT = 600          # seconds for one submission to drain (2 CI cores)


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the local Slurm cannot run: {why}")
    pytest.skip(f"no local Slurm: {why}")


@pytest.fixture(scope="module")
def slurm():
    try:
        kit = ensure_kit(log=lambda *a: None)
    except KitError as e:
        _unavailable(f"{e} (make setup fetches it: python3 tools/slurm/fetch_slurm.py)")
    # not under pytest's tmp_path: munged wants every folder on its socket path searchable
    d = Path(tempfile.mkdtemp(prefix="g2s-slurm-"))
    cluster = LocalSlurm(kit, d, cred_expire=5)
    try:
        cluster.start()
    except SlurmError as e:
        shutil.rmtree(d, ignore_errors=True)
        _unavailable(str(e))
    print(f"\n[slurm] node idle {cluster.started_s:.1f} s after starting munged")
    yield cluster
    t0 = time.monotonic()
    cluster.stop()
    print(f"\n[slurm] stopped in {time.monotonic() - t0:.1f} s")
    for name, p in cluster.procs.items():
        assert p.poll() is not None, f"{name} (pid {p.pid}) still running"
    assert not cluster._ours(), "processes of the test cluster left running"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    make_tiny_prepared(root / "data", NAMES, counts={"train": 48, "val": 16, "test": 16}, size=32,
                       schemes=("a", "g"))
    (root / "attrs.yaml").write_text("attributes:\n  - {name: Smiling, crop: a}\n  - {name: Eyeglasses, crop: g}\n")
    (root / "cfg.yaml").write_text(CFG)
    return root


def emit(tiny, runs, *extra, out=None, check=True, kind="slurm"):
    """`g2s train ... --emit slurm` in a subprocess; returns (rc, stdout+stderr, script path)."""
    out = out or runs.parent / f"{runs.name}.submit.sh"
    cmd = [str(ROOT / ".venv" / "bin" / "g2s"), "train", "--data", str(tiny / "data"), "--runs", str(runs),
           "--attributes", str(tiny / "attrs.yaml"), "--config", str(tiny / "cfg.yaml"), "--weights-a", "none",
           "--emit", kind, "--out", str(out), *extra]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "g2s_caffe.cli"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r.returncode, r.stdout + r.stderr, out


SLURM_OPTS = ("--allow-local-paths", "--sbatch=--cpus-per-task=1")   # the data is under /tmp; 2-core node


def submit(slurm, script, env=None):
    """`bash FILE`; returns {stage: job id} from what it prints."""
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env or slurm.env(), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    ids = {}
    for stage, pat in (("step1", r"^Step 1: +job (\S+)"), ("array", r"^Steps 2/3: +array job (\S+)"),
                       ("eval", r"^Evaluation: +job (\S+)")):
        m = re.search(pat, r.stdout, re.M)
        if m:
            ids[stage] = m.group(1)
    assert r.stdout.split("job ids:")[1].split()[:len(ids)] == list(ids.values())
    return ids


def states(slurm, ids) -> dict[str, str]:
    """{job id (array tasks as J_i): state} for every job of the submission."""
    out = {}
    for jid in ids.values():
        for rec in slurm.jobs(jid):
            key = rec["JobId"] if rec.get("ArrayTaskId") in (None, "(null)") else f"{jid}_{rec['ArrayTaskId']}"
            out[key] = rec["JobState"]
    return out


def blobs(path):
    from g2s_caffe.core.nets.weights import read_caffemodel
    return read_caffemodel(path)


TRUNK = ["conv1_1", "conv3_2", "conv5_3", "fc6", "fc7"]


def check_links(run):
    """B -> each Step-2 init (trunk + fc8 rows), C_i -> each Step-3 init, by the blobs."""
    from g2s_caffe.core.runs import sha256_file

    assert run.complete, [(j.id, j.status) for j in run.jobs]
    for j in run.jobs:
        assert sha256_file(run.path(j.final.path)) == j.final.sha256
    if 1 in steps_of(run) and 2 in steps_of(run):
        b = blobs(run.path(run.job("step1").final.path))
        for t, name in enumerate(NAMES):
            init2 = blobs(run.path(run.job(f"step2/{name}").init.path))
            assert all(all(np.array_equal(x, y) for x, y in zip(init2[k], b[k])) for k in TRUNK)
            assert np.array_equal(init2["fc8_attr"][0], b["fc8_joint"][0][2 * t:2 * t + 2])
    if 2 in steps_of(run) and 3 in steps_of(run):
        for name in NAMES:
            c = blobs(run.path(run.job(f"step2/{name}").final.path))
            init3 = blobs(run.path(run.job(f"step3/{name}").init.path))
            assert set(init3) == set(c) and all(all(np.array_equal(x, y) for x, y in zip(init3[k], c[k])) for k in c)


def starts(run, job) -> int:
    """How many times Caffe started training this job (its log's "Starting Optimization")."""
    log = run.path(job.log)
    return log.read_text().count("Starting Optimization") if log.is_file() else 0


# ------------------------------------------------------------------ the chain
def test_whole_chain_through_bash_file(slurm, tiny):
    from g2s_caffe.core.runs import load_run

    runs = tiny / "runs_chain"
    _, text, script = emit(tiny, runs, *SLURM_OPTS)
    assert "1 Step-1 call(s), 2 Step-2/3 task(s), evaluation; 5 distinct trainings" in text
    assert os.access(script, os.X_OK)
    t0 = time.monotonic()
    ids = submit(slurm, script)
    assert set(ids) == {"step1", "array", "eval"}
    slurm.wait_empty(TIMEOUT)           # a hang guard: raises, naming the queue, if it never drains
    print(f"\n[slurm] chain (1 + 2 tasks + eval, 5 trainings) drained {time.monotonic() - t0:.1f} s after bash FILE")
    st = states(slurm, ids)
    assert set(st.values()) == {"COMPLETED"} and len(st) == 4, st
    # afterok held: every task started after Step 1 ended, the evaluation after every task
    step1, tasks, ev = slurm.jobs(ids["step1"])[0], slurm.jobs(ids["array"]), slurm.jobs(ids["eval"])[0]
    assert len(tasks) == 2 and all(t["StartTime"] >= step1["EndTime"] for t in tasks)
    assert ev["StartTime"] >= max(t["EndTime"] for t in tasks)
    run = load_run(runs / "steps_1_2_3")
    check_links(run)
    assert all(starts(run, j) == 1 and len(j.extra["attempts"]) == 1 for j in run.jobs)
    csv = (runs / "eval_test.csv").read_text().splitlines()
    assert csv[0].startswith("run,") and sum(r.startswith("steps_1_2_3,") for r in csv[1:]) == len(NAMES)
    assert (runs / "steps_1_2_3" / "eval" / "test" / "metrics.csv").is_file()
    logs = sorted(p.name for p in (runs / "slurm-logs").iterdir())
    assert len(logs) == 4 and any("steps23" in n and n.endswith("_1.out") for n in logs)


def _run_and_stop_a_step2_task(slurm, tiny, runs, stop, *extra):
    """Submit a chain with long Step-2/3 jobs; when task 0's Step 2 has a snapshot, ``stop(task
    record)``; wait for everything.  Returns (ids, task record, newest snapshot when stopped)."""
    _, _, script = emit(tiny, runs, *SLURM_OPTS, "--set", "solver.max_iter_step23=800",
                        "--set", "solver.snapshot=50", "--set", "solver.test_interval=500", *extra)
    ids = submit(slurm, script)
    snaps = runs / "steps_1_2_3" / "step2" / "Smiling" / "snapshots"
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not list(snaps.glob("*.solverstate")):
        time.sleep(0.05)
    time.sleep(1.0)
    task = next(r for r in slurm.jobs(ids["array"]) if r.get("ArrayTaskId") == "0")
    assert task["JobState"] == "RUNNING", task
    seen = max(int(p.stem.rsplit("_", 1)[1]) for p in snaps.glob("*.solverstate"))
    t0 = time.monotonic()
    stop(task)
    while slurm.job(task["JobId"]).get("Restarts", "0") == "0" or slurm.job(task["JobId"])["JobState"] != "RUNNING":
        # a hang guard (the task never runs again), not a speed limit
        assert time.monotonic() - t0 < TIMEOUT, f"not running again after {TIMEOUT} s: {slurm.job(task['JobId'])}"
        time.sleep(0.2)
    print(f"\n[slurm] stopped task running again after {time.monotonic() - t0:.1f} s")
    slurm.wait_empty(TIMEOUT)
    st = states(slurm, ids)
    assert set(st.values()) == {"COMPLETED"}, st
    assert slurm.job(task["JobId"])["Restarts"] == "1"
    return ids, task, seen


def _first_attempt_log(run, job) -> tuple[str, str]:
    log = run.path(job.log).read_text()
    head, tail = log.split("Starting Optimization", 2)[1:3]
    return head, tail


@pytest.fixture(scope="module")
def requeued(slurm, tiny):
    runs = tiny / "runs_requeue"
    ids, task, seen = _run_and_stop_a_step2_task(
        slurm, tiny, runs, lambda task: slurm.client("scontrol", "requeue", task["JobId"]))
    return runs, ids, seen


def test_requeue_of_a_running_step2_task_resumes_from_its_snapshot(requeued):
    from g2s_caffe.core.runs import load_run

    runs, ids, seen = requeued
    run = load_run(runs / "steps_1_2_3")
    check_links(run)
    job = run.job("step2/Smiling")
    first, *later = job.extra["attempts"]
    assert len(later) == 1, job.extra["attempts"]
    resumed = later[0]["resumed_from"]
    assert resumed is not None and seen <= resumed < 800, (seen, job.extra["attempts"])
    assert job.final.iteration == 800 and job.status == "done"
    _, tail = _first_attempt_log(run, job)
    snaps = runs / "steps_1_2_3" / "step2" / "Smiling" / "snapshots"
    assert f"Resuming from {snaps}/step2_Smiling_iter_{resumed}.solverstate" in run.path(job.log).read_text()
    assert "SGDSolver: restoring history" in run.path(job.log).read_text().split(f"iter_{resumed}.solverstate", 1)[1]
    out = next((runs / "slurm-logs").glob(f"*steps23-{ids['array']}_0.out")).read_text()
    assert "restart 0" in out and "restart 1" in out and f"resumed from iteration {resumed}" in out
    # the other task and the evaluation ran once, normally
    assert len(run.job("step2/Eyeglasses").extra["attempts"]) == 1
    assert (runs / "eval_test.csv").is_file()


def test_requeue_stops_caffe_at_a_snapshot_of_the_iteration_it_reached(requeued):
    from g2s_caffe.core.runs import load_run

    runs, _, _ = requeued
    run = load_run(runs / "steps_1_2_3")
    job = run.job("step2/Smiling")
    first, second = job.extra["attempts"]
    assert first["rc"] == 0                          # stopped by the driver's SIGINT, not killed
    head, _ = _first_attempt_log(run, job)
    stopped_at = max(int(m) for m in re.findall(r"Snapshotting to binary proto file \S+_iter_(\d+)\.caffemodel", head))
    assert "Optimization Done." in head and second["resumed_from"] == stopped_at


def test_time_limit_signal_snapshots_and_requeues_itself(slurm, tiny):
    """What Slurm does LEAD s before a task's time limit (#SBATCH --signal=B:USR1@LEAD),
    sent by hand: the task stops at a snapshot and requeues itself."""
    from g2s_caffe.core.runs import load_run

    runs = tiny / "runs_timelimit"
    ids, _, seen = _run_and_stop_a_step2_task(
        slurm, tiny, runs, lambda task: slurm.client("scancel", "--batch", "--signal=USR1", task["JobId"]),
        "--stop-before-limit", "1")
    run = load_run(runs / "steps_1_2_3")
    check_links(run)
    job = run.job("step2/Smiling")
    first, second = job.extra["attempts"]
    head, _ = _first_attempt_log(run, job)
    stopped_at = max(int(m) for m in re.findall(r"Snapshotting to binary proto file \S+_iter_(\d+)\.caffemodel", head))
    assert first["rc"] == 0 and "Optimization Done." in head           # Caffe stopped on SIGINT, cleanly
    assert second["resumed_from"] == stopped_at >= seen
    out = next((runs / "slurm-logs").glob(f"*steps23-{ids['array']}_0.out")).read_text()
    assert "time limit in 1 s: stopped at a snapshot; requeueing job" in out


def test_the_same_script_submitted_twice_trains_no_job_twice(slurm, tiny):
    from g2s_caffe.core.runs import load_run

    runs = tiny / "runs_twice"
    _, _, script = emit(tiny, runs, *SLURM_OPTS, "--set", "solver.max_iter_step1=300",
                        "--set", "solver.max_iter_step23=200", "--set", "solver.snapshot=100")
    first = submit(slurm, script)
    second = submit(slurm, script)             # while the first is queued or running
    assert set(first.values()).isdisjoint(second.values())
    slurm.wait_empty(TIMEOUT)
    st = states(slurm, {**{f"a{k}": v for k, v in first.items()}, **{f"b{k}": v for k, v in second.items()}})
    assert set(st.values()) == {"COMPLETED"} and len(st) == 8, st
    run = load_run(runs / "steps_1_2_3")
    check_links(run)
    for job in run.jobs:
        assert starts(run, job) == 1, (job.id, job.extra["attempts"])
        assert len(job.extra["attempts"]) == 1, (job.id, job.extra["attempts"])
    outs = " ".join(p.read_text() for p in (runs / "slurm-logs").glob("*.out"))
    assert "already done, skipped" in outs or "another g2s process holds its lock" in outs


def test_ablations_submit_each_distinct_training_once(slurm, tiny):
    from g2s_caffe.core.runs import list_runs

    runs = tiny / "runs_ablate"
    _, text, script = emit(tiny, runs, *SLURM_OPTS, "--ablations", "all", "--set", "solver.max_iter_step1=4",
                           "--set", "solver.max_iter_step23=4", "--set", "solver.snapshot=4")
    # Step 1 once (4 runs), per attribute: Step 2 from A, from B; Step 3 from A, B, C_A, C_B
    assert f"{1 + 6 * len(NAMES)} distinct trainings for {4 + 8 * len(NAMES)} job entries" in text
    assert f"4 Step-1 call(s), {4 * len(NAMES)} Step-2/3 task(s)" in text
    t0 = time.monotonic()
    ids = submit(slurm, script)
    slurm.wait_empty(TIMEOUT)
    print(f"\n[slurm] ablations (13 trainings, 8 tasks) drained {time.monotonic() - t0:.1f} s after bash FILE")
    assert set(states(slurm, ids).values()) == {"COMPLETED"}
    found = list_runs(runs)
    assert len(found) == 7 and all(r.complete for r in found)
    trained = [(r.run, j.id) for r in found for j in r.jobs if starts(r, j)]
    assert len(trained) == 1 + 6 * len(NAMES), trained
    for r in found:
        for j in r.jobs:
            assert starts(r, j) <= 1
            assert bool(j.extra.get("shared_from")) == (starts(r, j) == 0), (r.run, j.id)
        if 1 in steps_of(r) and 2 in steps_of(r):
            check_links(r)
    rows = (runs / "eval_test.csv").read_text().splitlines()[1:]
    assert {row.split(",")[0] for row in rows} == {r.run for r in found}


# ------------------------------------------------------------------ bad input
def test_sbatch_missing_names_the_package(tiny, tmp_path):
    runs = tiny / "runs_nosbatch"
    emit(tiny, runs, *SLURM_OPTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env["PATH"] = "/usr/bin:/bin"
    assert shutil.which("sbatch", path=env["PATH"]) is None
    r = subprocess.run(["bash", str(runs.parent / "runs_nosbatch.submit.sh")], capture_output=True, text=True, env=env)
    assert r.returncode == 127
    assert "sbatch not found" in r.stderr and "slurm-client" in r.stderr and "login node" in r.stderr


def test_a_partition_slurm_lacks_gives_slurms_error_and_what_to_change(slurm, tiny):
    runs = tiny / "runs_partition"
    _, _, script = emit(tiny, runs, *SLURM_OPTS, "--sbatch=--partition=nosuch")
    assert "--partition=nosuch" in script.read_text()
    before = slurm.queue()
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=slurm.env())
    assert r.returncode == 1
    assert "Invalid partition name specified" in r.stderr          # Slurm's own words, passed on
    assert "sinfo -s" in r.stderr and "--sbatch=--partition=NAME" in r.stderr
    assert slurm.queue() == before


def test_paths_under_tmp_are_refused_unless_allowed(slurm, tiny):
    runs = tiny / "runs_local"
    rc, text, script = emit(tiny, runs, "--sbatch=--cpus-per-task=1", check=False)
    assert rc == 2 and "local to each machine" in text and "--allow-local-paths" in text
    assert str(tiny / "data") in text and not script.exists()
    # the script checks again when it submits (here: the override taken back at submission)
    _, _, script = emit(tiny, runs, *SLURM_OPTS)
    env = dict(slurm.env(), G2S_ALLOW_LOCAL_PATHS="0")
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "local to each machine" in r.stderr and "G2S_ALLOW_LOCAL_PATHS=1" in r.stderr
    assert not slurm.queue()


# ------------------------------------------------------------------ the same chain for Kubernetes
def test_k8s_is_the_same_chain_as_three_jobs(tiny):
    runs = tiny / "runs_k8s"
    rc, text, _ = emit(tiny, runs, kind="k8s", out=tiny / "chain.yaml", check=False)
    assert rc == 2 and "not under the shared volume's mount /shared" in text
    _, _, sh = emit(tiny, runs, *SLURM_OPTS, "--ablations", "all", out=tiny / "abl.sh")
    _, _, out = emit(tiny, runs, "--ablations", "all", "--pvc-mount", str(tiny), kind="k8s",
                     out=tiny / "chain.yaml")
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    assert [d["kind"] for d in docs] == ["Job"] * 3
    step1, array, ev = docs
    assert "suspend" not in step1["spec"] and array["spec"]["suspend"] and ev["spec"]["suspend"]
    assert array["spec"]["completionMode"] == "Indexed" and array["spec"]["completions"] == 4 * len(NAMES)
    head = out.read_text().split("---")[0]
    assert f"kubectl wait --for=condition=complete --timeout=-1s job/{step1['metadata']['name']}" in head
    assert f"kubectl patch job/{array['metadata']['name']}" in head and f"job/{ev['metadata']['name']}" in head

    def bash_array(text, name):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{name}=("))
        return subprocess.run(["bash", "-c", f'{line}; printf "%s\\n" "${{{name}[@]}}"'], capture_output=True,
                              text=True).stdout.splitlines()

    script = lambda d: d["spec"]["template"]["spec"]["containers"][0]["command"][2]  # noqa: E731
    slurm_text = sh.read_text()
    assert bash_array(script(step1), "STEP1") == bash_array(slurm_text, "STEP1")
    units = bash_array(script(array), "UNITS")
    assert units == [u.strip().strip("'") for u in slurm_text.split("UNITS=(\n")[1].split("\n)")[0].splitlines()]
    assert "$JOB_COMPLETION_INDEX" in script(array) and "--if-busy wait" in script(array)
    c = array["spec"]["template"]["spec"]["containers"][0]
    assert c["volumeMounts"][0]["mountPath"] == str(tiny) and "resources" not in c      # CPU: no GPU asked
    assert script(ev).endswith(f"exec g2s eval --runs {runs}\n")
    for d in docs:
        assert subprocess.run(["bash", "-n", "-c", script(d)]).returncode == 0
