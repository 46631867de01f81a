#!/usr/bin/env python3
"""Build BVLC Caffe from Debian's source package into a per-machine cache.

One script for every variant (CPU here and in CI, CUDA in docker/): the variant is
chosen by arguments, never by a copy of this file.

Steps: fetch ``caffe`` 1.0.0+git20180821.99bd997-8 with apt through a private sources
list and state directory (the machine's apt configuration is untouched), verify both
tarballs by sha256, unpack, apply Debian's ``debian/patches/series`` and then this
project's patches (``patches/series`` next to this file), configure with CMake, build,
install into ``<cache>/caffe-<key>`` and publish it by an atomic rename.

The cache key is the sha256 of (source sha256s, project patch sha256s, CMake flags,
compiler and Python/NumPy ABI).  Same key: nothing is rebuilt.  A changed patch or flag:
a new prefix is built next to the old one.

Only the standard library is used: this runs before the project's virtualenv exists.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from debian_apt import AptError, PrivateApt, mirror_from_system, sha256_file  # noqa: E402  (tools/)
PATCH_DIR = HERE / "patches"

PACKAGE = "caffe"
VERSION = "1.0.0+git20180821.99bd997-8"
SUITE = "bullseye"
SOURCE_FILES = {
    "caffe_1.0.0+git20180821.99bd997.orig.tar.gz":
        "e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c",
    "caffe_1.0.0+git20180821.99bd997-8.debian.tar.xz":
        "07cf073227494a6b07234e40cb5df91db566616593eef9baafdc4d06ad159f21",
}

# Flags shared by every variant (issue: engine).  Variant flags are added on top.
COMMON_FLAGS = {
    "CMAKE_BUILD_TYPE": "Release",
    "BLAS": "Open",
    "python_version": "3",
    "BUILD_python": "ON",
    "BUILD_python_layer": "ON",
    "USE_LMDB": "ON",
    "USE_LEVELDB": "ON",
    "USE_OPENCV": "ON",
    "USE_HDF5": "ON",
    "BUILD_docs": "OFF",
    "BUILD_matlab": "OFF",
}
CPU_FLAGS = {"CPU_ONLY": "ON"}
# Volta .. Hopper.  Caffe's own list stops at Pascal and its "Auto" detection needs a
# visible GPU, which `docker build` does not have.
DEFAULT_CUDA_ARCHS = "70 75 80 86 89 90"

# Tools installed next to `caffe` that the project and its users call.
TOOLS = ("caffe", "convert_imageset", "compute_image_mean", "extract_features",
         "upgrade_net_proto_text", "upgrade_net_proto_binary", "upgrade_solver_proto_text")


class BuildError(RuntimeError):
    """A failure the user can act on; the message says what to do."""


# ----------------------------------------------------------------------------- key
def read_series(patch_dir: Path) -> list[Path]:
    """Project patches in the order of ``patch_dir/series`` (quilt style)."""
    series = patch_dir / "series"
    if not series.is_file():
        raise BuildError(f"{series}: missing; it lists the project patches in order")
    patches = []
    for lineno, line in enumerate(series.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        p = patch_dir / line
        if not p.is_file():
            raise BuildError(f"{series}:{lineno}: patch {line!r} does not exist in {patch_dir}")
        patches.append(p)
    listed = {p.name for p in patches}
    stray = sorted(p.name for p in patch_dir.glob("*.patch") if p.name not in listed)
    if stray:
        raise BuildError(f"{series}: patches not listed (add them or delete them): {', '.join(stray)}")
    return patches


def variant_flags(variant: str, cuda_archs: str = DEFAULT_CUDA_ARCHS, cudnn: bool = True,
                  nccl: bool = True, extra: dict | None = None) -> dict[str, str]:
    """The complete CMake flag set for a variant (what the key and the build both use)."""
    flags = dict(COMMON_FLAGS)
    if variant == "cpu":
        flags.update(CPU_FLAGS)
    elif variant == "cuda":
        archs = " ".join(cuda_archs.replace(",", " ").split())
        if not archs or not all(re.fullmatch(r"\d{2,3}", a) for a in archs.split()):
            raise BuildError(f"--cuda-archs {cuda_archs!r}: expected compute capabilities like '70 75 80 86 89 90'")
        flags.update({
            "CPU_ONLY": "OFF",
            "CUDA_ARCH_NAME": "Manual",
            "CUDA_ARCH_BIN": archs,
            # PTX of the newest architecture so that later GPUs can JIT-compile it.
            "CUDA_ARCH_PTX": archs.split()[-1],
            "USE_CUDNN": "ON" if cudnn else "OFF",
            "USE_NCCL": "ON" if nccl else "OFF",
        })
    else:
        raise BuildError(f"unknown variant {variant!r} (cpu or cuda)")
    for k, v in (extra or {}).items():
        flags[k] = v
    return flags


def python_abi(python: str) -> dict[str, str]:
    """Python and NumPy versions that _caffe.so is compiled against."""
    code = ("import sys, numpy, sysconfig;"
            "print(sys.version.split()[0]); print(numpy.__version__);"
            "print(sysconfig.get_config_var('SOABI'))")
    try:
        out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError(f"{python}: cannot import numpy ({e}); create the venv with the pinned "
                         "requirements first (make setup does this)") from e
    return {"python": out[0], "numpy": out[1], "soabi": out[2]}


def compiler_version() -> str:
    # CMake compiles with $CXX when it is set (the CUDA image pins g++-12 that way).
    try:
        return subprocess.run([os.environ.get("CXX") or "c++", "--version"], check=True, capture_output=True,
                              text=True).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def nvcc_version(flags: dict[str, str]) -> str | None:
    """The CUDA compiler a CUDA build uses (part of its key); None for CPU builds."""
    if flags.get("CPU_ONLY") == "ON":
        return None
    root = flags.get("CUDA_TOOLKIT_ROOT_DIR")
    nvcc = str(Path(root) / "bin" / "nvcc") if root else (shutil.which("nvcc") or "nvcc")
    try:
        out = subprocess.run([nvcc, "--version"], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError(f"{nvcc} --version failed ({e}): a CUDA build needs nvcc; put the CUDA "
                         "toolkit on PATH or pass --cmake CUDA_TOOLKIT_ROOT_DIR=DIR") from e
    return out.strip().splitlines()[-1]


def build_key(source_sha: dict[str, str], patches: list[Path], flags: dict[str, str],
              abi: dict[str, str], compiler: str, nvcc: str | None = None) -> tuple[str, dict]:
    """The cache key and the record it is the hash of (written next to the build)."""
    record = {
        "package": f"{PACKAGE}={VERSION}",
        "sources": dict(sorted(source_sha.items())),
        "patches": [[p.name, sha256_file(p)] for p in patches],
        "cmake_flags": dict(sorted(flags.items())),
        "python_abi": dict(sorted(abi.items())),
        "compiler": compiler,
    }
    if nvcc is not None:          # CPU keys stay what they were
        record["nvcc"] = nvcc
    blob = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), record


# ---------------------------------------------------------------------------- fetch
def fetch_sources(cache: Path, mirror: str, keyring: Path | None = None) -> dict[str, Path]:
    """Download and verify the source package; reuse verified files already cached."""
    dl = cache / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    have = {name: dl / name for name in SOURCE_FILES}
    if all(p.is_file() and sha256_file(p) == SOURCE_FILES[n] for n, p in have.items()):
        return have

    state = cache / "apt-state"
    # On a non-Debian host (the Ubuntu-based CUDA image) apt trusts no Debian key by
    # default: --apt-keyring names one for this private source only.
    signed = f"[signed-by={keyring}] " if keyring else ""
    apt = PrivateApt(state, f"deb-src {signed}{mirror} {SUITE} main\n")
    print(f"[caffe] fetching {PACKAGE}={VERSION} from {mirror} {SUITE} (private apt state in {state})",
          flush=True)
    with tempfile.TemporaryDirectory(dir=dl) as tmp:
        try:
            apt.run("update")
            apt.run("source", "--download-only", f"{PACKAGE}={VERSION}", cwd=Path(tmp))
        except AptError as e:
            raise BuildError(f"{e}\nThe Debian archive {mirror} must be reachable and carry {SUITE}/main "
                             f"source package {PACKAGE} {VERSION}.") from None
        for name, want in SOURCE_FILES.items():
            got_path = Path(tmp) / name
            if not got_path.is_file():
                raise BuildError(f"apt-get source did not produce {name}")
            got = sha256_file(got_path)
            if got != want:
                raise BuildError(f"{name}: sha256 {got} does not match the pinned {want}; "
                                 "refusing to build from an unverified source")
            os.replace(got_path, dl / name)
    return have


# ---------------------------------------------------------------------------- build
def run_logged(cmd: list[str], log, cwd: Path | None = None, env: dict | None = None,
               progress: bool = False) -> None:
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    last = ""
    for line in proc.stdout:
        log.write(line)
        m = re.match(r"\[\s*(\d+)%\]", line)
        if progress and m and m.group(1) != last:
            last = m.group(1)
            print(f"\r[caffe] building {last:>3}%", end="", flush=True)
    rc = proc.wait()
    if progress:
        print()
    if rc != 0:
        log.flush()
        # The log's end says why; in a `docker build` the log itself is gone with the layer.
        tail = "\n".join(Path(log.name).read_text(errors="replace").splitlines()[-25:])
        raise BuildError(f"`{' '.join(cmd)}` failed (exit {rc}); full log: {log.name}; its end:\n{tail}")


def extract_tar(archive: Path, dest: Path) -> None:
    """Unpack a source tarball: regular files, folders and links inside ``dest`` only.
    ``extractall(filter=...)`` came with Python 3.11.4; Debian 12's python3 is 3.11.2."""
    with tarfile.open(archive) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, filter="data")
            return
        for m in tf.getmembers():
            target = os.path.normpath(os.path.join(dest, m.name))
            if os.path.isabs(m.name) or not target.startswith(str(dest) + os.sep) \
                    or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                raise BuildError(f"{archive.name}: refusing member {m.name!r} (outside the tree or not a file)")
        tf.extractall(dest)


