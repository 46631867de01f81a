"""How many cores this process may use (what thread and process counts are sized by)."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may use: a batch system's allocation (SLURM_CPUS_PER_TASK), else
    the CPU affinity mask (a cgroup or taskset), not every core of the node."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1
