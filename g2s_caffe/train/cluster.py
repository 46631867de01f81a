"""The Step-2/3 jobs beyond one machine: a Slurm job array and a Kubernetes Indexed Job.

Both run existing engines; each task is one `g2s train ... --only step2/<a>,step3/<a>` call
for attribute number $SLURM_ARRAY_TASK_ID / $JOB_COMPLETION_INDEX on a filesystem every
node shares (RUNS, the prepared data, Model A).  The tasks coordinate through the run
manifest's lock (flock) and each job directory's lock, so a resubmitted or duplicated task
never trains a job twice and a killed task resumes from its snapshots.  Step 1 runs first,
once (`--only step1`), because every Step-2 task starts from its recorded Model B.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from ..errors import G2SError

KINDS = ("slurm", "k8s")


def task_command(base: list[str]) -> str:
    """The per-task command line; $ATTR is set by the wrapper from the task index."""
    return " ".join(shlex.quote(a) for a in base) + ' --only "step2/$ATTR,step3/$ATTR"'


def slurm_script(base: list[str], attrs: list[str], name: str, gpus_per_task: int, hours: int) -> str:
    arr = " ".join(shlex.quote(a) for a in attrs)
    gres = f"#SBATCH --gres=gpu:{gpus_per_task}\n" if gpus_per_task else ""
    return f"""#!/bin/bash
# Steps 2 and 3 of {name}: one array task per attribute (Step 2, then Step 3 from its C_i).
# Written by `g2s train --emit slurm`.  Run Step 1 first (same arguments, --only step1), then:
#   sbatch {{this file}}
#SBATCH --job-name={name}
#SBATCH --array=0-{len(attrs) - 1}
#SBATCH --cpus-per-task=4
{gres}#SBATCH --time={hours}:00:00
#SBATCH --requeue
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
ATTRS=({arr})
ATTR="${{ATTRS[$SLURM_ARRAY_TASK_ID]}}"
exec {task_command(base)}
"""


def k8s_yaml(base: list[str], attrs: list[str], name: str, gpus_per_task: int, image: str,
             claim: str, mount: str) -> str:
    import yaml

    script = (f"ATTRS=({' '.join(shlex.quote(a) for a in attrs)}); "
              f'ATTR="${{ATTRS[$JOB_COMPLETION_INDEX]}}"; exec {task_command(base)}')
    container = {"name": "train", "image": image, "command": ["/bin/bash", "-c", script],
                 "workingDir": mount, "volumeMounts": [{"name": "shared", "mountPath": mount}]}
    if gpus_per_task:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus_per_task}}
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name.replace("_", "-").lower()},
           "spec": {"completionMode": "Indexed", "completions": len(attrs), "parallelism": len(attrs),
                    "backoffLimitPerIndex": 3, "maxFailedIndexes": len(attrs),
                    "template": {"spec": {"restartPolicy": "Never", "containers": [container],
                                          "volumes": [{"name": "shared",
                                                       "persistentVolumeClaim": {"claimName": claim}}]}}}}
    head = (f"# Steps 2 and 3 of {name}: one index per attribute.  Written by `g2s train --emit k8s`.\n"
            f"# Run Step 1 first (--only step1); RUNS, data and weights live on PVC {claim!r} at {mount}.\n")
    return head + yaml.safe_dump(job, sort_keys=False, width=1000)


def emit(kind: str, out: Path, base: list[str], attrs: list[str], name: str, gpus_per_task: int,
         hours: int = 48, image: str = "g2s-caffe:latest", claim: str = "g2s-shared",
         mount: str = "/shared") -> Path:
    import os

    if kind not in KINDS:
        raise G2SError(f"--emit {kind!r}: expected one of {', '.join(KINDS)}")
    if not attrs:
        raise G2SError("--emit: no attributes to write tasks for")
    text = (slurm_script(base, attrs, name, gpus_per_task, hours) if kind == "slurm"
            else k8s_yaml(base, attrs, name, gpus_per_task, image, claim, mount))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, out)
    return out