def unpack_and_patch(files: dict[str, Path], src: Path, patches: list[Path], log) -> None:
    src.mkdir(parents=True)
    for name in SOURCE_FILES:  # orig first, then debian/ on top
        extract_tar(files[name], src)
    series = src / "debian" / "patches" / "series"
    debian = [l.strip() for l in series.read_text().splitlines() if l.strip() and not l.startswith("#")]
    for p in [src / "debian" / "patches" / n for n in debian] + patches:
        log.write(f"\n# applying {p}\n")
        r = subprocess.run(["patch", "-p1", "--forward", "--batch", "-i", str(p)], cwd=src,
                           capture_output=True, text=True)
        log.write(r.stdout + r.stderr)
        if r.returncode != 0:
            raise BuildError(f"patch {p.name} does not apply:\n{r.stdout}{r.stderr}")


def build(cache: Path, key: str, record: dict, files: dict[str, Path], patches: list[Path],
          flags: dict[str, str], python: str, jobs: int, configure_only: bool = False) -> Path:
    """Build and publish ``<cache>/caffe-<key>``; ``configure_only``: stop after CMake (the
    unpack, patch and configure steps of a long build, checked in seconds) and publish nothing."""
    final = cache / f"caffe-{key[:16]}"
    work = Path(tempfile.mkdtemp(prefix=f"build-{key[:16]}-", dir=cache))
    log_path = work / "build.log"
    t0 = time.time()
    with open(log_path, "w") as log:
        print(f"[caffe] {'configuring' if configure_only else 'building into'} {final} (log: {log_path})", flush=True)
        src, bld, stage = work / "src", work / "build", work / "stage"
        unpack_and_patch(files, src, patches, log)
        cmake = ["cmake", "-S", str(src), "-B", str(bld), f"-DCMAKE_INSTALL_PREFIX={final}",
                 f"-DPYTHON_EXECUTABLE={python}"]
        cmake += [f"-D{k}={v}" for k, v in sorted(flags.items())]
        env = build_env(flags)
        run_logged(cmake, log, env=env)
        if configure_only:
            log.flush()
            summary = [ln.strip() for ln in log_path.read_text().splitlines()
                       if ln.startswith("-- ") and re.search(r"cudnn|nccl|cuda|blas", ln, re.I)]
            print("[caffe] configured (--configure-only, nothing built):\n  " + "\n  ".join(summary), flush=True)
            shutil.rmtree(work, ignore_errors=True)
            return final
        run_logged(["make", "-C", str(bld), f"-j{jobs}", "all"], log, env=env, progress=True)
        run_logged(["make", "-C", str(bld), "install"], log, env=dict(env, DESTDIR=str(stage)))
        staged = stage / final.relative_to("/")
        verify(staged, python, log, flags)
        verify_engine(staged, flags)
        record = dict(record, built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      build_seconds=round(time.time() - t0, 1), key=key,
                      project_patches=[p.name for p in patches])
        (staged / "BUILD_INFO.json").write_text(json.dumps(record, indent=2) + "\n")
        shutil.copy(log_path, staged / "build.log")
    os.replace(staged, final)  # atomic publish: a prefix exists only once it is complete
    shutil.rmtree(work, ignore_errors=True)
    print(f"[caffe] built in {time.time() - t0:.0f} s", flush=True)
    return final


