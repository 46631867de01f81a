"""Which shared libraries a kit's programs load, and from where (standard library only).

Used twice with the same code: by build_kit.py here, to decide what the kit must carry and to
prove that it then resolves, and by run_checks.py on the GPU machine, to find the CUDA
libraries there and to say which files were actually loaded.

A library is in one of four places:
  kit   inside the kit's lib/ folder (carried);
  base  glibc's own libraries, which every Linux machine that runs Python has;
  cuda  the CUDA set (CUDA runtime, cuBLAS, cuRAND, cuDNN, NCCL, the driver): never carried,
        found on the GPU machine in its Python wheels (site-packages/nvidia/*/lib) or system;
  anything else is a library the kit forgot: a bare machine may lack it.
"""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from pathlib import Path

# glibc's libraries: the only ones a kit may take from the machine it runs on.
BASE_SONAMES = frozenset({
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "libanl.so.1", "ld-linux-x86-64.so.2", "linux-vdso.so.1",
})
# The CUDA set, by soname prefix (libcublasLt is cuBLAS's own dependency; libcuda is the
# driver, loaded by the CUDA runtime with dlopen).
CUDA_PREFIXES = ("libcudart.so", "libcublas.so", "libcublasLt.so", "libcurand.so", "libcudnn",
                 "libnccl.so", "libcuda.so", "libnvrtc", "libnvJitLink")
LD_SO = "/lib64/ld-linux-x86-64.so.2"

_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(not found|\S+)")
_DIRECT = re.compile(r"^\s*(/\S+)\s+\(0x")


def is_cuda(soname: str) -> bool:
    return soname.startswith(CUDA_PREFIXES)


