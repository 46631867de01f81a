"""Faults of a real machine, on real filesystems: a full disk (a small tmpfs mounted here), a
read-only bind mount, a folder of another user, and Ctrl-C.  Each ends in one line and exit
code 2 (130 for Ctrl-C), leaves no temporary file, keeps every published file and manifest
valid, and a rerun finishes (after the mount is enlarged: ``mount -o remount,size=``).

Mounting needs root (these machines and CI run the tests as root); elsewhere the tests that
mount are skipped with the reason.  The permission test runs the command as another user
(setpriv), since root writes anywhere.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from g2s_caffe.core import layout
from g2s_caffe.core.disk import RERUN

from support import ROOT, TINY_TRAIN_CONFIG, make_tiny_prepared

pytestmark = pytest.mark.caffe

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs or a bind mount needs root")
OWNER, OTHER = 4242, 4243           # the folder's owner and the user the command runs as
NAMES = ["Smiling", "Eyeglasses"]


# ------------------------------------------------------------------ helpers
def _mount(*args: str) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"mount {' '.join(args)} failed here: {r.stderr.strip()}")


@contextmanager
def tmpfs(where: Path, size: str):
    """A tmpfs of ``size`` at ``where``, unmounted afterwards whatever happens."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def enlarge(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def g2s(*argv, user: int | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`g2s ARGV` in a fresh process (its stderr is what a user sees), as ``user`` if given."""
    cmd = [sys.executable, "-m", "g2s_caffe.cli", *map(str, argv)]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)


def last_line(r: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    return r.stderr.strip().splitlines()[-1]


def leftovers(root: Path) -> list[Path]:
    """Temporary files a writer left behind."""
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.suffixes]