def build_env(flags: dict[str, str]) -> dict[str, str]:
    """The environment of CMake and make: FindNCCL reads NCCL_DIR from it (a CUDA root given
    by flag holds NCCL too, as the GPU kit's does)."""
    env = dict(os.environ)
    root = flags.get("CUDA_TOOLKIT_ROOT_DIR")
    if root and flags.get("USE_NCCL") == "ON":
        env.setdefault("NCCL_DIR", root)
    return env


def runtime_library_path(prefix: Path, flags: dict[str, str]) -> str:
    """LD_LIBRARY_PATH under which the staged tools run here: the prefix, and for a CUDA
    build against a toolkit outside the system paths, that toolkit's libraries."""
    dirs = [str(prefix / "lib")]
    root = flags.get("CUDA_TOOLKIT_ROOT_DIR")
    if root and flags.get("CPU_ONLY") != "ON":
        dirs.append(str(Path(root) / "lib64"))
    return os.pathsep.join(dirs + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])


def python_dir(prefix: Path) -> Path:
    # Debian's cmake-fix-python-module-installdir patch moves pycaffe here.
    return prefix / "lib" / "python3" / "dist-packages"


def verify(prefix: Path, python: str, log, flags: dict[str, str] | None = None) -> None:
    """The staged tree runs: the tool answers, pycaffe imports (with staged libraries)."""
    flags = flags or {}
    env = dict(os.environ, LD_LIBRARY_PATH=runtime_library_path(prefix, flags),
               PYTHONPATH=str(python_dir(prefix)), GLOG_minloglevel="2")
    for tool in TOOLS:
        if not (prefix / "bin" / tool).is_file():
            raise BuildError(f"build did not install {tool} into {prefix / 'bin'}")
    run_logged([str(prefix / "bin" / "caffe"), "--version"], log, env=env)
    if flags.get("BUILD_python", "ON") == "ON":   # the GPU kit builds without pycaffe
        run_logged([python, "-c", "import caffe, caffe.proto.caffe_pb2 as p; "
                    "print('pycaffe', caffe.__version__, p.NetParameter.__name__)"], log, env=env)


