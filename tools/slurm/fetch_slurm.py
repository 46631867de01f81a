#!/usr/bin/env python3
"""Fetch Debian 12's Slurm and munge into the project's cache, without installing them.

`make setup` runs this so that the tests (tests/methods/g2s/test_slurm.py) can start a real single-node
Slurm from the cache (tools/slurm/local_slurm.py).  Why unpacked and not installed: an
installed `slurmctld`/`slurmd`/`munge` registers system services that a reboot or a package
trigger may start, writes /etc/slurm and /etc/munge, and adds users; a unpacked tree is
inert until a test starts its daemons by hand from a temporary directory, and deleting the
cache folder removes every trace.  The machine's apt configuration and dpkg database are
only read, never written.

Steps: `apt-get update` through a private sources list and state directory (bookworm,
bookworm-updates, bookworm-security from the mirror the machine already uses; apt checks
the archive signatures as for any install), `apt-get -s install` against the machine's own
dpkg status to learn which packages (ours plus the libraries this machine lacks) an install
would add, `apt-get download` exactly those versions, `dpkg -x` each into
``<cache>/slurm-<version>/root`` and publish the folder by an atomic rename, with KIT.json
naming the packages, their versions and sha256s.  A kit whose binaries no longer find a
library (the machine changed) is fetched again.

Only the standard library is used (plus g2s_caffe.core.paths and build_caffe's mirror lookup,
both standard-library only).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from debian_apt import AptError, PrivateApt, mirror_from_system, security_mirror_from_system, sha256_file  # noqa: E402
from g2s_caffe.core.paths import cache_dir  # noqa: E402

SUITE = "bookworm"                    # Debian 12: Slurm 22.05, munge 0.5.15 (issue 14)
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
KIT_FILE = "KIT.json"
# Debian ships the daemons as *-wlm, with update-alternatives links that an unpack skips.
DAEMONS = {"slurmctld": "usr/sbin/slurmctld-wlm", "slurmd": "usr/sbin/slurmd-wlm",
           "slurmstepd": "usr/sbin/slurmstepd-wlm", "munged": "usr/sbin/munged",
           "mungekey": "usr/sbin/mungekey"}
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")


class KitError(RuntimeError):
    """The kit cannot be fetched or used here; the message says why and what to do."""


def host_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return ""
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.M)
    return m.group(1) if m else ""


# ----------------------------------------------------------------------------- the kit
@dataclass(frozen=True)
class Kit:
    """An unpacked Slurm + munge tree and where its parts are."""
    path: Path                       # <cache>/slurm-<version>
    version: str                     # Slurm's Debian version

    @property
    def root(self) -> Path:
        return self.path / "root"

    def daemon(self, name: str) -> Path:
        return self.root / DAEMONS[name]

    @property
    def bin_dir(self) -> Path:
        return self.root / "usr" / "bin"

    @property
    def plugin_dir(self) -> Path:
        found = sorted(self.root.glob("usr/lib/*/slurm-wlm"))
        if not found:
            raise KitError(f"{self.root}: no usr/lib/<arch>/slurm-wlm (plugins); delete {self.path} and refetch")
        return found[0]

    @property
    def library_path(self) -> list[Path]:
        """Folders for LD_LIBRARY_PATH: libslurmfull next to the plugins, and the libraries
        this machine lacked."""
        out = [self.plugin_dir]
        for pat in ("usr/lib/*-linux-gnu", "lib/*-linux-gnu"):
            out += [Path(p) for p in sorted(glob.glob(str(self.root / pat))) if Path(p).is_dir()]
        return out

    def env(self, base: dict | None = None) -> dict:
        """An environment whose PATH finds the kit's clients and whose loader finds its libraries."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
        libs = ":".join(str(p) for p in self.library_path)
        env["LD_LIBRARY_PATH"] = libs + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        return env

    def problem(self) -> str | None:
        """None when every daemon and client is there and finds all its libraries."""
        if not (self.path / KIT_FILE).is_file():
            return f"{self.path}: no {KIT_FILE} (incomplete fetch)"
        exes = [self.daemon(n) for n in DAEMONS] + [self.bin_dir / c for c in CLIENTS]
        env = self.env()
        for exe in exes:
            if not exe.is_file():
                return f"{exe}: missing"
            r = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, env=env)
            missing = [ln.split()[0] for ln in r.stdout.splitlines() if "not found" in ln]
            if missing:
                return f"{exe.name}: libraries not found: {', '.join(missing)}"
        return None


