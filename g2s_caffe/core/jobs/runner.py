"""One training job = one `caffe train` process, resumable after kill -9.

Start: the job's init weights come from its method (``hooks.JobHooks.resolve_init``: from the
run manifest only, e.g. G2S's Model A, B or C_i, checked against their sha256), and Caffe
runs on the job's run copies with its log appended to the job's train.log (Caffe's own
format).  Nothing here knows which method the job belongs to.

Resume: the newest snapshot pair whose .solverstate and .caffemodel both parse (protobuf)
and agree on the iteration is passed as `--snapshot`; a damaged newer pair (a kill during
Caffe's non-atomic snapshot write) is renamed *.corrupt and the one before it is used.
SIGINT makes Caffe snapshot and stop (-sigint_effect=stop, then Solver::Solve's
snapshot_after_train); the driver turns its own SIGTERM/SIGINT into that, and Caffe starts
with SIGTERM blocked, so a SIGTERM sent to every process of a job (Slurm) cannot kill it first.  The child gets
PR_SET_PDEATHSIG=SIGKILL, so a kill -9 of the driver never leaves an orphan training on.

Divergence: a non-finite training loss stops the job at once (SIGKILL, so Caffe writes no
snapshot of the broken weights); snapshots newer than the last finite loss are set aside as
*.diverged and the job fails with what to change.  A rerun resumes from before the blow-up.

Finish: the snapshot at max_iter is copied to final.caffemodel (temp + os.replace), hashed
and recorded with its iteration; the curves are written; the last K snapshots are kept.

Full disk: Caffe cannot write a snapshot (it aborts on "Check failed: proto.SerializeToOstream",
or, for a net smaller than its stream buffer, leaves a truncated file that the check above sets
aside).  When that happens with less than a snapshot pair free, the torn snapshot files are
removed, the job stays pending (a rerun resumes from its newest intact snapshot) and
``out_of_space`` tells the scheduler to stop.
"""
from __future__ import annotations

import ctypes
import fcntl
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from g2s_caffe.core.atomic import copy_atomic
from g2s_caffe.core.disk import free_bytes
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.runs import Final, Job, Run, sha256_file
from g2s_caffe.core.jobs.hooks import JobHooks
from g2s_caffe.core.jobs.progress import LogTail, Speed, job_line
from g2s_caffe.core.jobs.space import model_bytes
from g2s_caffe.core.nets.protofiles import read_text_proto
from g2s_caffe.core.jobs.provenance import now

SNAPSHOT_DIR = "snapshots"
LOG = "train.log"
FINAL = "final.caffemodel"
SNAPSHOT_WRITE_FAILED = "Check failed: proto.SerializeToOstream"   # Caffe's io.cpp, on a failed write
LOG_TAIL_BYTES = 1500           # of train.log, kept with a failed job's error


def caffe_tool() -> str:
    path = Path(sys.executable).parent / "caffe"
    if path.exists():
        return str(path)
    found = shutil.which("caffe")
    if not found:
        raise G2SError("the `caffe` tool is not in the venv (.venv/bin/caffe) nor on PATH; run `make setup`")
    return found


# ------------------------------------------------------------------ snapshots
@dataclass(frozen=True)
class Snapshot:
    iteration: int
    caffemodel: Path
    solverstate: Path


def snapshot_stem(job: Job) -> str:
    return job.id.replace("/", "_")


def snapshots(job_dir: Path, stem: str) -> list[Snapshot]:
    """Complete-looking pairs (both files present), newest first."""
    pat = re.compile(rf"^{re.escape(stem)}_iter_(\d+)\.solverstate$")
    out = []
    folder = job_dir / SNAPSHOT_DIR
    for p in folder.glob(f"{stem}_iter_*.solverstate") if folder.is_dir() else ():
        m = pat.match(p.name)
        cm = p.with_name(f"{stem}_iter_{m.group(1)}.caffemodel") if m else None
        if m and cm.is_file():
            out.append(Snapshot(int(m.group(1)), cm, p))
    return sorted(out, key=lambda s: -s.iteration)


def check_snapshot(s: Snapshot) -> str | None:
    """None if the pair is usable, else why not (parsed, not just stat'ed)."""
    from caffe.proto import caffe_pb2

    try:
        state = caffe_pb2.SolverState.FromString(s.solverstate.read_bytes())
    except Exception as e:
        return f"{s.solverstate.name}: does not parse ({type(e).__name__})"
    if state.iter != s.iteration:
        return f"{s.solverstate.name}: iter {state.iter} != {s.iteration}"
    if not state.history:
        return f"{s.solverstate.name}: no momentum history"
    try:
        net = caffe_pb2.NetParameter.FromString(s.caffemodel.read_bytes())
    except Exception as e:
        return f"{s.caffemodel.name}: does not parse ({type(e).__name__})"
    # A param shared by name (a siamese net) is stored by every layer that uses it; the solver
    # keeps one history per distinct param.
    blobs = len({(l.param[i].name if i < len(l.param) and l.param[i].name else (l.name, i))
                 for l in net.layer for i in range(len(l.blobs))})
    if blobs != len(state.history):
        return f"{s.caffemodel.name}: {blobs} blobs, the solverstate has {len(state.history)} histories"
    return None