def verify_engine(prefix: Path, flags: dict[str, str]) -> None:
    """A GPU build links the GPU libraries it was asked for (checked without a GPU)."""
    if flags.get("CPU_ONLY") == "ON":
        return
    libs = sorted(prefix.glob("lib/libcaffe.so*"), key=lambda p: len(p.name))
    if not libs:
        raise BuildError(f"no libcaffe.so in {prefix / 'lib'}")
    r = subprocess.run(["readelf", "-d", str(libs[-1])], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"readelf -d {libs[-1]} failed: {r.stderr.strip()}")
    needed = " ".join(re.findall(r"\(NEEDED\).*\[(.+?)\]", r.stdout))
    want = ["libcudart", "libcublas", "libcurand"]
    want += ["libcudnn"] if flags.get("USE_CUDNN") == "ON" else []
    want += ["libnccl"] if flags.get("USE_NCCL") == "ON" else []
    missing = [w for w in want if w not in needed]
    if missing:
        raise BuildError(f"{libs[-1].name} does not link {', '.join(missing)} (it needs: {needed}); "
                         "the CUDA build came out without them, see build.log")


# ----------------------------------------------------------------------------- link
def link_into_venv(prefix: Path, venv: Path) -> None:
    """Make `import caffe` and the tools work inside the venv (a .pth file + symlinks)."""
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "caffe_build.pth").write_text(f"{python_dir(prefix)}\n")
    for tool in TOOLS:
        dst = venv / "bin" / tool
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        dst.symlink_to(prefix / "bin" / tool)
    (venv / "caffe-prefix").write_text(f"{prefix}\n")