def interrupt(cmd: list, ready, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``cmd``, press Ctrl-C once ``ready()`` (SIGINT to its whole process group, as a
    terminal does), and return how it ended."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def lmdb_digests(prepared: Path) -> dict:
    m = json.loads((prepared / layout.MANIFEST).read_text())
    return {(s, w): d["sha256"] for s, sp in m["splits"].items() for w, d in sp["lmdbs"].items()}


# ------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def celeba(tmp_path_factory) -> Path:
    """24 real-photo images in raw CelebA layout (the demo's generator)."""
    from data_prep.demo_data import generate

    return generate(tmp_path_factory.mktemp("faults") / "celeba", seed=5, count=24, progress=False)


def prep_argv(celeba: Path, out: Path) -> list:
    return ["prep", "celeba", "--root", celeba, "--attributes", "demo", "--out", out, "--workers", "1",
            "--commit-every", "1"]     # every detection on disk at once: Ctrl-C can come after the first


@pytest.fixture(scope="module")
def reference(celeba, tmp_path_factory) -> Path:
    """The same prep, uninterrupted, on an ordinary disk."""
    out = tmp_path_factory.mktemp("reference") / "prep"
    assert g2s(*prep_argv(celeba, out)).returncode == 0
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    make_tiny_prepared(root / "data", NAMES, counts={"train": 48, "val": 16}, size=32, schemes=("a", "g"))
    (root / "attrs.yaml").write_text("attributes:\n  - {name: Smiling, crop: a}\n  - {name: Eyeglasses, crop: g}\n")
    (root / "cfg.yaml").write_text(TINY_TRAIN_CONFIG)
    return root


def train_argv(tiny: Path, runs: Path, *extra) -> list:
    return ["train", "--data", tiny / "data", "--runs", runs, "--attributes", tiny / "attrs.yaml",
            "--config", tiny / "cfg.yaml", "--weights-a", "none", "--steps", "1", *extra]


# ------------------------------------------------------------------ a full disk
@ROOT_ONLY
def test_prep_on_a_full_disk_names_the_folder_and_the_need_and_resumes(celeba, reference, tmp_path):
    from data_prep.prep import crop_bytes

    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        out = mnt / "prep"
        r = g2s(*prep_argv(celeba, out))
        assert r.returncode == 2
        assert re.search(r"^WARNING: .*prep has .* free and prep \(\d+ images x 8 schemes x 16\.0 KiB\) needs about "
                         r".* more", r.stderr, re.M), r.stderr
        assert re.fullmatch(rf"g2s prep: error: no space left in {re.escape(str(out))} \(writing [^)]+\): [\d.]+ "
                            rf"(B|KiB) free; prep \(.*\) needs about [\d.]+ (KiB|MiB) more; {RERUN}", last_line(r))
        assert not leftovers(mnt) and not (out / layout.MANIFEST).exists()
        for published in out.glob("*/*_lmdb"):        # a split finished before the disk was full is whole
            assert published.is_dir() and (published / "data.mdb").stat().st_size > 0

        enlarge(mnt, "16m")
        assert g2s(*prep_argv(celeba, out)).returncode == 0
        assert lmdb_digests(out) == lmdb_digests(reference)     # as if nothing had happened
        assert not leftovers(mnt)

    # the estimate it warned with: about what a crop takes (measured per crop, all schemes)
    m = json.loads((reference / layout.MANIFEST).read_text())
    crops = [(d["bytes"], sp["count"]) for sp in m["splits"].values() for w, d in sp["lmdbs"].items()
             if w in m["schemes"]]
    per_crop = sum(b for b, _ in crops) / sum(n for _, n in crops)
    assert 0.67 < per_crop / crop_bytes(m["image_size"]) < 1.5, per_crop


@ROOT_ONLY
def test_training_on_a_full_disk_stops_at_the_snapshot_caffe_could_not_write_and_resumes(tiny, tmp_path):
    from g2s_caffe.core.jobs.space import model_bytes
    from g2s_caffe.core.runs import load_run, sha256_file

    # 20 iterations, a snapshot every 10 and one kept: the first pair fits, of the second only
    # the caffemodel (the run's files and log ~0.3 MB, a caffemodel ~0.24 MB): the driver must
    # not prune the intact pair for the one Caffe is still writing.
    with tmpfs(tmp_path / "mnt", "1100k") as mnt:
        runs = mnt / "runs"
        argv = train_argv(tiny, runs, "--keep-snapshots", "1")
        r = g2s(*argv)
        assert r.returncode == 2, r.stderr
        assert re.search(r"^disk: training 1 job\(s\) .* needs about [\d.]+ MiB more in .*runs \(.* free\)$",
                         r.stdout, re.M), r.stdout
        assert re.fullmatch(rf"g2s train: error: no space left in {re.escape(str(runs))} \(writing "
                            rf"steps_1/step1/snapshots\): [\d.]+ KiB free; training 1 job\(s\) .* needs about [\d.]+ "
                            rf"(KiB|MiB) more; {RERUN}", last_line(r))
        assert "[step1] pending" in r.stdout
        assert not leftovers(mnt)
        job = load_run(runs / "steps_1").job("step1")        # the manifest is valid and says where it stands
        assert job.status == "pending" and job.final is None
        snaps = sorted(p.name for p in (runs / "steps_1" / job.dir / "snapshots").iterdir())
        assert snaps == ["step1_iter_10.caffemodel", "step1_iter_10.solverstate"]   # the torn pair removed

        enlarge(mnt, "8m")
        r = g2s(*argv)
        assert r.returncode == 0, r.stderr
        job = load_run(runs / "steps_1").job("step1")
        assert job.status == "done" and job.extra["attempts"][-1]["resumed_from"] == 10
        final = runs / "steps_1" / job.final.path
        assert sha256_file(final) == job.final.sha256 and not leftovers(mnt)
        # the estimate the plan printed: parameters x 4 bytes is the caffemodel's size
        assert abs(model_bytes(runs / "steps_1" / job.train_val) / final.stat().st_size - 1) < 0.02


@ROOT_ONLY
def test_evaluation_on_a_full_disk_keeps_the_results_it_wrote_and_finishes_on_a_rerun(tiny, tmp_path):
    from g2s_caffe.core.evaluation.predictions import load_predictions

    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        runs = mnt / "runs"
        assert g2s(*train_argv(tiny, runs)).returncode == 0
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(mnt).free - (16 << 10)))
        r = g2s("eval", "--runs", runs, "--split", "val")
        assert r.returncode == 2
        assert re.fullmatch(rf"g2s eval: error: no space left in {re.escape(str(runs))} \(writing "
                            rf"steps_1/eval/val/[^)]+\): [\d.]+ (B|KiB) free; eval \(1 run\(s\) x 16 images\) needs "
                            rf"about [\d.]+ KiB more; {RERUN}", last_line(r))
        assert not leftovers(mnt) and not (runs / "eval_val.csv").exists()
        for f in (runs / "steps_1" / "eval" / "val").iterdir():     # what it wrote is whole
            assert f.stat().st_size > 0
        filler.unlink()
        assert g2s("eval", "--runs", runs, "--split", "val").returncode == 0
        assert load_predictions(runs / "steps_1" / "eval" / "val" / "probs.npz").probs.shape == (16, 2)