def latest_valid(job_dir: Path, stem: str, log=print) -> tuple[Snapshot | None, list[str]]:
    """The newest usable snapshot; damaged newer ones are renamed *.corrupt (kept for a look)."""
    dropped = []
    for s in snapshots(job_dir, stem):
        why = check_snapshot(s)
        if why is None:
            return s, dropped
        for p in (s.caffemodel, s.solverstate):
            os.replace(p, p.with_name(p.name + ".corrupt"))
        dropped.append(f"iteration {s.iteration}: {why}")
        log(f"  snapshot at iteration {s.iteration} is damaged ({why}); falling back to the one before it")
    return None, dropped


def prune(job_dir: Path, stem: str, keep: int, written: int | None = None) -> list[int]:
    """Delete all but the newest ``keep`` complete pairs.  ``written``: while Caffe runs, the
    iteration its log has reached; a newer pair may still be being written (both files there,
    the second one short: a kill or a full disk then leaves it torn), so it neither counts as
    kept nor is touched."""
    gone = []
    done = [s for s in snapshots(job_dir, stem) if written is None or s.iteration <= written]
    for s in done[keep:]:
        for p in (s.caffemodel, s.solverstate):
            p.unlink(missing_ok=True)
        gone.append(s.iteration)
    return gone


def max_iter_of(run: Run, job: Job) -> int:
    """The iterations the job's solver trains for."""
    from caffe.proto import caffe_pb2

    return read_text_proto(run.path(job.solver), caffe_pb2.SolverParameter()).max_iter


# ------------------------------------------------------------------ the process
def _die_with_parent():   # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    # SIGTERM blocked (the mask survives exec): a batch system signals every process of a job
    # (Slurm on preemption or requeue), and Caffe, which handles only SIGINT/SIGHUP, would die
    # at once (glog's failure handler) without a snapshot.  The driver turns its own SIGTERM
    # into SIGINT, on which Caffe snapshots and stops; SIGKILL still ends it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