@contextlib.contextmanager
def locked(cache: Path, name: str = ".lock"):
    """An exclusive lock on ``cache/name``: ".lock" guards the shared downloads and apt
    state, ".lock-<key>" one build, so a long CUDA build does not hold up a cached CPU one."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / name, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def default_cache() -> Path:
    env = os.environ.get("G2S_CAFFE_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "g2s-caffe"


def parse_extra(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise BuildError(f"--cmake {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.removeprefix("-D")] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--variant", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--cuda-archs", default=DEFAULT_CUDA_ARCHS,
                    help="compute capabilities for --variant cuda (sm_XY as XY)")
    ap.add_argument("--cudnn", choices=["on", "off"], default="on",
                    help="--variant cuda: build the cuDNN layers (needs the cudnn-v8 patch)")
    ap.add_argument("--nccl", choices=["on", "off"], default="on", help="--variant cuda: multi-GPU via NCCL")
    ap.add_argument("--cmake", action="append", default=[], metavar="NAME=VALUE",
                    help="extra CMake flag (repeatable; part of the cache key)")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter pycaffe is built for (must have the pinned numpy)")
    ap.add_argument("--cache", type=Path, default=default_cache(),
                    help="per-machine cache (env G2S_CAFFE_CACHE)")
    ap.add_argument("--mirror", default=None, help="Debian mirror (default: the one apt already uses)")
    ap.add_argument("--apt-keyring", type=Path, default=None,
                    help="keyring that signs the Debian mirror (for non-Debian hosts, e.g. "
                         "/usr/share/keyrings/debian-archive-keyring.gpg on Ubuntu)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--venv", type=Path, default=None,
                    help="link the result into this venv (.pth file and tool symlinks)")
    ap.add_argument("--print-key", action="store_true", help="print the cache key and prefix, build nothing")
    ap.add_argument("--configure-only", action="store_true",
                    help="fetch, unpack, patch and configure with CMake, then stop (nothing is cached)")
    args = ap.parse_args(argv)

    try:
        flags = variant_flags(args.variant, args.cuda_archs, args.cudnn == "on", args.nccl == "on",
                              parse_extra(args.cmake))
        patches = read_series(PATCH_DIR)
        abi = python_abi(args.python)
        key, record = build_key(SOURCE_FILES, patches, flags, abi, compiler_version(), nvcc_version(flags))
        prefix = args.cache / f"caffe-{key[:16]}"
        if args.print_key:
            print(json.dumps({"key": key, "prefix": str(prefix), **record}, indent=2))
            return 0
        mirror = args.mirror or mirror_from_system()
        keyring = (args.apt_keyring,) if args.apt_keyring else ()  # only where asked
        if args.configure_only:       # publishes nothing: no need to wait for a build of this key
            with locked(args.cache):
                files = fetch_sources(args.cache, mirror, *keyring)
            build(args.cache, key, record, files, patches, flags, args.python, args.jobs, configure_only=True)
            return 0
        with locked(args.cache, f".lock-{key[:16]}"):
            if (prefix / "BUILD_INFO.json").is_file():
                print(f"[caffe] cached build {prefix} (key {key[:16]})", flush=True)
            else:
                with locked(args.cache):
                    files = fetch_sources(args.cache, mirror, *keyring)
                prefix = build(args.cache, key, record, files, patches, flags, args.python, args.jobs)
            if args.venv:
                link_into_venv(prefix, args.venv)
    except BuildError as e:
        print(f"[caffe] error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
