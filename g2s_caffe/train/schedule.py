"""Run a run's jobs in dependency order over CPU slots or GPUs.

Slots: without --gpus, ``jobs`` concurrent CPU jobs (OpenBLAS threads split between them);
with --gpus, ``jobs_per_gpu`` slots per GPU.  Step 1 on several GPUs takes every GPU at once
(`caffe train --gpu 0,1,..`, Caffe's NCCL data parallelism; the run copy's per-GPU batch
keeps the effective batch).  Steps 2/3 are independent per attribute, Step 3/<a> waits for
Step 2/<a> only.  Progress: a tqdm bar over all jobs' iterations plus one line per running
job every ``progress_seconds``.  SIGTERM/SIGINT: every Caffe child snapshots and stops, the
manifest is saved, and a rerun resumes.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from ..errors import G2SError
from ..runs import Run, commit_job, load_run
from .config import TrainConfig
from .runner import JobProcess


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
    def __init__(self, run: Run, ids: list[str], cfg: TrainConfig, gpus: tuple[int, ...] = (),
                 out=None):
        from tqdm import tqdm

        # tqdm.write keeps the lines above the overall progress bar
        self.run, self.ids, self.cfg, self.gpus, self.out = run, ids, cfg, gpus, out or tqdm.write
        if gpus:
            self.slots = [(g,) for g in gpus for _ in range(cfg.jobs_per_gpu)]
        else:
            self.slots = [()] * cfg.jobs
        self.free = list(range(len(self.slots)))
        self.running: dict[str, tuple[JobProcess, list[int]]] = {}
        self.stop_requested = False
        self.checked: set[str] = set()     # jobs looked up for reuse (share.py)
        cores = os.cpu_count() or 1
        self.threads = None if gpus else max(1, cores // max(1, cfg.jobs))

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
            if d.status == "failed" or (dep not in self.ids and d.status == "pending"):
                return None
            if dep not in self.ids and d.status == "running" and not job_busy(self.run.path(d.dir)):
                return None   # marked running by a driver that died: rerun that job first
            return False
        return True

    def _reuse(self, job) -> bool:
        """Record the job's fingerprint; True when a sibling run already trained the same job
        and this one was recorded as done with its weights (share.py)."""
        from . import share

        fp = share.fingerprint(self.run, job, self.cfg.head_init)
        if fp is None:
            return False
        job.extra["fingerprint"] = fp
        found = share.find_done(self.run, fp) if self.cfg.share_jobs else None
        if found is None:
            self._commit(job)
            return False
        other, done = found
        share.adopt(self.run, job, other, done)
        self._commit(job)
        self.out(f"[{job.id}] done: the same training as {other.run}/{done.id} (weights reused, not retrained)")
        return True

    def _take_slots(self, job) -> list[int] | None:
        if job.step == 1 and len(self.gpus) > 1:
            # all GPUs, one slot each
            per_gpu = {}
            for i in self.free:
                per_gpu.setdefault(self.slots[i][0], i)
            return list(per_gpu.values()) if len(per_gpu) == len(self.gpus) else None
        return [self.free[0]] if self.free else None

    def _handle_signal(self, signum, frame):
        self.stop_requested = True

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
        totals = {}
        bar = tqdm(total=0, unit="it", desc=f"{self.run.run} ({len(todo)} jobs)", dynamic_ncols=True,
                   mininterval=2.0)
        done_iters = 0
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
                    if jid not in self.checked:          # once per job, not every poll
                        self.checked.add(jid)
                        if self._reuse(self.run.job(jid)):
                            todo.remove(jid)
                            result[jid] = "done"
                            continue
                    job = self.run.job(jid)
                    slots = self._take_slots(job)
                    if slots is None:
                        continue
                    gpus = tuple(self.slots[i][0] for i in slots) if self.gpus else ()
                    proc = JobProcess(self.run, job, self.cfg.head_init, self.cfg.keep_snapshots, gpus,
                                      self.threads, log=self.out)
                    if not proc.try_lock():
                        todo.remove(jid)
                        result[jid] = "running elsewhere"
                        self.out(f"[{jid}] is being trained by another g2s process; skipped here")
                        continue
                    todo.remove(jid)
                    try:
                        started = proc.start()
                    except G2SError:
                        proc.unlock()
                        raise
                    self._commit(job)
                    totals[jid] = proc.max_iter
                    bar.total = sum(totals.values())
                    if not started:
                        proc.unlock()
                        result[jid] = job.status
                        done_iters += proc.max_iter
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
                    proc.unlock()
                    self._commit(proc.job)
                    del self.running[jid]
                    self.free.extend(slots)
                    result[jid] = status
                    if status == "done":
                        done_iters += proc.max_iter
                    extra = f"; {proc.job.extra['error'].splitlines()[-1]}" if status == "failed" else ""
                    self.out(f"[{jid}] {status} (exit {rc}){extra}")
                bar.n = done_iters + sum(p.tail.record.last_iter for p, _ in self.running.values())
                bar.refresh()
                if self.running and time.monotonic() - last_lines >= self.cfg.progress_seconds:
                    last_lines = time.monotonic()
                    for proc, _ in self.running.values():
                        self.out(proc.line())
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
                proc.finish(proc.proc.wait())
                proc.unlock()
                self._commit(proc.job)
            bar.close()
            for s, h in old.items():
                signal.signal(s, h)
        for jid in todo:
            result.setdefault(jid, "pending")
        return result
