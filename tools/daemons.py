"""What the tests' private daemons (tools/slurm/local_slurm.py, tools/dockerd/local_dockerd.py)
share: children that die with their parent, and a foreground mode that waits for Ctrl-C."""
from __future__ import annotations

import ctypes
import signal
import time

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