def ld_list(elf: Path, library_path: list[str]) -> tuple[dict[str, str | None], str]:
    """The dynamic loader's resolution of ``elf`` and everything it pulls in: soname -> path
    (None: not found), and the loader's complaints (e.g. a missing symbol version)."""
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(str(p) for p in library_path))
    env.pop("LD_PRELOAD", None)
    loader = LD_SO if os.path.exists(LD_SO) else "ldd"
    cmd = [loader, "--list", str(elf)] if loader == LD_SO else ["ldd", str(elf)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    found: dict[str, str | None] = {}
    for line in r.stdout.splitlines():
        m = _LINE.match(line)
        if m:
            found[m.group(1)] = None if m.group(2) == "not found" else m.group(2)
            continue
        m = _DIRECT.match(line)
        if m:
            found[os.path.basename(m.group(1))] = m.group(1)
    complaints = r.stderr.strip()
    if r.returncode != 0 and not found:
        complaints = complaints or f"{cmd[0]} exited {r.returncode}"
    return found, complaints


def _inside(path: str, folders: list[Path]) -> bool:
    """``path`` (as the loader found it, or the file it links to) lies in one of ``folders``."""
    places = {os.path.realpath(os.path.dirname(path)) + os.sep, os.path.realpath(path)}
    return any(p == str(f) + os.sep or p.startswith(str(f) + os.sep) for p in places for f in folders)


def classify(found: dict[str, str | None], kit_lib: Path, cuda_dirs: list[Path] | None) -> dict[str, dict]:
    """Each soname's place (kit/base/cuda/missing/outside) for one ELF's resolution.

    ``cuda_dirs`` None: the CUDA set is only named, not present (this machine); a CUDA
    library is then fine unresolved or resolved anywhere.  Given: it must resolve inside them."""
    kit = [kit_lib.resolve()]
    cuda = [Path(os.path.realpath(d)) for d in (cuda_dirs or [])]
    out = {}
    for soname, path in sorted(found.items()):
        if soname in BASE_SONAMES or (path and os.path.basename(path) in BASE_SONAMES):
            place = "base"
        elif path and _inside(path, kit):
            place = "kit"
        elif is_cuda(soname):
            if cuda_dirs is None:
                place = "cuda"
            elif path and _inside(path, cuda):
                place = "cuda"
            else:
                place = "missing" if path is None else "outside"
        else:
            place = "missing" if path is None else "outside"
        out[soname] = {"path": path, "place": place}
    return out


def elf_files(root: Path) -> list[Path]:
    """Regular ELF files under ``root`` (programs and libraries)."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


def resolution_report(kit_root: Path, cuda_dirs: list[Path] | None = None) -> dict:
    """Resolve every ELF of an unpacked kit (``bin/``, ``lib/``) with only the kit's lib/
    (and ``cuda_dirs``) on the library path.  ``problems`` lists what would be missing on a
    bare machine; empty means every library resolves inside the kit, from glibc, or from
    the CUDA set."""
    kit_lib = kit_root / "lib"
    path = [str(kit_lib)] + [str(d) for d in (cuda_dirs or [])]
    elves, problems, cuda_needed = {}, [], set()
    for elf in elf_files(kit_root):
        found, complaints = ld_list(elf, path)
        places = classify(found, kit_lib, cuda_dirs)
        rel = str(elf.relative_to(kit_root))
        elves[rel] = places
        for soname, info in places.items():
            if info["place"] in ("missing", "outside"):
                where = "not found" if info["path"] is None else f"only outside the kit: {info['path']}"
                problems.append(f"{rel}: {soname} {where}")
            if is_cuda(soname):
                cuda_needed.add(soname)
        if complaints:
            problems.append(f"{rel}: {complaints.splitlines()[0]}")
    return {"elves": elves, "problems": problems, "cuda_sonames": sorted(cuda_needed),
            "library_path": path}


# ---------------------------------------------------------------- the CUDA set on a machine
def site_dirs() -> list[Path]:
    """Python library folders where NVIDIA's wheels may be installed: this interpreter's, and
    those of other environments in the usual places (the GPU machine's PyTorch venv)."""
    dirs = [Path(p) for p in sys.path if p and p.endswith(("site-packages", "dist-packages"))]
    for pattern in ("/opt/*/.venv/lib/python3*/site-packages", "/opt/*/lib/python3*/site-packages",
                    "/opt/conda/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
                    "/usr/local/lib/python3*/site-packages", "/usr/lib/python3/dist-packages",
                    os.path.expanduser("~/.local/lib/python3*/site-packages")):
        dirs += [Path(p) for p in sorted(glob.glob(pattern))]
    return existing_unique(dirs)


def existing_unique(dirs: list[Path]) -> list[Path]:
    """The folders that exist, in order, each real path once."""
    seen, out = set(), []
    for d in dirs:
        key = os.path.realpath(d)
        if key not in seen and d.is_dir():
            seen.add(key)
            out.append(d)
    return out


def cuda_candidate_dirs(extra: list[str] | None = None) -> list[Path]:
    """Folders searched for the CUDA set, in order: ``extra``, G2S_CUDA_LIB_DIRS, the machine's
    LD_LIBRARY_PATH, the wheels' lib/ folders (site-packages/nvidia/*/lib), CUDA toolkits, the
    driver's folder, the system."""
    dirs: list[Path] = [Path(p) for p in (extra or []) if p]
    dirs += [Path(p) for p in os.environ.get("G2S_CUDA_LIB_DIRS", "").split(os.pathsep) if p]
    dirs += [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    for site in site_dirs():
        dirs += [Path(p) for p in sorted(glob.glob(str(site / "nvidia" / "*" / "lib")))]
    for pattern in ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
                    "/usr/local/cuda-*/lib64", "/usr/local/cuda-*/targets/x86_64-linux/lib",
                    "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu",
                    "/usr/lib64", "/lib/x86_64-linux-gnu"):
        dirs += [Path(p) for p in sorted(glob.glob(pattern))]
    return existing_unique(dirs)


def ldconfig_paths() -> dict[str, str]:
    """soname -> path from the loader's cache (ldconfig -p), where ldconfig exists."""
    for exe in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = {}
        for line in out.splitlines():
            m = re.match(r"\s*(\S+)\s+\((?:[^)]*x86-64[^)]*|[^)]*)\)\s+=>\s+(\S+)", line)
            if m and "x86-64" in line:
                found.setdefault(m.group(1), m.group(2))
        return found
    return {}


def find_cuda(sonames: list[str], extra: list[str] | None = None) -> dict:
    """Where each CUDA soname the kit needs is on this machine.

    Returns {"found": {soname: path}, "missing": [soname], "dirs": [folders to put on
    LD_LIBRARY_PATH, in search order], "searched": [folders]}."""
    candidates = cuda_candidate_dirs(extra)
    cache = ldconfig_paths()
    found, missing, dirs = {}, [], []
    for soname in sonames:
        hit = next((d / soname for d in candidates if (d / soname).exists()), None)
        if hit is None and soname in cache:
            hit = Path(cache[soname])
        if hit is None:
            missing.append(soname)
            continue
        found[soname] = str(hit)
        if hit.parent not in dirs:
            dirs.append(hit.parent)
    return {"found": found, "missing": missing, "dirs": [str(d) for d in dirs],
            "searched": [str(d) for d in candidates] + (["ldconfig -p"] if cache else [])}


def loaded_libraries(pid: int) -> list[str]:
    """Shared objects mapped into a running process (what it actually loaded, dlopen too)."""
    try:
        text = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return []
    paths = {line.split(None, 5)[5].strip() for line in text.splitlines() if len(line.split(None, 5)) == 6}
    return sorted(p for p in paths if ".so" in os.path.basename(p))


def glibc_version() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    except (ValueError, OSError, AttributeError):
        return "unknown"


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def required_versions(elves: list[Path]) -> dict[str, str]:
    """Highest GLIBC_/GLIBCXX_/CXXABI_ symbol version each family is asked for by ``elves``
    (from `readelf -V`): what the machine's glibc must provide at least."""
    best: dict[str, str] = {}
    for elf in elves:
        r = subprocess.run(["readelf", "-V", "-W", str(elf)], capture_output=True, text=True)
        for fam, ver in re.findall(r"Name: (GLIBC|GLIBCXX|CXXABI)_([\d.]+)", r.stdout):
            if fam not in best or version_tuple(ver) > version_tuple(best[fam]):
                best[fam] = ver
    return best
