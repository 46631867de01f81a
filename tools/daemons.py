"""What the tests' private daemons (tools/slurm/local_slurm.py, tools/dockerd/local_dockerd.py)
share: children that die with their parent, and a foreground mode that waits for Ctrl-C."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Between fork and exec of a daemon: the kernel sends it SIGTERM when its parent dies, so
    a kill -9 of the test session takes the daemon along."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def serve_until_signalled(stop) -> None:
    """Block until SIGINT or SIGTERM, then call ``stop()`` (the command-line mode of a daemon)."""
    print("Ctrl-C stops it", flush=True)
    stopping = []
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stopping.append(1))
    try:
        while not stopping:
            time.sleep(0.5)
    finally:
        stop()


def pids_whose(proc_file: str, matches) -> list[int]:
    """Processes other than this one whose /proc/PID/``proc_file`` (cmdline, environ) satisfies
    ``matches(bytes)``: what a daemon left behind (job steps, containerd shims)."""
    me = os.getpid()
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == me:
            continue
        try:
            if matches((p / proc_file).read_bytes()):
                out.append(int(p.name))
        except OSError:
            continue
    return out


def stop_process(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; nothing if it has ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_leftovers(find, rounds: int) -> None:
    """SIGKILL whatever ``find()`` lists, up to ``rounds`` times until it lists nothing."""
    for _ in range(rounds):
        left = find()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not left:
            break
        time.sleep(0.5)