@ROOT_ONLY
def test_gen_and_compare_on_a_full_disk_say_what_they_need_and_finish_on_a_rerun(tmp_path):
    from test_compare import _eval_like_results

    demo = ROOT / "g2s_caffe" / "data" / "attributes" / "demo.yaml"
    ref = tmp_path / "ref"
    gen = ["gen", "--attributes", demo, "--monitor-size", 300]
    assert g2s(*gen, "--out", ref).returncode == 0
    results, _, _ = _eval_like_results(tmp_path, n=60)
    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        out = mnt / "gen"
        r = g2s(*gen, "--out", out)
        assert r.returncode == 2
        assert re.search(rf"^WARNING: {re.escape(str(out))} has [\d.]+ (B|KiB) free and gen \(10 attributes' nets "
                         r"and solvers\) needs about 1\.2 MiB more", r.stderr, re.M), r.stderr
        assert re.fullmatch(rf"g2s gen: error: no space left in {re.escape(str(out))} \(writing demo/[^)]+\): "
                            rf"[\d.]+ (B|KiB) free; gen \(10 attributes' nets and solvers\) needs about "
                            rf"[\d.]+ (KiB|MiB) more; {RERUN}", last_line(r))
        assert not leftovers(mnt)
        enlarge(mnt, "4m")
        assert g2s(*gen, "--out", out).returncode == 0
        made = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
        assert made == sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file())
        # the same files as on a roomy disk (their header names the command, --out included)
        assert all((out / f).read_text().replace(str(out), str(ref)) == (ref / f).read_text() for f in made)

        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(mnt).free - (16 << 10)))
        cmp = mnt / "compare"
        r = g2s("compare", results, "--resamples", "50", "--out", cmp)
        assert r.returncode == 2
        assert re.fullmatch(rf"g2s compare: error: no space left in {re.escape(str(cmp))} \(writing [^)]+\): "
                            rf"[\d.]+ (B|KiB) free; compare \(2 figure\(s\), 3 table\(s\)\) needs about "
                            rf"[\d.]+ (KiB|MiB) more; {RERUN}", last_line(r))
        assert not leftovers(mnt)
        filler.unlink()
        assert g2s("compare", results, "--resamples", "50", "--out", cmp).returncode == 0
        assert sorted(p.name for p in cmp.iterdir()) == ["compare_celeba.csv", "compare_celeba.md", "compare_celeba.png",
                                                        "table1_celeba.csv", "table1_celeba.png"]


# ------------------------------------------------------------------ folders it may not write
COMMANDS = {   # each with inputs that do not exist: the output check must come first
    "prep": lambda out: ["prep", "celeba", "--root", "/nonexistent", "--out", out / "prep"],
    "train": lambda out: ["train", "--data", "/nonexistent", "--runs", out / "runs"],
    "eval": lambda out: ["eval", "--runs", out / "runs", "--out", out / "eval.csv"],
    "demo": lambda out: ["demo", "--out", out / "demo"],
}


@ROOT_ONLY
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_read_only_mount_is_refused_before_any_work(command, tmp_path):
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    _mount("--bind", str(src), str(ro))
    try:
        _mount("-o", "remount,bind,ro", str(ro))
        r = g2s(*COMMANDS[command](ro))
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    assert r.returncode == 2
    line = last_line(r)
    assert line.startswith(f"g2s {command}: error: cannot write to {ro}/")
    assert f"{ro} is on a read-only filesystem ({ro} belongs to uid 0 (root)" in line
    assert "runs as uid 0 (root)" in line and "fix: mount it read-write (a docker volume without :ro)" in line
    assert len(r.stderr.strip().splitlines()) == 1 and not list(src.iterdir())


