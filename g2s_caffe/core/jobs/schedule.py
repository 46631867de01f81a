"""Run a run's jobs in dependency order over CPU slots or GPUs.

Slots: without GPUs, ``jobs`` concurrent CPU jobs (OpenBLAS threads split between them);
with GPUs, ``jobs_per_gpu`` slots per GPU.  A job marked ``extra.all_gpus`` (G2S's Step 1)
on several GPUs takes every GPU at once (`caffe train --gpu 0,1,..`, Caffe's NCCL data
parallelism; its run copy's per-GPU batch keeps the effective batch).  A job waits for the
jobs in its ``extra.depends`` only.  Progress: one tqdm bar over the iterations of all the
selected jobs, its total known from the start (finished and reused jobs count as done), plus
one line per running job every ``progress_seconds``.  SIGTERM/SIGINT: every Caffe child
snapshots and stops, the manifest is saved, and a rerun resumes; after SIGINT (Ctrl-C) the
call then raises KeyboardInterrupt, so the command stops too (SIGTERM returns the statuses, as
a batch system's requeue expects).  A full disk (a job that could not write its snapshot, or a
manifest that could not be saved) stops the other jobs the same way and raises the OSError.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from dataclasses import dataclass

from g2s_caffe.core.cpus import usable_cores
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.faults import disk_full
from g2s_caffe.core.runs import Run, commit_job, load_run
from g2s_caffe.core.jobs.hooks import JobHooks
from g2s_caffe.core.jobs.runner import SNAPSHOT_DIR, JobProcess, max_iter_of


@dataclass(frozen=True)
class SchedulerSettings:
    jobs: int = 1                        # concurrent CPU jobs (without GPUs)
    jobs_per_gpu: int = 1
    keep_snapshots: int = 2              # last K snapshot pairs kept per job
    poll_seconds: float = 1.0            # how often the scheduler looks at its jobs
    progress_seconds: float = 15.0       # how often the per-job lines are printed
    share_jobs: bool = True              # a job already trained in a sibling run is reused (reuse.py)


def gpu_memory_mb() -> dict[int, float]:
    """{pid: MiB} of the compute processes nvidia-smi sees ({} without nvidia-smi)."""
    if not shutil.which("nvidia-smi"):
        return {}
    try:
        r = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                            "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out = {}
    for line in r.stdout.splitlines():
        try:
            pid, mb = (x.strip() for x in line.split(","))
            out[int(pid)] = float(mb)
        except ValueError:
            continue
    return out


def job_busy(job_dir) -> bool:
    """Is some driver holding this job's lock (see JobProcess.try_lock)?"""
    import fcntl

    path = job_dir / ".lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class Scheduler:
    def __init__(self, run: Run, ids: list[str], cfg: SchedulerSettings, method: JobHooks,
                 gpus: tuple[int, ...] = (), out=None, on_progress=None):
        """``out``: where the per-job lines go (tqdm.write); ``on_progress(done, total)`` is
        called with the bar's iterations after every poll (for a caller's own display)."""
        from tqdm import tqdm

        # tqdm.write keeps the lines above the overall progress bar
        self.run, self.ids, self.cfg, self.gpus, self.out = run, ids, cfg, gpus, out or tqdm.write
        self.method, self.on_progress = method, on_progress
        if gpus:
            self.slots = [(g,) for g in gpus for _ in range(cfg.jobs_per_gpu)]
        else:
            self.slots = [()] * cfg.jobs
        self.free = list(range(len(self.slots)))
        self.running: dict[str, tuple[JobProcess, list[int]]] = {}
        self.stop_requested = False
        self.stop_signal: int | None = None
        self.checked: set[str] = set()     # jobs looked up for reuse (reuse.py)
        self.ended: set[str] = set()       # jobs that ended in this call without being done
        self.elsewhere: set[str] = set()   # jobs another driver holds (their lock was taken)
        self.threads = None if gpus else max(1, usable_cores() // max(1, cfg.jobs))

    # -------------------------------------------------------------- helpers
    def _commit(self, job) -> None:
        self.run = commit_job(self.run.root, job)

    def _ready(self, jid: str) -> bool | None:
        """True: start now.  False: wait for a dependency.  None: blocked for good."""
        job = self.run.job(jid)
        for dep in job.extra.get("depends", []):
            d = self.run.job(dep)
            if d.status == "done":
                continue
            external = dep not in self.ids or dep in self.elsewhere     # not trained by this call
            if d.status == "failed" or dep in self.ended or (external and d.status == "pending"):
                return None   # ended without finishing (e.g. stopped early): not before a rerun
            if external and not job_busy(self.run.path(d.dir)):
                return None   # marked running by a driver that died, or let go unfinished: rerun it first
            return False
        return True

    def _reuse(self, job) -> bool:
        """Record the job's fingerprint; True when a sibling run already trained the same job
        and this one was recorded as done with its weights (reuse.py)."""
        from g2s_caffe.core.jobs import reuse

        fp = self.method.fingerprint(self.run, job)
        if fp is None:
            return False
        job.extra["fingerprint"] = fp
        found = reuse.find_done(self.run, fp) if self.cfg.share_jobs else None
        if found is None:
            self._commit(job)
            return False
        other, done = found
        reuse.adopt(self.run, job, other, done)
        self._commit(job)
        self.out(f"[{job.id}] done: the same training as {other.run}/{done.id} (weights reused, not retrained)")
        return True

    def _take_slots(self, job) -> list[int] | None:
        if job.extra.get("all_gpus") and len(self.gpus) > 1:
            # all GPUs, one slot each
            per_gpu = {}
            for i in self.free:
                per_gpu.setdefault(self.slots[i][0], i)
            return list(per_gpu.values()) if len(per_gpu) == len(self.gpus) else None
        return [self.free[0]] if self.free else None

    def _handle_signal(self, signum, frame):
        self.stop_requested = True
        self.stop_signal = signum

    # -------------------------------------------------------------- main loop
    def run_all(self) -> dict[str, str]:
        """Run the selected jobs; return {job id: final status}."""
        from tqdm import tqdm

        todo = [j for j in self.ids if self.run.job(j).status != "done"]
        skipped = [j for j in self.ids if j not in todo]
        if skipped:
            self.out(f"{self.run.run}: {len(skipped)} job(s) already done, skipped: "
                     f"{', '.join(skipped[:6])}{' ...' if len(skipped) > 6 else ''}")
        result = {j: "done" for j in skipped}
        old = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        # The bar's total is every selected job's iterations, known before anything starts;
        # finished jobs (and, later, reused ones) count as done.
        totals = {j: max_iter_of(self.run, self.run.job(j)) for j in self.ids}
        done_iters = sum(totals[j] for j in skipped)
        # bar_n0: iterations counted as done without training them here (the ETA's rate leaves them out)
        bar_start, bar_n0 = time.monotonic(), done_iters
        # disable=None: no carriage-return bar in a file (Slurm's .out); overall_line instead
        bar = tqdm(total=sum(totals.values()), initial=done_iters, unit="it", disable=None,
                   desc=f"{self.run.run} ({len(todo)} of {len(self.ids)} jobs to run)", dynamic_ncols=True,
                   mininterval=2.0)
        last_lines = 0.0
        try:
            while todo or self.running:
                if self.stop_requested:
                    for proc, _ in self.running.values():
                        proc.interrupt()
                # start what can start
                for jid in list(todo):
                    if self.stop_requested:
                        break
                    ready = self._ready(jid)
                    if ready is None:
                        todo.remove(jid)
                        result[jid] = "blocked"
                        self.out(f"[{jid}] blocked: a job it starts from did not finish "
                                 f"({', '.join(self.run.job(jid).extra.get('depends', []))})")
                        continue
                    if not ready:
                        continue
                    job = self.run.job(jid)
                    slots = self._take_slots(job)
                    if slots is None:
                        continue
                    gpus = tuple(self.slots[i][0] for i in slots) if self.gpus else ()
                    proc = JobProcess(self.run, job, self.method, self.cfg.keep_snapshots, gpus,
                                      self.threads, log=self.out)
                    if not proc.try_lock():
                        todo.remove(jid)
                        self.elsewhere.add(jid)
                        result[jid] = "running elsewhere"
                        self.out(f"[{jid}] is being trained by another g2s process; skipped here")
                        continue
                    todo.remove(jid)
                    # Under the job's lock, from the manifest on disk: another driver may have
                    # finished the job since this one read it, and a stale copy committed here
                    # would undo that record (seen with one Slurm script submitted twice).
                    self.run = load_run(self.run.root)
                    proc.run, proc.job = self.run, self.run.job(jid)
                    job = proc.job
                    finished = job.status == "done"
                    if finished:
                        self.out(f"[{jid}] done meanwhile by another g2s process")
                    elif jid not in self.checked:        # once per job
                        self.checked.add(jid)
                        finished = self._reuse(job)
                    if finished:
                        proc.unlock()
                        result[jid] = "done"
                        done_iters += totals[jid]
                        bar_n0 += totals[jid]           # not trained here: not in the rate
                        continue
                    try:
                        started = proc.start()
                    except G2SError:
                        proc.unlock()
                        raise
                    self._commit(job)
                    if not started:
                        proc.unlock()     # after the commit: a waiting driver then sees "done"
                        result[jid] = job.status
                        done_iters += totals[jid]
                        bar_n0 += totals[jid]
                        self.out(f"[{jid}] done (its final snapshot was already there)")
                        continue
                    for i in slots:
                        self.free.remove(i)
                    self.running[jid] = (proc, slots)
                    resumed = job.extra["attempts"][-1]["resumed_from"]
                    how = f"resumed from iteration {resumed}" if resumed is not None else \
                        f"init {job.init.source}" + (f" ({job.init.path})" if job.init.path else "")
                    self.out(f"[{jid}] started: {how}" + (f" on GPU {job.gpu}" if job.gpu else ""))
                # watch the running ones
                mem = gpu_memory_mb() if self.gpus and self.running else {}
                for jid, (proc, slots) in list(self.running.items()):
                    rc = proc.poll()
                    if proc.proc.pid in mem:
                        proc.job.gpu_mem_mb = max(proc.job.gpu_mem_mb or 0, mem[proc.proc.pid])
                    if rc is None:
                        continue
                    status = proc.finish(rc)
                    self._commit(proc.job)
                    proc.unlock()         # after the commit: a waiting driver then sees the status
                    del self.running[jid]
                    self.free.extend(slots)
                    result[jid] = status
                    if status == "done":
                        done_iters += totals[jid]
                    else:
                        self.ended.add(jid)
                    extra = f"; {proc.job.extra['error'].splitlines()[-1]}" if status == "failed" else ""
                    if status == "pending" and proc.resumes_from is not None:
                        extra = f"; a rerun resumes from its snapshot at iteration {proc.resumes_from}"
                    self.out(f"[{jid}] {status} (exit {rc}){extra}")
                    if proc.out_of_space:
                        raise disk_full(self.run.path(proc.job.dir) / SNAPSHOT_DIR,
                                        f"caffe train could not write a snapshot; log {self.run.path(proc.job.log)}")
                bar.n = done_iters + sum(min(p.tail.record.last_iter, totals[j])
                                         for j, (p, _) in self.running.items())
                bar.refresh()
                if self.on_progress:
                    self.on_progress(bar.n, bar.total)
                if self.running and time.monotonic() - last_lines >= self.cfg.progress_seconds:
                    last_lines = time.monotonic()
                    for proc, _ in self.running.values():
                        self.out(proc.line())
                    if bar.disable:     # no terminal (a batch system's log): the bar as a line
                        self.out(overall_line(self.run.run, bar.n, bar.total, bar_start, bar_n0))
                if self.stop_requested and not self.running:
                    break
                if self.running or todo:
                    time.sleep(self.cfg.poll_seconds)
                    if todo and not self.running:
                        self.run = load_run(self.run.root)   # dependencies done by other drivers?
        finally:
            for proc, _ in self.running.values():   # only on an exception: stop them cleanly
                proc.interrupt()
            for proc, _ in self.running.values():
                try:
                    proc.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.proc.kill()
                try:
                    proc.finish(proc.proc.wait())
                    self._commit(proc.job)
                except OSError:
                    pass     # a full disk, already on its way up: the manifest keeps what a rerun resumes from
                finally:
                    proc.unlock()
            bar.close()
            for s, h in old.items():
                signal.signal(s, h)
        if self.stop_signal == signal.SIGINT:
            raise KeyboardInterrupt     # every job stopped at a snapshot; the command says how to resume
        for jid in todo:
            result.setdefault(jid, "pending")
        return result


def overall_line(run: str, n: int, total: int, t0: float, n0: int) -> str:
    """``run: all jobs 1234/5000 it (25 %), ETA h:mm:ss`` from the rate since ``t0`` of the
    iterations trained since then (``n0``: those counted as done without training: finished
    before, reused from a sibling run)."""
    from g2s_caffe.core.jobs.progress import fmt_eta

    dt = time.monotonic() - t0
    rate = (n - n0) / dt if dt > 0 and n > n0 else None
    eta = (total - n) / rate if rate else None
    return f"{run}: all jobs {n}/{total} it ({100 * n / max(1, total):.0f} %), ETA {fmt_eta(eta)}"
