"""The whole schedule beyond one machine: one Slurm submission, or three Kubernetes Jobs.

The chain is the same for both: Step 1 (one job), then the Step-2/3 units (an array: one task
per unit, all independent), then `g2s eval`.  A unit is one distinct Step-2 or Step-3
training that starts from Model A or B plus the Step-3 trainings that start from its C_i;
its task trains them in order.  Every task is a list of plain `g2s train --steps S --only
JOB` calls on a filesystem every node sees (RUNS, the prepared data, Model A, the nets).

Each distinct training is submitted once.  With ``--ablations all`` Table 1's seven runs
repeat jobs (Step 1 in four runs, Step 2 from B in two, Step 2 from A in two): the planned
fingerprints (share.planned_fingerprints, computed before any training) group the runs'
jobs, and each group lives in one task, where the first call trains it and the later
calls, in the sibling runs, adopt its weights (g2s_caffe.core.jobs.reuse) without training.

Safety comes from the training driver, not from the cluster: the job-directory locks mean
that two copies of a task (a script submitted twice, a requeued task next to a stale one)
never train the same job at once (the second waits: ``--if-busy wait``), and the snapshots
mean that a task stopped by Slurm resumes where it stopped when Slurm restarts it.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.g2s.steps import steps_of

KINDS = ("slurm", "k8s")
# Node-local on a cluster: a path here on the submitting host is not the same folder on a
# compute node.  $TMPDIR is added at run time.
LOCAL_PREFIXES = ("/tmp", "/var/tmp", "/dev/shm", "/run")
# The batch shell gets SIGUSR1 this long before the time limit (#SBATCH --signal): time for
# Caffe to finish its iteration and write a VGG-16 snapshot (~1 GB) before Slurm's SIGTERM;
# then the task requeues itself and resumes from that snapshot (--stop-before-limit).
SIGNAL_LEAD_S = 300
# Kubernetes: the pod's grace period between SIGTERM and SIGKILL, for the same snapshot.
K8S_GRACE_S = 300
DEFAULT_CPUS_PER_TASK = 4       # data layer + OpenBLAS; override with --sbatch=--cpus-per-task=N
JOB_ID_RE = re.compile(r"^step[123](/[A-Za-z0-9_.+-]+)?$")


# ------------------------------------------------------------------ the chain
@dataclass(frozen=True)
class Call:
    """One `g2s train --steps STEPS --only JOB` call."""
    steps: tuple[int, ...]
    job: str

    @property
    def word(self) -> str:       # how the scripts store it: "1,2,3:step2/Smiling"
        return ",".join(map(str, self.steps)) + ":" + self.job


@dataclass(frozen=True)
class Unit:
    label: str                   # e.g. "step2/Smiling (steps_2, from A) + 1 Step-3"
    calls: tuple[Call, ...]
    trainings: int               # distinct trainings among the calls (the rest adopt)


@dataclass(frozen=True)
class Chain:
    name: str                    # job-name prefix
    step1: tuple[Call, ...]      # () = no Step 1 in the submission
    units: tuple[Unit, ...]
    eval_runs: tuple[str, ...]   # () = no evaluation job
    trainings: int               # distinct trainings in the whole chain
    entries: int                 # job entries covered, over all runs
    note: str = ""               # why evaluation is left out, if it is


def plan_chain(runs, selections, fingerprints, name: str) -> Chain:
    """The chain for ``runs`` (prepare.create_or_load's), restricted to ``selections`` (job
    ids per run), grouping jobs by ``fingerprints`` ({job id: fingerprint} per run; with
    sharing off, make them unique per run)."""
    from g2s_caffe.methods.g2s.train.share import parent_id

    seen_fp: set[str] = set()
    step1, entries = [], 0
    for run, sel, fps in zip(runs, selections, fingerprints):
        if "step1" in sel and any(j.id == "step1" for j in run.jobs):
            step1.append(Call(tuple(steps_of(run)), "step1"))
            seen_fp.add(fps["step1"])
            entries += 1
    trainings = len(seen_fp)

    # Step-2/3 jobs: a root starts from A or B (no Step-2/3 parent); a child from C_i.
    order: list[str] = []                                 # root fingerprints, first-seen order
    parent_of: dict[str, str | None] = {}
    first: dict[str, tuple] = {}                           # fp -> (run, job) of its first entry
    for run, sel, fps in zip(runs, selections, fingerprints):
        for job in run.jobs:
            if job.step == 1 or job.id not in sel:
                continue
            fp = fps[job.id]
            pid = parent_id(job)
            pfp = fps[pid] if pid and run.job(pid).step != 1 else None
            parent_of.setdefault(fp, pfp)
            first.setdefault(fp, (run, job))
            if pfp is None and fp not in order:
                order.append(fp)
    for fp, pfp in list(parent_of.items()):     # a Step 3 selected without its Step 2: a unit of its own
        if pfp is not None and pfp not in parent_of:
            parent_of[fp] = None
            order.append(fp)

    def root_of(fp: str) -> str:
        while parent_of.get(fp):
            fp = parent_of[fp]
        return fp

    units = []
    for root in sorted(order, key=lambda f: (first[f][1].attr_index or 0, first[f][1].step,
                                             order.index(f))):
        members = {fp for fp in parent_of if root_of(fp) == root}
        calls = [Call(tuple(steps_of(run)), job.id)
                 for run, sel, fps in zip(runs, selections, fingerprints)
                 for job in run.jobs if job.id in sel and job.step != 1 and fps[job.id] in members]
        run0, job0 = first[root]
        kids = len(members) - 1
        label = (f"{job0.id} ({run0.run}, from {job0.extra.get('init_from', '?')})"
                 + (f" + {kids} Step-3 from its C" if kids else ""))
        units.append(Unit(label, tuple(calls), len(members)))
        trainings += len(members)
        entries += len(calls)

    covered = {(c.steps, c.job) for c in step1} | {(c.steps, c.job) for u in units for c in u.calls}
    left = [f"{r.run}/{j.id}" for r in runs for j in r.jobs
            if j.status != "done" and (tuple(steps_of(r)), j.id) not in covered]
    note = ""
    if left:
        note = (f"no evaluation job: {len(left)} unfinished job(s) are not in this submission "
                f"({', '.join(left[:3])}{' ...' if len(left) > 3 else ''}), so the runs would not be complete")
    for c in step1 + [c for u in units for c in u.calls]:
        if not JOB_ID_RE.match(c.job):
            raise G2SError(f"job {c.job!r}: attribute names in a cluster script must be letters, digits "
                           "and _.+- (rename it in the attributes file)")
    return Chain(name, tuple(step1), tuple(units), () if left else tuple(r.run for r in runs),
                 trainings, entries, note)


# ------------------------------------------------------------------ shared paths
def local_prefixes() -> tuple[str, ...]:
    tmp = os.environ.get("TMPDIR")
    return LOCAL_PREFIXES + ((tmp.rstrip("/"),) if tmp and tmp.rstrip("/") else ())


def check_shared(paths: dict[str, Path], allow_local: bool, under: str | None = None) -> list[Path]:
    """The shared paths, absolute; G2SError for one that does not exist, or that lies under a
    node-local folder of this host (unless ``allow_local``), or outside ``under`` (k8s mount)."""
    out = []
    for what, p in paths.items():
        p = Path(p)
        if not p.is_absolute():
            raise G2SError(f"{what} {p}: a cluster task needs an absolute path (every node resolves "
                           "relative ones from its own working directory)")
        real = Path(os.path.realpath(p))
        if not real.exists():
            raise G2SError(f"{what} {p}: does not exist")
        if under is not None:
            if not (real == Path(under) or Path(under) in real.parents):
                raise G2SError(f"{what} {real}: not under the shared volume's mount {under}; every pod sees "
                               f"only the volume: put it there (or pass --pvc-mount)")
        elif not allow_local:
            for pre in local_prefixes():
                if real == Path(pre) or Path(pre) in real.parents:
                    raise G2SError(
                        f"{what} {real}: under {pre}, which is local to each machine: the cluster's nodes "
                        f"would not see this folder. Put it on a filesystem every node mounts (NFS, Lustre, "
                        f"GPFS, your home), or, on a single-node cluster where the tasks run on this very "
                        f"machine, pass --allow-local-paths")
        out.append(real)
    return out


# ------------------------------------------------------------------ Slurm
_SLURM_BODY = r'''
# ---------------------------------------------------------------- the stages (run by Slurm)
G2S_PID=
STOPPING=0
NEAR_LIMIT=0
on_term() {     # scancel, requeue, preemption: Slurm signals every process of the job at once;
  STOPPING=1    # g2s makes Caffe snapshot and stop; this shell waits for it (an exiting batch
  if [ -n "$G2S_PID" ]; then kill -TERM "$G2S_PID" 2>/dev/null || true; fi   # shell gets its
}               # job step killed at once)
on_near_limit() { NEAR_LIMIT=1; on_term; }

run_g2s() {     # in the background, so that this shell can act on signals while it runs
  "$@" &
  G2S_PID=$!
  while kill -0 "$G2S_PID" 2>/dev/null; do wait "$G2S_PID" || true; done
  local rc=0
  wait "$G2S_PID" || rc=$?
  G2S_PID=
  return "$rc"
}

train_calls() { # "STEPS:JOB" ... in order; stop at the first that does not end done
  local call
  for call in "$@"; do
    [ "$STOPPING" = 0 ] || return 1
    echo "== $(date -Is) g2s train --steps ${call%%:*} --only ${call#*:}"
    run_g2s "${TRAIN[@]}" --steps "${call%%:*}" --only "${call#*:}" --if-busy wait || return $?
  done
}

stage() {
  STAGE_T0=$SECONDS
  trap on_term TERM INT
  trap on_near_limit USR1
  echo "== $(date -Is) $1 on $(hostname), Slurm job ${SLURM_JOB_ID:-none}${SLURM_ARRAY_TASK_ID:+ task $SLURM_ARRAY_TASK_ID}, restart ${SLURM_RESTART_COUNT:-0}"
  if [ "$GPUS" != 0 ]; then   # GPU jobs: keep OpenBLAS to the CPUs Slurm gave the task
    export OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1} OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
  fi
  local rc=0
  case "$1" in
    step1) train_calls "${STEP1[@]}" || rc=$? ;;
    task)
      local i=${SLURM_ARRAY_TASK_ID:?the task stage runs as a Slurm array task}
      echo "== unit $i: ${LABELS[$i]}"
      # shellcheck disable=SC2086
      train_calls ${UNITS[$i]} || rc=$? ;;
    eval) run_g2s "${EVAL[@]}" || rc=$? ;;
    *) echo "unknown stage $1" >&2; return 2 ;;
  esac
  if [ "$NEAR_LIMIT" = 1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    if [ $((SECONDS - STAGE_T0)) -lt "$LEAD" ]; then   # requeueing would loop without progress
      echo "== the time-limit signal came after $((SECONDS - STAGE_T0)) s: the job's --time is too short to" \
           "train between snapshots; give it at least twice $LEAD s (--sbatch=--time=...)" >&2
      return 1
    fi
    echo "== $(date -Is) time limit in $LEAD s: stopped at a snapshot; requeueing job $SLURM_JOB_ID to resume"
    scontrol requeue "$SLURM_JOB_ID" && return 0
  fi
  return "$rc"
}

if [ "${1:-}" = "--stage" ]; then
  stage "$2"
  exit $?
fi

# ---------------------------------------------------------------- submission
if ! command -v sbatch >/dev/null 2>&1; then
  echo "$SELF: sbatch not found on PATH. This script submits with Slurm's client commands:" >&2
  echo "  run it on a machine of the cluster (a login node), load its Slurm module, or install" >&2
  echo "  the client (Debian/Ubuntu package slurm-client: apt-get install slurm-client) configured" >&2
  echo "  for the cluster (/etc/slurm/slurm.conf or SLURM_CONF)." >&2
  exit 127
fi
is_local() {
  local p=$1 pre
  for pre in /tmp /var/tmp /dev/shm /run ${TMPDIR:+"${TMPDIR%/}"}; do
    case "$p/" in "$pre"/*) return 0 ;; esac
  done
  return 1
}
for p in "${SHARED[@]}"; do
  case "$p" in
    /*) ;;
    *) echo "$SELF: $p is relative; every path the tasks share must be absolute (re-emit the script)" >&2; exit 2 ;;
  esac
  if [ ! -e "$p" ]; then
    echo "$SELF: $p does not exist here; the tasks need it on a filesystem every node sees" >&2; exit 2
  fi
  if [ "$ALLOW_LOCAL" != 1 ] && is_local "$(readlink -f "$p")"; then
    echo "$SELF: $p is under a folder local to each machine (/tmp, /var/tmp, /dev/shm, /run, \$TMPDIR):" >&2
    echo "  the compute nodes would not see it. Use a shared filesystem, or on a single-node cluster" >&2
    echo "  set G2S_ALLOW_LOCAL_PATHS=1 (or emit with --allow-local-paths)." >&2
    exit 2
  fi
done

SUBMITTED=()
submit() {      # submit VAR OPTIONS...: sbatch; the job id into VAR, or Slurm's error and what to change
  local var=$1 out rc=0 err
  shift
  err=$(mktemp)
  if [ "$DRY_RUN" = 1 ]; then
    printf 'sbatch' >&2; printf ' %q' "$@" >&2; echo >&2
    out="DRY$((${#SUBMITTED[@]} + 1))"
  else
    out=$(sbatch --parsable "$@" 2>"$err") || rc=$?
  fi
  cat "$err" >&2          # Slurm's own words: warnings, or the error
  out="$out $(cat "$err")"
  rm -f "$err"
  if [ "$rc" != 0 ]; then
    echo "$SELF: sbatch failed (exit $rc)" >&2
    case "$out" in
      *[Aa]ccount*|*[Qq][Oo][Ss]*) echo "  Check --account / --qos (and --partition) in SBATCH_ALL / SBATCH_STEP1 in this file:" >&2
        echo "  \`sacctmgr show assoc user=\$USER\` lists what you may use, \`sinfo -s\` the partitions." >&2 ;;
      *[Pp]artition*) echo "  The partition asked for does not exist or does not take this job: \`sinfo -s\` lists the" >&2
        echo "  cluster's partitions; change --partition in SBATCH_ALL / SBATCH_STEP1 in this file (from g2s" >&2
        echo "  train's --sbatch / --sbatch-step1), or re-emit with --sbatch=--partition=NAME." >&2 ;;
      *[Gg]res*|*GPU*|*gpu*) echo "  Check the GPU request (--gres / --gpus-per-task) against \`sinfo -o '%P %G'\`." >&2 ;;
      *) echo "  Fix the sbatch options in SBATCH_ALL / SBATCH_STEP1 in this file (from g2s train's --sbatch)." >&2 ;;
    esac
    if [ ${#SUBMITTED[@]} -gt 0 ]; then
      echo "  Cancelling what this run of the script submitted: ${SUBMITTED[*]}" >&2
      scancel "${SUBMITTED[@]}" || true
    fi
    exit 1
  fi
  out=${out%% *}
  out=${out%%;*}
  SUBMITTED+=("$out")
  printf -v "$var" '%s' "$out"
}

DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
mkdir -p "$LOGS"
DEP=()
J1= J2= J3=
if [ ${#STEP1[@]} -gt 0 ]; then
  submit J1 "${SBATCH_STEP1_DEFAULTS[@]}" "${SBATCH_ALL[@]}" "${SBATCH_STEP1[@]}" --job-name="$NAME-step1" \
    --output="$LOGS/%x-%j.out" "$SELF" --stage step1
  echo "Step 1:      job $J1 (${STEP1[*]})"
  DEP=(--dependency="afterok:$J1" --kill-on-invalid-dep=yes)
fi
if [ ${#UNITS[@]} -gt 0 ]; then
  submit J2 "${SBATCH_TASK_DEFAULTS[@]}" "${SBATCH_ALL[@]}" "${DEP[@]}" --array="0-$((${#UNITS[@]} - 1))" \
    --job-name="$NAME-steps23" --output="$LOGS/%x-%A_%a.out" "$SELF" --stage task
  echo "Steps 2/3:   array job $J2 (${#UNITS[@]} tasks${J1:+, after $J1})"
  DEP=(--dependency="afterok:$J2" --kill-on-invalid-dep=yes)
fi
if [ ${#EVAL[@]} -gt 0 ]; then
  submit J3 "${SBATCH_EVAL_DEFAULTS[@]}" "${SBATCH_ALL[@]}" "${DEP[@]}" --job-name="$NAME-eval" \
    --output="$LOGS/%x-%j.out" "$SELF" --stage eval
  after=${J2:-$J1}
  echo "Evaluation:  job $J3${after:+ (after $after)}"
fi
echo "job ids: ${SUBMITTED[*]}"
echo "watch:   squeue --name=$NAME-step1,$NAME-steps23,$NAME-eval; tail -f $LOGS/*.out; $RUNS/<run>/manifest.json"
'''


def _bash_array(name: str, items) -> str:
    return f"{name}=(" + " ".join(shlex.quote(str(i)) for i in items) + ")"


def slurm_script(chain: Chain, train: list[str], eval_cmd: list[str], shared: list[Path], runs_dir: Path,
                 gpus_step1: int, gpus_task: int, sbatch_all: list[str], sbatch_step1: list[str],
                 allow_local: bool, command: str, lead: int = SIGNAL_LEAD_S) -> str:
    gres1 = [f"--gres=gpu:{gpus_step1}"] if gpus_step1 else []
    gres = [f"--gres=gpu:{gpus_task}"] if gpus_task else []
    cpus = [f"--cpus-per-task={DEFAULT_CPUS_PER_TASK}"]
    n_tasks = len(chain.units)
    head = f"""#!/bin/bash