class JobProcess:
    """A running `caffe train` of one job (see the module docstring)."""

    def __init__(self, run: Run, job: Job, method: JobHooks, keep: int, gpus: tuple[int, ...] = (),
                 threads: int | None = None, log=print):
        self.run, self.job, self.keep, self.gpus, self.log = run, job, keep, gpus, log
        self.method, self.threads = method, threads
        self.dir = run.path(job.dir)
        self.stem = snapshot_stem(job)
        self.proc: subprocess.Popen | None = None
        self.tail = LogTail(run.path(job.log))
        self.speed = Speed()
        self.max_iter = max_iter_of(run, job)
        self.lock_fd = None
        self.diverged: tuple[int, float, int | None] | None = None   # (iteration, loss, last finite)
        self.out_of_space = False         # Caffe could not write a snapshot: the disk is full
        self.resumes_from: int | None = None   # a pending job's newest intact snapshot
        self._losses_before = 0

    def try_lock(self) -> bool:
        """One driver per job, also across machines of a cluster (flock on the job dir)."""
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.lock_fd = fd
        return True

    def unlock(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def start(self) -> bool:
        """Launch Caffe; False when the job turned out finished already (final snapshot there)."""
        snap, dropped = latest_valid(self.dir, self.stem, self.log)
        job = self.job
        if dropped:
            job.extra.setdefault("corrupt_snapshots", []).extend(dropped)
        job.init = self.method.resolve_init(self.run, job)
        if snap is not None and snap.iteration >= self.max_iter:
            self.finish_done(snap)
            return False
        cmd = [caffe_tool(), "train", f"--solver={self.run.path(job.solver)}",
               "--sigint_effect=stop", "--sighup_effect=snapshot"]
        if snap is not None:
            cmd.append(f"--snapshot={snap.solverstate}")
        elif job.init.path:
            cmd.append(f"--weights={self.run.path(job.init.path)}")
        if self.gpus:
            cmd.append(f"--gpu={','.join(str(g) for g in self.gpus)}")
        env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
        if self.threads:
            env.update(OPENBLAS_NUM_THREADS=str(self.threads), OMP_NUM_THREADS=str(self.threads))
        self.tail.poll()                      # earlier attempts' lines: not this process's
        self._losses_before = self.tail.record.loss_lines
        self.tail.record.last_iter = snap.iteration if snap else 0   # where this attempt starts
        self.tail.record.first_bad_iter = None
        logf = open(self.run.path(job.log), "ab")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.dir, preexec_fn=_die_with_parent, start_new_session=True)
        logf.close()
        job.status = "running"
        job.started = job.started or now()
        job.gpu = ",".join(map(str, self.gpus)) if self.gpus else None
        job.extra.setdefault("attempts", []).append(
            {"started": now(), "resumed_from": snap.iteration if snap else None, "pid": self.proc.pid,
             "command": cmd[1:]})
        return True

    def poll(self) -> int | None:
        rec = self.tail.poll()
        rc = self.proc.poll() if self.proc else None
        if (self.proc and rc is None and rec.loss_lines > self._losses_before
                and not math.isfinite(rec.last_loss[1])):
            self.diverged = (rec.first_bad_iter, rec.last_loss[1], rec.last_finite_iter)
            self.proc.kill()
            return self.proc.wait()
        if self.proc and rc is None:
            self._sample_memory()
            prune(self.dir, self.stem, self.keep, written=rec.last_iter)
        return rc

    def _sample_memory(self) -> None:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
            m = re.search(r"VmHWM:\s+(\d+) kB", text)
            if m:
                mb = int(m.group(1)) / 1024
                self.job.extra["peak_rss_mb"] = max(self.job.extra.get("peak_rss_mb", 0), round(mb, 1))
        except OSError:
            pass

    def line(self) -> str:
        rec = self.tail.record
        it = rec.last_iter
        return job_line(self.job.id, it, self.max_iter, rec.latest("loss"), rec.latest("lr"),
                        self.speed.rate(it), self.job.gpu)

    def interrupt(self) -> None:
        """Ask Caffe to snapshot and stop (its -sigint_effect)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def finish(self, rc: int) -> str:
        """After the process ended: done, pending (stopped early: resumable) or failed."""
        self.tail.poll()
        attempt = self.job.extra["attempts"][-1]
        attempt.update(ended=now(), rc=rc)
        snap, dropped = latest_valid(self.dir, self.stem, self.log)
        if dropped:
            self.job.extra.setdefault("corrupt_snapshots", []).extend(dropped)
        if self.diverged:
            self._fail_diverged()
        elif rc == 0 and snap is not None and snap.iteration >= self.max_iter:
            self.finish_done(snap)
        elif (rc != 0 or dropped) and self._disk_full(rc):
            self._remove_torn(snap)
            self.out_of_space = True
            self.job.status = "pending"     # a rerun resumes once there is space
        elif rc == 0 or rc == -signal.SIGINT:
            self.job.status = "pending"     # stopped early on request: a rerun resumes
        else:
            self.job.status = "failed"
            self.job.extra["error"] = f"caffe exited with {rc}; log tail:\n{self._log_tail()}"
        if self.job.status == "pending":
            self.resumes_from = snap.iteration if snap else None
        return self.job.status

    def _remove_torn(self, intact: Snapshot | None) -> None:
        """Remove the snapshot files newer than the newest intact pair: what the full disk cut
        short (freeing their space lets the manifest record the job)."""
        newest = intact.iteration if intact else -1
        pat = re.compile(rf"^{re.escape(self.stem)}_iter_(\d+)\.(caffemodel|solverstate)(\.corrupt)?$")
        for p in (self.dir / SNAPSHOT_DIR).iterdir():
            m = pat.match(p.name)
            if m and int(m.group(1)) > newest:
                p.unlink()

    def _log_tail(self) -> str:
        log = self.run.path(self.job.log)
        return log.read_bytes()[-LOG_TAIL_BYTES:].decode("utf-8", "replace") if log.is_file() else ""

    def _disk_full(self, rc: int) -> bool:
        """Did Caffe stop, or write a damaged snapshot, because the disk is full?"""
        if rc != 0 and SNAPSHOT_WRITE_FAILED in self._log_tail():
            return True
        return free_bytes(self.dir) < 2 * model_bytes(self.run.path(self.job.train_val))

    def _fail_diverged(self) -> None:
        it, loss, finite = self.diverged
        aside = []
        for s in snapshots(self.dir, self.stem):
            if finite is None or s.iteration > finite:
                for p in (s.caffemodel, s.solverstate):
                    os.replace(p, p.with_name(p.name + ".diverged"))
                aside.append(s.iteration)
        self.job.status = "failed"
        self.job.extra["diverged"] = {"iteration": it, "loss": str(loss), "last_finite_iteration": finite,
                                      "snapshots_set_aside": aside}
        before = f"the last finite loss was at iteration {finite}" if finite is not None else "no finite loss yet"
        self.job.extra["error"] = (
            f"training diverged: loss = {loss} at iteration {it} ({before}; log {self.job.log}). "
            f"Lower the learning rate (regenerate the nets with `g2s gen --base-lr LR ...` and pass them with "
            f"--nets; this run's solver: {self.job.solver}) or check the initial weights "
            f"({self.job.init.path or self.job.init.source}), then rerun"
            + (f": it resumes from the newest snapshot at or before iteration {finite}" if finite is not None else "")
            + (f" (snapshots {aside} set aside as *.diverged)" if aside else "") + ".")

    def finish_done(self, snap: Snapshot) -> None:
        from g2s_caffe.core.jobs.curves import write_curves

        final = copy_atomic(snap.caffemodel, self.dir / FINAL)
        self.job.final = Final(self.run.rel(final), sha256_file(final), snap.iteration)
        self.job.status = "done"
        self.job.finished = now()
        log = self.run.path(self.job.log)
        if log.is_file():
            write_curves(log, self.dir, f"{self.run.run} {self.job.id}")
        prune(self.dir, self.stem, self.keep)
