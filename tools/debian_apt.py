"""apt-get through a private sources list and state directory (standard library only).

Used by every tool that takes files from Debian's archive without touching the machine's own
apt configuration or installing anything: the Caffe source package (tools/caffe/build_caffe.py),
the GPU kit's runtime libraries (tools/gpu_kit/build_kit.py) and the unpacked Slurm for the
tests (tools/slurm/fetch_slurm.py).  The mirror is the one the machine already uses, so the
same proxy and mirror rules apply.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
DEB822 = Path("/etc/apt/sources.list.d/debian.sources")
LEGACY = Path("/etc/apt/sources.list")


class AptError(RuntimeError):
    """An apt-get call failed; the message has the command, apt's own words and the sources."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mirror_from_system(default: str = DEFAULT_MIRROR) -> str:
    """The Debian (not security) mirror the machine's apt sources name."""
    if DEB822.is_file():
        for line in DEB822.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split(":", 1)[1].split()[0]
    if LEGACY.is_file():
        for line in LEGACY.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1]
    return default


def security_mirror_from_system(default: str = DEFAULT_SECURITY) -> str:
    """The debian-security archive the machine's apt sources name."""
    for src in (DEB822, LEGACY):
        if src.is_file():
            for line in src.read_text().splitlines():
                m = re.match(r"^(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S*debian-security\S*)", line.strip())
                if m:
                    return m.group(1).rstrip("/")
    return default


def system_deb_sources(fallback_suite: str = "bookworm") -> str:
    """One-line "deb" sources for every binary suite of the machine's own Debian sources."""
    lines = []
    if DEB822.is_file():
        for block in DEB822.read_text().split("\n\n"):
            f = dict(re.findall(r"^(\S+):\s*(.+)$", block, re.M))
            if "deb" not in f.get("Types", "").split():
                continue
            signed = f" [signed-by={f['Signed-By']}]" if f.get("Signed-By", "").startswith("/") else ""
            for uri in f.get("URIs", "").split():
                for suite in f.get("Suites", "").split():
                    lines.append(f"deb{signed} {uri} {suite} {f.get('Components', 'main')}")
    if not lines and LEGACY.is_file():
        lines = [line for line in LEGACY.read_text().splitlines() if line.startswith("deb ")]
    if not lines:
        s = fallback_suite
        lines = [f"deb {DEFAULT_MIRROR} {s} main", f"deb {DEFAULT_MIRROR} {s}-updates main",
                 f"deb {DEFAULT_SECURITY} {s}-security main"]
    return "\n".join(lines) + "\n"


class PrivateApt:
    """apt-get / apt-cache with their own sources list, lists and archive cache under ``state``.

    ``empty_status``: an empty dpkg status file, so versions are the archive's rather than
    relative to what this machine has installed (simulated installs then list everything)."""

    def __init__(self, state: Path, sources: str, empty_status: bool = False):
        self.state = Path(state)
        (self.state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (self.state / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        self.sources = self.state / "sources.list"
        self.sources.write_text(sources)
        self.opts = [f"-oDir::Etc::SourceList={self.sources}", "-oDir::Etc::SourceParts=-",
                     f"-oDir::State::Lists={self.state / 'lists'}", f"-oDir::Cache={self.state}",
                     f"-oDir::Cache::archives={self.state / 'archives'}", "-qq"]
        if empty_status:
            status = self.state / "status"
            status.touch()
            self.opts.append(f"-oDir::State::status={status}")
        if os.geteuid() == 0:   # root would hand downloads to _apt, who cannot write here
            self.opts.append("-oAPT::Sandbox::User=root")

    def _call(self, tool: str, args, cwd: Path | None = None, check: bool = True):
        cmd = [tool, *self.opts, *args]
        try:
            r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        except FileNotFoundError:
            raise AptError(f"{tool} not found: this needs a Debian (apt) host") from None
        if check and r.returncode != 0:
            raise AptError(f"`{tool} {' '.join(args)}` failed (exit {r.returncode}): {r.stderr.strip()[-800:]}\n"
                           f"sources ({self.sources}):\n{self.sources.read_text().strip()}")
        return r

    def run(self, *args: str, cwd: Path | None = None) -> str:
        """apt-get ARGS; stdout, or AptError."""
        return self._call("apt-get", args, cwd).stdout

    def update(self, max_age_s: float | None = None) -> None:
        """apt-get update, unless one ran less than ``max_age_s`` ago."""
        stamp = self.state / "updated"
        if max_age_s is not None and stamp.is_file() and time.time() - stamp.stat().st_mtime < max_age_s:
            return
        self.run("update")
        stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def simulate_install(self, packages) -> dict[str, str]:
        """{package: version} that installing ``packages`` would add (apt-get -s install)."""
        out = self.run("-s", "install", "--no-install-recommends", *packages)
        plan = {}
        for line in out.splitlines():
            m = re.match(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) ", line)
            if m:
                plan[m.group(1)] = m.group(2)
        return plan

    def candidates(self, packages) -> dict[str, str]:
        """{package: candidate version} (apt-cache policy; packages without one are left out)."""
        out = self._call("apt-cache", ["policy", *packages], check=False).stdout
        found = {}
        for block in re.split(r"\n(?=\S)", out):
            m, c = re.match(r"(\S+?)(?::\w+)?:\n", block + "\n"), re.search(r"Candidate: (\S+)", block)
            if m and c and c.group(1) != "(none)":
                found[m.group(1)] = c.group(1)
        return found

    def available(self, package: str, version: str) -> bool:
        r = self._call("apt-cache", ["show", f"{package}={version}"], check=False)
        return r.returncode == 0 and "Package:" in r.stdout