# G2S-Caffe on Slurm: {chain.name}: {len(chain.step1)} Step-1 call(s), {n_tasks} Step-2/3 task(s), \
{'evaluation' if chain.eval_runs else 'no evaluation'}; {chain.trainings} distinct trainings for \
{chain.entries} job entries.
# Written by `g2s train --emit slurm` on {dt.datetime.now().isoformat(timespec='seconds')}:
#   {command}
#
#   bash THIS_FILE              submit: Step 1, then the Step-2/3 array (afterok), then g2s eval
#                               (afterok), and print the job ids
#   bash THIS_FILE --dry-run    print the sbatch commands instead
#
# Submitting again is safe: finished jobs are skipped, a job another task is training is waited
# for (its lock), an unfinished one resumes from its newest snapshot.  A task that Slurm stops
# and requeues (scontrol requeue, preemption, node failure) resumes from its newest snapshot when
# it restarts.  {lead} s before its time limit a task asks Caffe for a snapshot, stops and
# requeues itself.{(chain.note and chr(10) + '# Evaluation: ' + chain.note) or ''}
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@{lead}
set -euo pipefail
SELF=$(readlink -f "${{BASH_SOURCE[0]}}")
NAME={shlex.quote(chain.name)}
RUNS={shlex.quote(str(runs_dir))}
LOGS="$RUNS/slurm-logs"
GPUS={gpus_task}
LEAD={lead}
ALLOW_LOCAL=${{G2S_ALLOW_LOCAL_PATHS:-{1 if allow_local else 0}}}
# What every node must see (checked before submitting):
{_bash_array("SHARED", shared)}
# sbatch options: defaults per stage, then --sbatch (all stages), then --sbatch-step1.
{_bash_array("SBATCH_STEP1_DEFAULTS", cpus + gres1)}
{_bash_array("SBATCH_TASK_DEFAULTS", cpus + gres)}
{_bash_array("SBATCH_EVAL_DEFAULTS", cpus + gres)}
{_bash_array("SBATCH_ALL", sbatch_all)}
{_bash_array("SBATCH_STEP1", sbatch_step1)}
{_bash_array("TRAIN", train)}
{_bash_array("EVAL", eval_cmd)}
# Step 1: "STEPS:JOB" calls in order (the first trains, the others adopt its weights).
{_bash_array("STEP1", [c.word for c in chain.step1])}
# Steps 2/3: one array task per unit; each runs its calls in order.
"""
    units = "UNITS=(\n" + "".join(f"  {shlex.quote(' '.join(c.word for c in u.calls))}\n" for u in chain.units) + ")\n"
    labels = "LABELS=(\n" + "".join(f"  {shlex.quote(u.label)}\n" for u in chain.units) + ")\n"
    return head + units + labels + _SLURM_BODY


# ------------------------------------------------------------------ Kubernetes
_K8S_LOOP = r'''set -euo pipefail
pid=
trap 'if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi' TERM INT
run_g2s() { "$@" & pid=$!; while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done; local rc=0; wait "$pid" || rc=$?; pid=; return "$rc"; }
train_calls() { local call; for call in "$@"; do run_g2s "${TRAIN[@]}" --steps "${call%%:*}" --only "${call#*:}" --if-busy wait || return $?; done; }
'''


def k8s_yaml(chain: Chain, train: list[str], eval_cmd: list[str], gpus_step1: int, gpus_task: int,
             image: str, claim: str, mount: str, command: str) -> str:
    import yaml

    base = re.sub(r"[^a-z0-9-]+", "-", chain.name.lower()).strip("-")[:40]
    prelude = _bash_array("TRAIN", train) + "\n" + _K8S_LOOP

    def job(suffix: str, script: str, gpus: int, indexed: int | None = None, suspend: bool = False) -> dict:
        container = {"name": "g2s", "image": image, "command": ["/bin/bash", "-c", script],
                     "workingDir": mount, "volumeMounts": [{"name": "shared", "mountPath": mount}]}
        if gpus:
            container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
        spec = {"backoffLimit": 3,
                "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": K8S_GRACE_S,
                                      "containers": [container],
                                      "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": claim}}]}}}
        if indexed is not None:
            spec = {"completionMode": "Indexed", "completions": indexed, "parallelism": indexed,
                    "backoffLimitPerIndex": 3, "maxFailedIndexes": indexed, **spec}
            del spec["backoffLimit"]            # per index instead
        if suspend:
            spec = {"suspend": True, **spec}
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"{base}-{suffix}"}, "spec": spec}

    docs, release = [], []
    if chain.step1:
        docs.append(job("step1", prelude + _bash_array("STEP1", [c.word for c in chain.step1])
                        + '\ntrain_calls "${STEP1[@]}"\n', gpus_step1))
    if chain.units:
        units = _bash_array("UNITS", [" ".join(c.word for c in u.calls) for u in chain.units])
        docs.append(job("steps23", prelude + units + "\n# shellcheck disable=SC2086\n"
                        'train_calls ${UNITS[$JOB_COMPLETION_INDEX]}\n', gpus_task,
                        indexed=len(chain.units), suspend=bool(docs)))
    if chain.eval_runs:
        docs.append(job("eval", "set -euo pipefail\nexec " + " ".join(shlex.quote(a) for a in eval_cmd) + "\n",
                        gpus_task, suspend=bool(docs)))
    names = [d["metadata"]["name"] for d in docs]
    for prev, nxt in zip(names, names[1:]):
        release.append(f"kubectl wait --for=condition=complete --timeout=-1s job/{prev} && "
                       f"kubectl patch job/{nxt} --type=merge -p '{{\"spec\":{{\"suspend\":false}}}}'")
    head = (f"# G2S-Caffe on Kubernetes: {chain.name}: {' -> '.join(names)}; {chain.trainings} distinct "
            f"trainings for {chain.entries} job entries.\n"
            f"# Written by `g2s train --emit k8s`: {command}\n"
            f"# RUNS, the data and the weights live on PVC {claim!r}, mounted at {mount} in every pod.\n"
            "# The later Jobs are created suspended (no pod, no GPU held) and released in order:\n"
            f"#   kubectl apply -f THIS_FILE\n" + "".join(f"#   {r}\n" for r in release)
            + (f"# Evaluation: {chain.note}\n" if chain.note else ""))
    return head + "".join("---\n" + yaml.safe_dump(d, sort_keys=False, width=1000) for d in docs)


# ------------------------------------------------------------------ writing
def write_executable(out: Path, text: str, mode: int = 0o755) -> Path:
    from g2s_caffe.core.atomic import write_atomic

    return write_atomic(Path(out), text, mode=mode)


def g2s_command() -> str:
    """The `g2s` that is running now, as an absolute path (the tasks call the same one)."""
    here = Path(sys.executable).parent / "g2s"
    return str(here) if here.exists() else "g2s"