@ROOT_ONLY
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_folder_of_another_user_is_refused_naming_owner_user_and_fixes(command):
    # Not under pytest's tmp_path: its parents are root's (mode 0700), the other user cannot reach them.
    base = Path(tempfile.mkdtemp(prefix="g2s-faults-"))
    try:
        base.chmod(0o755)
        theirs = base / "theirs"
        theirs.mkdir(mode=0o755)
        os.chown(theirs, OWNER, OWNER)
        r = g2s(*COMMANDS[command](theirs), user=OTHER, env={**os.environ, "HOME": str(base)})
        assert r.returncode == 2
        line = last_line(r)
        assert line.startswith(f"g2s {command}: error: cannot write to {theirs}/")
        assert (f"{theirs} belongs to uid {OWNER}, mode drwxr-xr-x; this process runs as uid {OTHER}, gid {OTHER}; "
                f"fix: run as its owner (docker compose: G2S_UID={OWNER} G2S_GID={OWNER}), or chown -R "
                f"{OTHER}:{OTHER} {theirs}, or create {theirs}/") in line
        assert not list(theirs.iterdir())
    finally:
        shutil.rmtree(base)


# ------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_during_prep_keeps_the_detections_and_a_rerun_finishes(celeba, reference, tmp_path):
    out = tmp_path / "prep"
    cache = out / ".cache" / "train.jsonl"
    cmd = [sys.executable, "-m", "g2s_caffe.cli", *map(str, prep_argv(celeba, out))]
    r = interrupt(cmd, lambda: cache.is_file() and cache.stat().st_size > 0)
    assert r.returncode == 130
    assert last_line(r) == (f"g2s prep: interrupted: stopped at a safe point; finished work is kept in {out}; "
                            "rerun the same command to resume")
    kept = cache.read_text().splitlines()
    assert kept and all(json.loads(line)["name"] for line in kept)     # whole lines only
    assert not leftovers(out)
    assert g2s(*prep_argv(celeba, out)).returncode == 0
    assert lmdb_digests(out) == lmdb_digests(reference)


def test_ctrl_c_during_training_stops_at_a_snapshot_and_a_rerun_resumes(tiny, tmp_path):
    from g2s_caffe.core.runs import load_run

    runs = tmp_path / "runs"
    argv = train_argv(tiny, runs, "--set", "solver.max_iter_step1=400")
    snaps = runs / "steps_1" / "step1" / "snapshots"
    r = interrupt([sys.executable, "-m", "g2s_caffe.cli", *map(str, argv)],
                  lambda: snaps.is_dir() and any(snaps.glob("*.solverstate")))
    assert r.returncode == 130
    assert last_line(r) == (f"g2s train: interrupted: stopped at a safe point; finished work is kept in {runs}; "
                            "rerun the same command to resume")
    stopped = re.search(r"^\[step1\] pending \(exit 0\); a rerun resumes from its snapshot at iteration (\d+)$",
                        r.stdout, re.M)
    assert stopped, r.stdout
    job = load_run(runs / "steps_1").job("step1")
    assert job.status == "pending" and not Path(f"/proc/{job.extra['attempts'][-1]['pid']}").exists()
    assert g2s(*argv).returncode == 0
    job = load_run(runs / "steps_1").job("step1")
    assert job.status == "done" and job.extra["attempts"][-1]["resumed_from"] == int(stopped.group(1))


def test_a_pair_caffe_may_still_be_writing_neither_counts_nor_pushes_out_an_intact_one(tmp_path):
    from g2s_caffe.core.jobs.runner import SNAPSHOT_DIR, prune, snapshots

    folder = tmp_path / SNAPSHOT_DIR
    folder.mkdir()
    for it in (10, 20):
        for ext in ("caffemodel", "solverstate"):
            (folder / f"job_iter_{it}.{ext}").write_bytes(b"x")
    assert prune(tmp_path, "job", keep=1, written=19) == []      # the log has not passed 20 yet
    assert [s.iteration for s in snapshots(tmp_path, "job")] == [20, 10]
    assert prune(tmp_path, "job", keep=1, written=20) == [10]
