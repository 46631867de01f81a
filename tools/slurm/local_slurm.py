#!/usr/bin/env python3
"""A throwaway single-node Slurm from the unpacked kit (tools/slurm/fetch_slurm.py).

    with LocalSlurm(kit, Path("/var/tmp/x")) as slurm:      # munged, slurmctld, slurmd
        subprocess.run(["sbatch", "job.sh"], env=slurm.env())

Everything lives in one directory: slurm.conf, the munge key and socket, the daemons' state,
spool, logs and PID files.  The three daemons run in the foreground (-F / -D) as children of
this process, with their PIDs remembered; stop() cancels the cluster's jobs and stops exactly
those PIDs, plus any leftover process whose environment names this cluster's slurm.conf
(job steps that outlived their slurmstepd).  The daemons also get PR_SET_PDEATHSIG, so a
kill -9 of this process takes them along.  No service is registered, no file outside the
directory is written, and the ports are free ones picked at start.

It runs as root (the configuration that was checked, NOTES.md: no systemd, no cgroups:
proctrack/linuxproc, task/none, no accounting).  ``cred_expire`` is short because a requeued
job waits for the credential lifetime before it starts again (Slurm's default: 120 s).

Command line (try a submit script by hand):
    python3 tools/slurm/local_slurm.py --dir /var/tmp/g2s-slurm      # prints the exports, waits for Ctrl-C
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from daemons import die_with_parent, kill_leftovers, pids_whose, serve_until_signalled, stop_process  # noqa: E402
from fetch_slurm import Kit, KitError, ensure_kit  # noqa: E402

PARTITION = "debug"
NODE = "localhost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(d: Path, kit: Kit, user: str, cpus: int, memory_mb: int, ctld_port: int, slurmd_port: int,
               cred_expire: int, partition: str = PARTITION) -> str:
    """The checked single-node configuration (NOTES.md), every path under ``d``."""
    lines = [
        "ClusterName=g2stest", f"SlurmctldHost={NODE}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}", f"SlurmdPort={slurmd_port}",
        f"SlurmUser={user}", f"SlurmdUser={user}",
        "AuthType=auth/munge", "CredType=cred/munge",
        f"AuthInfo=socket={d}/munge/munge.socket,cred_expire={cred_expire}",
        f"PluginDir={kit.plugin_dir}",
        f"StateSaveLocation={d}/state", f"SlurmdSpoolDir={d}/spool",
        f"SlurmctldPidFile={d}/run/slurmctld.pid", f"SlurmdPidFile={d}/run/slurmd.pid",
        f"SlurmctldLogFile={d}/log/slurmctld.log", f"SlurmdLogFile={d}/log/slurmd.log",
        "SlurmctldDebug=info", "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "SchedulerParameters=bf_interval=1,sched_interval=2",
        "ReturnToService=2", "MinJobAge=300", "MailProg=/bin/true",
        "KillWait=30", "SlurmdTimeout=30", "MpiDefault=none",
        f"PlugStackConfig={d}/plugstack.conf",
        f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={partition} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
    ]
    return "\n".join(lines) + "\n"


class SlurmError(RuntimeError):
    pass


class LocalSlurm:
    def __init__(self, kit: Kit, workdir: Path, cpus: int | None = None, memory_mb: int = 1000,
                 cred_expire: int = 5, partition: str = PARTITION):
        self.kit, self.dir = kit, Path(workdir).resolve()
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb, self.cred_expire, self.partition = memory_mb, cred_expire, partition
        self.conf = self.dir / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.started_s: float | None = None       # start() until the node was idle

    # -------------------------------------------------------------- environment
    def env(self, base: dict | None = None) -> dict:
        """For sbatch/squeue/...: the kit's clients on PATH and this cluster's slurm.conf."""
        env = self.kit.env(base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def client(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run(list(args), capture_output=True, text=True, env=self.env(), timeout=timeout)
        if check and r.returncode != 0:
            raise SlurmError(f"`{' '.join(args)}` failed (exit {r.returncode}): {r.stderr.strip()}")
        return r

    def log_tail(self, n: int = 20) -> str:
        out = []
        for name in ("munged", "slurmctld", "slurmd"):
            p = self.dir / "log" / f"{name}.log"
            if p.is_file():
                out.append(f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-n:]))
        return "\n".join(out)

    # -------------------------------------------------------------- start
    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.dir / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.env(), cwd=self.dir,
                                            preexec_fn=die_with_parent)
        log.close()

    def _wait(self, what: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SlurmError(f"{name} exited ({p.returncode}) while waiting for {what}\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise SlurmError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.log_tail()}")

    def start(self, timeout: float = 60) -> "LocalSlurm":
        if os.geteuid() != 0:
            raise SlurmError("the local test Slurm runs as root (slurmd starts job steps as their user)")
        t0 = time.monotonic()
        d = self.dir
        for sub in ("munge", "state", "spool", "run", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        # munged refuses a socket whose directories others cannot search (mkdtemp makes 0700)
        for p in (d, d / "munge"):
            os.chmod(p, 0o755)
        try:
            import pwd
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = "root"
        (d / "plugstack.conf").write_text("")
        self.conf.write_text(slurm_conf(d, self.kit, user, self.cpus, self.memory_mb, free_port(), free_port(),
                                        self.cred_expire, self.partition))
        key = d / "munge" / "munge.key"
        if not key.is_file():
            r = subprocess.run([str(self.kit.daemon("mungekey")), "-c", "-k", str(key)], capture_output=True,
                               text=True, env=self.env())
            if r.returncode != 0:
                raise SlurmError(f"mungekey failed: {r.stderr.strip()}")
        os.chmod(key, 0o600)
        sock = d / "munge" / "munge.socket"
        try:
            self._spawn("munged", [self.kit.daemon("munged"), "-F", f"--key-file={key}", f"--socket={sock}",
                                   f"--pid-file={d}/run/munged.pid", f"--log-file={d}/log/munged.log",
                                   f"--seed-file={d}/munge/munge.seed"])
            self._wait("munged's socket", sock.exists, timeout)
            self._spawn("slurmctld", [self.kit.daemon("slurmctld"), "-D", "-f", self.conf])
            self._wait("slurmctld", lambda: self.client("scontrol", "ping", check=False).returncode == 0, timeout)
            self._spawn("slurmd", [self.kit.daemon("slurmd"), "-D", "-N", NODE, "-f", self.conf,
                                   "-d", self.kit.daemon("slurmstepd")])
            self._wait("node idle", lambda: self.node_state() == "idle", timeout)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - t0
        return self

    def node_state(self) -> str:
        r = self.client("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=20)
        return r.stdout.strip().rstrip("*") if r.returncode == 0 else ""

    # -------------------------------------------------------------- jobs
    def queue(self) -> list[str]:
        """Job ids (with array index) still pending or running."""
        r = self.client("squeue", "-h", "-o", "%i %T")
        return [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]

    def job(self, job_id: str) -> dict:
        """`scontrol show job -o` as a dict (one record; for an array, the first task's)."""
        r = self.client("scontrol", "show", "job", "-o", str(job_id))
        return dict(kv.split("=", 1) for kv in r.stdout.splitlines()[0].split() if "=" in kv)

    def jobs(self, job_id: str) -> list[dict]:
        """Every record `scontrol show job` has for ``job_id`` (all tasks of an array)."""
        r = self.client("scontrol", "show", "job", "-o", str(job_id))
        return [dict(kv.split("=", 1) for kv in ln.split() if "=" in kv) for ln in r.stdout.splitlines() if ln]

    def wait_empty(self, timeout: float, poll: float = 1.0) -> float:
        """Seconds until no job is pending or running; SlurmError with the queue on timeout."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.queue():
                return time.monotonic() - t0
            time.sleep(poll)
        raise SlurmError(f"jobs still queued after {timeout:.0f} s:\n"
                         f"{self.client('squeue', check=False).stdout}\n{self.log_tail()}")

    # -------------------------------------------------------------- stop
    def _ours(self) -> list[int]:
        """Processes other than this one whose environment names this cluster's slurm.conf."""
        mark = f"SLURM_CONF={self.conf}".encode()
        return pids_whose("environ", lambda environ: mark in environ.split(b"\0"))

    def stop(self, timeout: float = 30) -> None:
        """Cancel the jobs, stop the three daemons (exactly the PIDs started), then anything
        left that belongs to this cluster.  Safe to call twice."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                queued = self.queue()
                if queued:
                    self.client("scancel", "--full", "--quiet", *queued, check=False, timeout=20)
                deadline = time.monotonic() + timeout
                while self.queue() and time.monotonic() < deadline:
                    time.sleep(0.5)
            except (SlurmError, subprocess.TimeoutExpired):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            stop_process(self.procs.get(name), timeout)
        kill_leftovers(self._ours, rounds=2)

    def __enter__(self) -> "LocalSlurm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dir", type=Path, required=True, help="where conf, state, logs go (not under a 0700 folder)")
    ap.add_argument("--cpus", type=int, default=None, help="None = this machine's")
    ap.add_argument("--cred-expire", type=int, default=5, help="munge credential lifetime (s)")
    args = ap.parse_args(argv)
    try:
        kit = ensure_kit()
        slurm = LocalSlurm(kit, args.dir, cpus=args.cpus, cred_expire=args.cred_expire).start()
    except (KitError, SlurmError) as e:
        print(f"[slurm] error: {e}", file=sys.stderr)
        return 1
    libs = ":".join(str(p) for p in kit.library_path)
    print(f"[slurm] node idle after {slurm.started_s:.1f} s; in another shell:")
    print(f"  export SLURM_CONF={slurm.conf} PATH={kit.bin_dir}:$PATH LD_LIBRARY_PATH={libs}")
    serve_until_signalled(slurm.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