def find_kit(cache: Path | None = None) -> Kit | None:
    """The newest usable kit in the cache, or None."""
    cache = Path(cache or cache_dir())
    for p in sorted(cache.glob("slurm-*"), reverse=True):
        if p.is_dir() and (p / KIT_FILE).is_file():
            kit = Kit(p, json.loads((p / KIT_FILE).read_text())["version"])
            if kit.problem() is None:
                return kit
    return None


# ----------------------------------------------------------------------------- fetching
def fetch_kit(cache: Path, mirror: str, security: str, log=print) -> Kit:
    codename = host_codename()
    if codename != SUITE:
        raise KitError(f"this host is {codename or 'not Debian'!r}, not Debian 12 ({SUITE}): the unpacked "
                       "bookworm Slurm needs bookworm's libraries. Use a Debian 12 machine (as CI does)")
    cache.mkdir(parents=True, exist_ok=True)
    apt = PrivateApt(cache / "apt-state-slurm", f"deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\n"
                                                 f"deb {security} {SUITE}-security main\n")
    log(f"[slurm] resolving {', '.join(PACKAGES)} from {mirror} + {security} ({SUITE}, private apt state)")
    try:
        apt.update()
        plan = apt.simulate_install(PACKAGES)
    except AptError as e:
        raise KitError(str(e)) from None
    if "slurmd" not in plan:
        installed = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "slurmd"], capture_output=True, text=True)
        raise KitError("slurmd is already installed system-wide here"
                       + (f" ({installed.stdout.strip()})" if installed.returncode == 0 else "")
                       + "; the kit would duplicate it. Its libraries are the machine's: remove "
                         "the installed Slurm or use it directly")
    version = plan["slurmd"]
    final = cache / f"slurm-{version}"
    work = Path(tempfile.mkdtemp(prefix=".slurm-fetch-", dir=cache))
    try:
        debs = work / "debs"
        debs.mkdir()
        log(f"[slurm] downloading {len(plan)} packages: " + ", ".join(f"{p}={v}" for p, v in plan.items()))
        try:
            apt.run("download", *(f"{p}={v}" for p, v in plan.items()), cwd=debs)
        except AptError as e:
            raise KitError(str(e)) from None
        record = {"suite": SUITE, "version": version, "packages": {}}
        for deb in sorted(debs.glob("*.deb")):
            r = subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], capture_output=True, text=True)
            if r.returncode != 0:
                raise KitError(f"dpkg-deb -x {deb.name} failed: {r.stderr.strip()}")
            name = deb.name.split("_")[0]
            record["packages"][name] = {"file": deb.name, "sha256": sha256_file(deb),
                                        "version": plan.get(name)}
        missing = sorted(set(plan) - set(record["packages"]))
        if missing:
            raise KitError(f"apt-get download did not produce {', '.join(missing)}")
        shutil.rmtree(debs)
        (work / KIT_FILE).write_text(json.dumps(record, indent=2) + "\n")
        kit = Kit(work, version)
        why = kit.problem()
        if why:
            raise KitError(f"the unpacked kit does not run here: {why}")
        if final.exists():
            shutil.rmtree(final)            # a stale kit of the same version (checked broken)
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Kit(final, version)


@contextlib.contextmanager
def _locked(cache: Path):
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".slurm-lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure_kit(cache: Path | None = None, mirror: str | None = None, log=print) -> Kit:
    """A usable kit: the cached one, else fetched now (a few MB, seconds)."""
    cache = Path(cache or cache_dir())
    kit = find_kit(cache)
    if kit is not None:
        return kit
    with _locked(cache):
        kit = find_kit(cache)       # fetched by a concurrent caller meanwhile?
        if kit is not None:
            return kit
        return fetch_kit(cache, mirror or mirror_from_system(), security_mirror_from_system(), log)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--cache", type=Path, default=None, help="None = g2s_caffe.core.paths.cache_dir()")
    ap.add_argument("--mirror", default=None, help="Debian mirror (default: the one apt already uses)")
    ap.add_argument("--check", action="store_true", help="only say whether a usable kit is cached (exit 1 if not)")
    args = ap.parse_args(argv)
    try:
        if args.check:
            kit = find_kit(args.cache)
            print(kit.path if kit else "[slurm] no usable kit cached")
            return 0 if kit else 1
        kit = ensure_kit(args.cache, args.mirror)
    except KitError as e:
        print(f"[slurm] error: {e}", file=sys.stderr)
        return 1
    print(f"[slurm] kit: {kit.path} (Slurm {kit.version}; unpacked, not installed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
