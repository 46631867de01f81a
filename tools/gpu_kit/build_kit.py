#!/usr/bin/env python3
"""Build the GPU check kit: the CUDA Caffe, the libraries a bare machine may lack, the nets
and the run script, in one folder a GPU session carries (`make gpu-kit`).

  .venv/bin/python tools/gpu_kit/build_kit.py               CUDA kit -> build/gpu_kit/
  .venv/bin/python tools/gpu_kit/build_kit.py --cpu-mini    CPU mini-kit -> build/gpu_kit_cpu/

CUDA kit, step by step (each step cached; a second run with nothing changed takes seconds):
1. CUDA 13 headers and libraries of cuBLAS, cuRAND, cuDNN 9 and NCCL from NVIDIA's PyPI
   wheels (exact versions and sha256 below), downloaded into the cache and merged with the
   local CUDA toolkit (nvcc 13, cudart) into one toolkit folder that CMake's FindCUDA reads.
2. Caffe by tools/caffe/build_caffe.py --variant cuda (the same source, patches and script as
   every other build): sm_90 only, cuDNN and NCCL on; OpenCV, LevelDB, HDF5 and pycaffe off,
   which the checks do not need (the docker image keeps them).
3. Packaging: caffe, extract_features and libcaffe (stripped), plus every library they load
   that is neither glibc's nor CUDA's, taken from the Debian packages the build linked
   against (`apt-get download` + `dpkg -x` through a private apt state in the cache; nothing
   is installed), then proven to resolve inside the kit (kitlib.resolution_report).
4. The nets the checks run (the Step-1 net from g2s_caffe, with Input layers for `caffe time`;
   MTCNN's three nets at the sizes one photo gives them, from data_prep.mtcnn), kit.json, the run script, and payload.tar.xz (binaries and libraries).

--cpu-mini packages the venv's CPU Caffe the same way, with the small nets: what the tests
use to dry-run the run script and to prove the packaging (tests/tools/test_gpu_kit.py).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import kitlib  # noqa: E402
from debian_apt import AptError, PrivateApt, sha256_file, system_deb_sources  # noqa: E402  (tools/)

BUILD_CAFFE = ROOT / "tools" / "caffe" / "build_caffe.py"
DEFAULT_OUT = {"cuda": ROOT / "build" / "gpu_kit", "cpu": ROOT / "build" / "gpu_kit_cpu"}
RUN_FILES = ("run_checks.py", "kitlib.py", "caffe_io.py")
KIT_TOOLS = ("caffe", "extract_features")
SIZE_LIMIT_MIB = 60          # the limit for the carried folder
# The device tool's `carry` (its 64 MiB include the working tree).
RUN_COMMAND = ("run(command=\"PYTHONUNBUFFERED=1 python3 build/gpu_kit/run_checks.py --out $OUT\", "
               "carry=[\"build/gpu_kit\"], timeout_s=480)")

# Built against the first CUDA-13 releases of each library: the sonames (libcublas.so.13,
# libcurand.so.10, libcudnn.so.9, libnccl.so.2) stay, so the newer ones a GPU machine's
# PyTorch brings load in their place.
CUDA_WHEELS = {
    "nvidia-cublas": ("13.0.0.19", "f6723af2e8e2600a11dc384037d90d9bf93070e346c24ef2e8f9001658c99896"),
    "nvidia-curand": ("10.4.0.35", "1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc"),
    "nvidia-cudnn-cu13": ("9.13.0.50", "2150b4850725d30653ec3e365f0732e3e2e3eb8633cf3bd2d3117628dea8b4f9"),
    "nvidia-nccl-cu13": ("2.27.7", "b28a524abd8389b76a4a3f133c76a7aaa7005e47fcaa9d9603b90103927a3f93"),
}
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
CUDA_MAJOR = 13
KIT_ARCHS = "90"             # Hopper (H100/H200): the machines the kit is for
# What the checks do not need (the docker image keeps all of it).  No PTX: sm_90 machine code only.
KIT_CMAKE = {"USE_OPENCV": "OFF", "USE_LEVELDB": "OFF", "USE_HDF5": "OFF", "BUILD_python": "OFF",
             "BUILD_python_layer": "OFF", "CUDA_ARCH_PTX": ""}
# docs/benchmarks.md's cost of the schedule before any GPU was measured (bench/bench_train.py
# --sec-per-iter default); the report puts the measured figure next to it.
README_ASSUMED_S_PER_ITER = 0.5


class KitError(RuntimeError):
    """A failure the user can act on; the message says what to do."""


def log(msg: str) -> None:
    print(f"[kit] {msg}", flush=True)


def _build_caffe_module():
    spec = importlib.util.spec_from_file_location("build_caffe", BUILD_CAFFE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- 1. CUDA toolkit folder
def find_cuda_home(given: str | None) -> Path:
    cands = [given, os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        cands.append(str(Path(os.path.realpath(nvcc)).parent.parent))
    cands += sorted((str(p) for p in Path("/usr/local").glob(f"cuda-{CUDA_MAJOR}*")), reverse=True)
    cands.append("/usr/local/cuda")
    for c in cands:
        if c and (Path(c) / "bin" / "nvcc").is_file() and (Path(c) / "include" / "cuda_runtime.h").is_file():
            return Path(c)
    raise KitError(f"no CUDA {CUDA_MAJOR} toolkit (nvcc) found: install one (e.g. /usr/local/cuda-{CUDA_MAJOR}.0, "
                   f"or the pip packages nvidia-cuda-nvcc and nvidia-cuda-runtime) and pass --cuda-home DIR")


def nvcc_release(cuda_home: Path) -> str:
    out = subprocess.run([str(cuda_home / "bin" / "nvcc"), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release (\d+)\.(\d+)", out)
    if not m:
        raise KitError(f"{cuda_home}/bin/nvcc --version did not say its release:\n{out}")
    if int(m.group(1)) != CUDA_MAJOR:
        raise KitError(f"{cuda_home}/bin/nvcc is CUDA {m.group(1)}.{m.group(2)}; the kit's cuDNN/cuBLAS/NCCL "
                       f"wheels are for CUDA {CUDA_MAJOR}: pass --cuda-home with a CUDA {CUDA_MAJOR} toolkit")
    for need in ("include/cuda_runtime.h", "lib64/libcudart.so"):
        if not (cuda_home / need).exists():
            raise KitError(f"{cuda_home}: no {need}; the toolkit needs the CUDA runtime (nvidia-cuda-runtime)")
    return f"{m.group(1)}.{m.group(2)}"


def fetch_wheels(cache: Path, python: str) -> dict[str, Path]:
    """NVIDIA's wheels, checked by sha256 (pip --require-hashes), in cache/wheels."""
    dl = cache / "wheels"
    dl.mkdir(parents=True, exist_ok=True)
    have = {}
    for name, (version, sha) in CUDA_WHEELS.items():
        stem = name.replace("-", "_") + f"-{version}-"
        hits = [p for p in dl.glob(stem + "*.whl") if sha256_file(p) == sha]
        if hits:
            have[name] = hits[0]
    missing = [n for n in CUDA_WHEELS if n not in have]
    if missing:
        req = dl / "requirements.txt"
        req.write_text("".join(f"{n}=={CUDA_WHEELS[n][0]} --hash=sha256:{CUDA_WHEELS[n][1]}\n" for n in missing))
        cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
               "--python-version", "3.12", "--implementation", "cp", "-d", str(dl), "-r", str(req)]
        for plat in WHEEL_PLATFORMS:
            cmd += ["--platform", plat]
        log(f"downloading {', '.join(missing)} (about 1 GB) into {dl}")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise KitError(f"`{' '.join(cmd)}` failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}\nPyPI must be reachable.")
        for name in missing:
            version, sha = CUDA_WHEELS[name]
            hits = [p for p in dl.glob(name.replace("-", "_") + f"-{version}-*.whl") if sha256_file(p) == sha]
            if not hits:
                raise KitError(f"pip did not leave {name}=={version} with sha256 {sha} in {dl}")
            have[name] = hits[0]
    return have


def cuda_toolkit(cache: Path, cuda_home: Path, wheels: dict[str, Path]) -> Path:
    """One toolkit folder: the local nvcc/cudart plus the wheels' headers and libraries
    (symlinks, so FindCUDA, FindNCCL and Caffe's cuDNN detection all find them in one root)."""
    ident = hashlib.sha256(json.dumps([str(cuda_home), nvcc_release(cuda_home),
                                       sorted((n, v[1]) for n, v in CUDA_WHEELS.items())]).encode()).hexdigest()[:16]
    root = cache / f"cuda{CUDA_MAJOR}-toolkit-{ident}"
    if (root / "TOOLKIT.json").is_file():
        return root
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".tmp-", dir=cache))
    unpacked = tmp / "wheels"
    for name, whl in wheels.items():
        with zipfile.ZipFile(whl) as z:
            members = [m for m in z.namelist() if re.match(r"nvidia/[^/]+/(include|lib)/", m)]
            z.extractall(unpacked, members)
    inc, lib = tmp / "include", tmp / "lib64"
    inc.mkdir()
    lib.mkdir()
    for entry in sorted(cuda_home.iterdir()):
        if entry.name not in ("include", "lib", "lib64", "targets"):
            (tmp / entry.name).symlink_to(entry)
    sources_inc = [cuda_home / "include"] + sorted(unpacked.glob("nvidia/*/include"))
    sources_lib = [cuda_home / "lib64"] + sorted(unpacked.glob("nvidia/*/lib"))
    for folder, dst in [(s, inc) for s in sources_inc] + [(s, lib) for s in sources_lib]:
        for f in sorted(Path(folder).iterdir()):
            if (dst / f.name).exists() or (dst / f.name).is_symlink():
                continue          # the toolkit's own file wins over a wheel's copy
            # Relative into the unpacked wheels (the folder is renamed into place below).
            (dst / f.name).symlink_to(os.path.relpath(f, dst) if tmp in f.parents else f)
    # The wheels ship only libfoo.so.N: the link step looks for libfoo.so.
    for f in sorted(lib.iterdir()):
        m = re.match(r"(lib[^/]+?\.so)\.\d+$", f.name)
        if m and not (lib / m.group(1)).exists():
            (lib / m.group(1)).symlink_to(f.name)
    (tmp / "lib").symlink_to("lib64")
    (tmp / "targets" / "x86_64-linux").mkdir(parents=True)
    (tmp / "targets" / "x86_64-linux" / "include").symlink_to("../../include")
    (tmp / "targets" / "x86_64-linux" / "lib").symlink_to("../../lib64")
    (tmp / "TOOLKIT.json").write_text(json.dumps({"cuda_home": str(cuda_home), "nvcc": nvcc_release(cuda_home),
                                                  "wheels": {n: v[0] for n, v in CUDA_WHEELS.items()}}, indent=1))
    os.replace(tmp, root)
    return root


# ---------------------------------------------------------------- 2. Caffe
def caffe_args(mode: str, toolkit: Path | None, python: str, jobs: int) -> list[str]:
    if mode == "cpu":
        return ["--variant", "cpu", "--python", python]
    args = ["--variant", "cuda", "--cuda-archs", KIT_ARCHS, "--cudnn", "on", "--nccl", "on", "--python", python,
            "--jobs", str(jobs), "--cmake", f"CUDA_TOOLKIT_ROOT_DIR={toolkit}", "--cmake", f"CUDNN_ROOT={toolkit}"]
    for k, v in sorted(KIT_CMAKE.items()):
        args += ["--cmake", f"{k}={v}"]
    return args


def build_caffe(args: list[str]) -> dict:
    """Run build_caffe.py (a no-op when cached); its key record, with the prefix."""
    info = json.loads(subprocess.run([sys.executable, str(BUILD_CAFFE), *args, "--print-key"], check=True,
                                     capture_output=True, text=True).stdout)
    prefix = Path(info["prefix"])
    if not (prefix / "BUILD_INFO.json").is_file():
        log(f"building Caffe ({' '.join(args[:2])}) into {prefix}: on 2 cores the CUDA build takes "
            "about an hour; progress and log as below")
    r = subprocess.run([sys.executable, str(BUILD_CAFFE), *args])
    if r.returncode:
        raise KitError(f"build_caffe.py {' '.join(args)} failed (exit {r.returncode}); see its log above")
    return json.loads((prefix / "BUILD_INFO.json").read_text()) | {"prefix": str(prefix)}


def venv_caffe(prefix: Path | None) -> dict:
    """The CPU Caffe that `make setup` linked into the venv (what the tests run)."""
    if prefix is None:
        link = ROOT / ".venv" / "caffe-prefix"
        if not link.is_file():
            raise KitError(f"{link}: missing; run `make setup` first (it builds the CPU Caffe)")
        prefix = Path(link.read_text().strip())
    info = prefix / "BUILD_INFO.json"
    if not info.is_file():
        raise KitError(f"{prefix}: not a finished Caffe build (no BUILD_INFO.json); run `make setup`")
    return json.loads(info.read_text()) | {"prefix": str(prefix)}


# ---------------------------------------------------------------- 3. packaging
class Apt:
    """apt-get download of exact versions through a private sources list and state in the cache
    (tools/debian_apt.py: the machine's own apt configuration and its installed packages are
    untouched), from the Debian suites the machine itself uses, so the versions it built
    against are there; downloaded .debs are kept in the cache."""

    def __init__(self, cache: Path):
        self.dir = cache / "apt-kit"
        self.debs = cache / "debs"
        self.debs.mkdir(parents=True, exist_ok=True)
        # An empty dpkg status: versions are what the archive has, not what is installed here.
        self.apt = PrivateApt(self.dir, system_deb_sources(), empty_status=True)
        self.sources = self.apt.sources
        self.updated = False

    def update(self) -> None:
        if not self.updated:
            self._try(self.apt.update, 86400)
        self.updated = True

    @staticmethod
    def _try(fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except AptError as e:
            raise KitError(str(e)) from None

    def _cached(self, package: str, version: str) -> Path | None:
        hits = sorted(self.debs.glob(f"{package}_{version.replace(':', '%3a')}_*.deb"))
        return hits[0] if hits else None

    def download(self, wanted: dict[str, str]) -> dict[str, tuple[Path, str]]:
        """package -> (.deb, version) for {package: installed version}: that version, or where
        the archive has moved on, its current candidate (same soname, a newer Debian revision).
        One apt-get call for everything not in the cache yet."""
        got = {p: (self._cached(p, v), v) for p, v in wanted.items()}
        missing = {p: v for p, (deb, v) in got.items() if deb is None}
        if missing:
            self.update()
            cands = self.apt.candidates(sorted(missing))
            for p, v in missing.items():      # the installed version if the archive has it
                if cands.get(p) and cands[p] != v and not self.apt.available(p, v):
                    missing[p] = cands[p]
            todo = [f"{p}={v}" for p, v in sorted(missing.items()) if self._cached(p, v) is None]
            if todo:
                self._try(self.apt.run, "download", *todo, cwd=self.debs)
            for p, v in missing.items():
                deb = self._cached(p, v)
                if deb is None:
                    raise KitError(f"Debian package {p} {v} was not downloaded (sources: {self.sources})")
                got[p] = (deb, v)
        return got


def owning_packages(paths: list[str]) -> dict[str, tuple[str, str]]:
    """path -> (Debian package that installed it, installed version), in two dpkg-query calls
    (merged /usr: a file is registered under /lib or /usr/lib, either may be asked)."""
    forms = {}
    for path in paths:
        for c in {path, os.path.realpath(path)}:
            forms[c] = path
            alt = c.replace("/usr/lib/", "/lib/", 1) if c.startswith("/usr/lib/") else c.replace("/lib/", "/usr/lib/", 1)
            forms[alt] = path
    r = subprocess.run(["dpkg-query", "-S", *sorted(forms)], capture_output=True, text=True)
    owner = {}
    for line in r.stdout.splitlines():   # "libfoo1:amd64: /usr/lib/x86_64-linux-gnu/libfoo.so.1"
        pkgs, _, file = line.partition(": ")
        if file in forms:
            owner.setdefault(forms[file], pkgs.split(",")[0].strip().split(":")[0])
    lost = sorted(set(paths) - set(owner))
    if lost:
        raise KitError(f"no Debian package owns {', '.join(lost)}; the kit can carry only packaged libraries "
                       "(install them from Debian, or build the kit on Debian 12)")
    pkgs = sorted(set(owner.values()))
    r = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\n", *pkgs], capture_output=True, text=True)
    version = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    return {p: (pkg, version[pkg]) for p, pkg in owner.items()}


def stage_programs(prefix: Path, stage: Path) -> None:
    """caffe, extract_features and libcaffe into stage/bin and stage/lib, stripped."""
    (stage / "bin").mkdir(parents=True)
    (stage / "lib").mkdir()
    for tool in KIT_TOOLS:
        shutil.copy2(prefix / "bin" / tool, stage / "bin" / tool)
    lib = next(p for p in sorted((prefix / "lib").glob("libcaffe.so.*")) if not p.is_symlink())
    shutil.copy2(lib, stage / "lib" / lib.name)
    for f in list((stage / "bin").iterdir()) + [stage / "lib" / lib.name]:
        subprocess.run(["strip", "--strip-unneeded", str(f)], check=True)


def carry_libraries(stage: Path, library_path: list[str], apt: Apt) -> list[dict]:
    """Copy into stage/lib every library the staged programs load that is neither in the kit,
    glibc's nor CUDA's, from the Debian package that provides it (downloaded, unpacked).
    The loader lists each program's whole closure, so one pass over the programs suffices;
    a second pass over everything staged proves nothing is left."""
    carried = []
    extract = stage.parent / "debs-unpacked"
    for round_ in range(2):
        todo = {}
        for elf in kitlib.elf_files(stage) if round_ else sorted((stage / "bin").iterdir()):
            found, complaints = kitlib.ld_list(elf, [str(stage / "lib")] + library_path)
            for soname, path in found.items():
                if soname in kitlib.BASE_SONAMES or kitlib.is_cuda(soname):
                    continue
                if path and kitlib._inside(path, [(stage / "lib").resolve()]):
                    continue
                if path is None:
                    raise KitError(f"{elf.name} needs {soname}, which does not resolve here either "
                                   f"(library path {library_path}); {complaints}")
                todo[soname] = path
        if not todo:
            return carried
        owners = owning_packages(sorted(set(todo.values())))
        debs = apt.download({pkg: ver for pkg, ver in owners.values()})
        for soname, path in sorted(todo.items()):
            pkg, installed = owners[path]
            deb, version = debs[pkg]
            dest = extract / f"{pkg}_{version}"
            if not dest.is_dir():
                dest.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
            real = os.path.realpath(path)
            inside = [p for p in dest.rglob(os.path.basename(real)) if p.is_file()]
            if not inside:
                raise KitError(f"{deb.name} does not contain {os.path.basename(real)} (for {soname})")
            shutil.copy2(inside[0], stage / "lib" / soname)
            carried.append({"soname": soname, "package": pkg, "version": version, "installed": installed,
                            "identical_to_linked": sha256_file(inside[0]) == sha256_file(real),
                            "bytes": (stage / "lib" / soname).stat().st_size})
    raise KitError("libraries still unresolved after carrying their packages: " + ", ".join(sorted(todo)))


# ---------------------------------------------------------------- 4. nets and settings
# What each kit runs.  CUDA: the paper's sizes (batch 128, full VGG-16); CPU mini-kit: the
# small variant at tiny sizes, so that the dry run takes about a minute on 2 cores.
MODES = {
    "cuda": {
        "variant": "full", "time": {"batch": 128, "fallback_batch": 64, "iterations": 10},
        "concurrent": {"jobs": [2, 4], "iterations": 20}, "workspace": {"mb": [64, 1024]},
        "training": {"iterations": 200, "resume_to": 250, "display": 10, "test_interval": 50, "test_iter": 2,
                     "loss_ratio": 0.9},
        "cpu_gpu": {"batch": 8, "forward_tol": 1e-3, "grad_tol": 1e-2},
        "data": {"train_images": 512, "val_images": 128},
        "mtcnn": {"gpu_iterations": 50, "cpu_iterations": 5},
        "budget_s": 450,
        # cap: most seconds a check may take; min: the least it is started with.
        "caps": {"device_query": (60, 10), "time_single": (150, 30), "training": (220, 60), "cpu_gpu": (150, 40),
                 "concurrent": (150, 40), "workspace": (100, 30), "mtcnn": (60, 15), "schedule": (10, 0)},
    },
    "cpu": {
        "variant": "small", "time": {"batch": 8, "fallback_batch": 4, "iterations": 2},
        "concurrent": {"jobs": [2], "iterations": 3}, "workspace": {"mb": [64]},
        "training": {"iterations": 100, "resume_to": 120, "display": 10, "test_interval": 50, "test_iter": 2,
                     "loss_ratio": 0.9},
        "cpu_gpu": {"batch": 4, "forward_tol": 1e-3, "grad_tol": 1e-2},
        "data": {"train_images": 64, "val_images": 16},
        "mtcnn": {"gpu_iterations": 2, "cpu_iterations": 2},
        "budget_s": 400,
        "caps": {"device_query": (60, 10), "time_single": (120, 20), "training": (150, 30), "cpu_gpu": (120, 20),
                 "concurrent": (100, 20), "workspace": (60, 10), "mtcnn": (60, 10), "schedule": (10, 0)},
    },
}
# The photo MTCNN's nets are timed on: a raw CelebA image (500x400) at the paper's smallest face
# (20 px), and the candidates such a photo passes on, as counted on bench_mtcnn.py's photos
# (P-Net -> R-Net: 23-109, R-Net -> O-Net: 2-8).
MTCNN_PHOTO = {"height": 400, "width": 500, "min_face": 20, "factor": 0.709, "rnet_crops": 64, "onet_crops": 8}
# Layers whose SGD step is compared CPU vs GPU (first, middle, last conv; the head).
GRAD_LAYERS = ("conv1_1", "conv3_1", "conv5_3", "fc8_joint")
FEATURE_BLOBS = ("fc7", "fc8_joint")


def write_nets(nets_dir: Path, mode: str) -> dict:
    """The prototxts of the checks, from the project's own generators; their names."""
    from google.protobuf import text_format

    from g2s_caffe.core.datasets import MONITOR_SIZE
    from g2s_caffe.core.nets.data_layers import with_inputs
    from g2s_caffe.methods.g2s import nets, params as hp, solvers as g2s_solvers
    from g2s_caffe.core.nets import solvers
    from g2s_caffe.core.attributes import default_attributes

    cfg = MODES[mode]
    shape, base = hp.VARIANTS[cfg["variant"]]
    names = default_attributes("celeba").names
    T = len(names)
    batch, tcfg = cfg["time"]["batch"], cfg["training"]
    gpu = mode == "cuda"
    nets_dir.mkdir(parents=True)
    files = {}

    def put(key: str, name: str, message) -> None:
        (nets_dir / name).write_text(f"# written by tools/gpu_kit/build_kit.py ({mode} kit)\n"
                                     + text_format.MessageToString(message))
        files[key] = f"nets/{name}"

    train = nets.step1_net(names, shape, nets.DataSpec("data", "train", "val", "a", batch, hp.TEST_BATCH if gpu else batch),
                           "kit_step1")
    put("train", "train_val.prototxt", train)
    files["time"] = {}
    for b in (batch, cfg["time"]["fallback_batch"]):
        (nets_dir / f"time_b{b}.prototxt").write_text(text_format.MessageToString(with_inputs(train, b, T)))
        files["time"][str(b)] = f"nets/time_b{b}.prototxt"
    put("features", "features.prototxt",
        nets.step1_net(names, shape, nets.DataSpec("data", "train", "val", "a", batch, cfg["cpu_gpu"]["batch"]),
                       "kit_features"))
    # One SGD step compared CPU vs GPU: no dropout (its masks come from different RNGs), no
    # mirror, crops the size of the images (offset 0): both sides see the same numbers.
    grad = nets.step1_net(names, shape, nets.DataSpec("data", "grad", "grad", "a", cfg["cpu_gpu"]["batch"],
                                                      cfg["cpu_gpu"]["batch"]), "kit_sgd_step")
    for layer in [l for l in grad.layer if l.type == "Dropout"]:
        grad.layer.remove(layer)
    for layer in grad.layer:
        if layer.type == "Data" and layer.HasField("transform_param"):
            layer.transform_param.mirror = False
    put("grad", "sgd_step.prototxt", grad)

    settings = hp.SolverSettings(batch_size=batch, base_lr=base.base_lr, test_batch_size=hp.TEST_BATCH if gpu else batch,
                                 solver_mode="GPU" if gpu else "CPU")

    def solver(net_key: str, prefix: str, max_iter: int, test: bool):
        s = g2s_solvers.solver(files[net_key], prefix, max_iter, hp.TEST_BATCH, settings)
        s.display, s.average_loss, s.snapshot = tcfg["display"], tcfg["display"], tcfg["iterations"]
        if test:
            del s.test_iter[:]
            s.test_iter.append(tcfg["test_iter"])
            s.test_interval, s.test_initialization = tcfg["test_interval"], False
        else:
            s.ClearField("test_iter")
            s.ClearField("test_interval")
        return s

    put("solver_train", "solver_train.prototxt", solver("train", "snap/step1", tcfg["iterations"], True))
    put("solver_resume", "solver_resume.prototxt", solver("train", "snap/step1", tcfg["resume_to"], True))
    init = solver("train", "init/step1", 0, False)
    init.snapshot = 0     # Caffe snapshots after training only when iter % snapshot != 0
    init.display = 0      # else a display forward pass of the whole batch follows
    put("solver_init", "solver_init.prototxt", init)
    for side in ("cpu", "gpu"):
        s = solver("grad", f"grad/{side}", 1, False)
        # A large step, so that it stands far above float32 rounding of the weights; plain SGD.
        s.base_lr, s.lr_policy, s.momentum, s.weight_decay, s.display, s.average_loss = 100.0, "fixed", 0.0, 0.0, 1, 1
        s.ClearField("gamma")
        s.ClearField("power")
        from caffe.proto import caffe_pb2
        s.solver_mode = caffe_pb2.SolverParameter.GPU if (gpu and side == "gpu") else caffe_pb2.SolverParameter.CPU
        put(f"grad_solver_{side}", f"sgd_step_solver_{side}.prototxt", s)
    mtcnn = mtcnn_time_net()
    (nets_dir / "mtcnn_time.prototxt").write_text(f"# written by tools/gpu_kit/build_kit.py ({mode} kit)\n"
                                                  + text_format.MessageToString(mtcnn.pop("net")))
    files["mtcnn_time"] = "nets/mtcnn_time.prototxt"
    data = {"seed": hp.RANDOM_SEED, "attributes": T, "image_size": shape.image_size, "crop_size": shape.crop_size,
            "mean_bgr": list(hp.VGG_FACE_MEAN_BGR), "grad_images": cfg["cpu_gpu"]["batch"], **cfg["data"],
            # Random init, no VGG-Face: pixels this far from the mean give the net unit-scale
            # input (input_scale x amplitude ~ 1.5), where SGD at the solver's rate learns.
            "amplitude": min(90, max(1, round(1.5 / shape.input_scale))),
            "noise": max(1, min(90, round(1.5 / shape.input_scale)) // 2),
            # Imbalanced attributes (like CelebA's): a net learns the priors first, so the
            # loss falls even before it reads the bands.
            "priors": [round(0.1 + 0.8 * ((7 * t) % T) / (T - 1), 3) for t in range(T)]}
    schedule = {"step1_iters": hp.MAX_ITER_STEP1, "step23_iters": hp.MAX_ITER_STEP23, "step23_jobs": 2 * T,
                "test_interval": hp.TEST_INTERVAL, "test_batch": hp.TEST_BATCH,
                "test_iter": solvers.test_iterations(MONITOR_SIZE["celeba"], hp.TEST_BATCH),
                "kit_test_iter": tcfg["test_iter"], "batch": hp.BATCH,
                "readme_assumed_s_per_iter": README_ASSUMED_S_PER_ITER}
    return {"nets": files, "data": data, "schedule": schedule, "mtcnn": mtcnn}


def mtcnn_time_net() -> dict:
    """One net for `caffe time` holding what MTCNN's nets compute for one MTCNN_PHOTO: P-Net
    once per pyramid scale (a GPU takes a scale at once), R-Net on its crops, O-Net on its
    crops; each part's layers and blobs prefixed by its name ("pnet_300x240/", "rnet/",
    "onet/"), so that the per-layer times add up per part.  Random weights: only time counts."""
    from caffe.proto import caffe_pb2

    from data_prep.mtcnn.detector import scale_pyramid
    from data_prep.mtcnn.nets import onet_spec, pnet_spec, rnet_spec
    p = MTCNN_PHOTO
    parts = []
    for scale in scale_pyramid(p["height"], p["width"], p["min_face"], p["factor"]):
        h, w = math.ceil(p["height"] * scale), math.ceil(p["width"] * scale)    # as the detector scales
        parts.append((f"pnet_{w}x{h}", pnet_spec(h, w)))
    parts += [("rnet", rnet_spec(p["rnet_crops"])), ("onet", onet_spec(p["onet_crops"]))]
    merged = caffe_pb2.NetParameter(name="mtcnn_time")
    for prefix, spec in parts:
        for layer in spec.to_proto().layer:
            layer.name = f"{prefix}/{layer.name}"
            layer.bottom[:] = [f"{prefix}/{b}" for b in layer.bottom]
            layer.top[:] = [f"{prefix}/{t}" for t in layer.top]
            merged.layer.add().CopyFrom(layer)
    return {"net": merged, "photo": dict(p), "parts": [prefix for prefix, _ in parts]}


# ---------------------------------------------------------------- the kit
def inputs_fingerprint(caffe_key: str, mode: str) -> str:
    """What the kit is made of besides Caffe: this folder's scripts and the net generators."""
    h = hashlib.sha256(f"{mode}:{caffe_key}".encode())
    generators = ("methods/g2s/nets.py", "methods/g2s/params.py", "methods/g2s/solvers.py", "core/nets/solvers.py",
                  "core/nets/data_layers.py", "core/nets/params.py", "core/attributes.py", "core/layout.py")
    mtcnn = (ROOT / "data_prep" / "mtcnn" / "nets.py", ROOT / "data_prep" / "mtcnn" / "detector.py")
    for f in sorted(HERE.glob("*.py")) + [ROOT / "g2s_caffe" / n for n in generators] + list(mtcnn):
        h.update(f.name.encode() + sha256_file(f).encode())
    for f in sorted((ROOT / "g2s_caffe" / "data" / "attributes").glob("*")):
        h.update(f.name.encode() + sha256_file(f).encode())
    return h.hexdigest()


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def make_kit(out: Path, mode: str, caffe: dict, toolkit: Path | None, cache: Path) -> dict:
    prefix = Path(caffe["prefix"])
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix="kit-", dir=out.parent))
    try:
        stage = work / "payload"
        stage_programs(prefix, stage)
        cuda_lib = [str(toolkit / "lib64")] if toolkit else []
        carried = carry_libraries(stage, [str(prefix / "lib")] + cuda_lib, Apt(cache))
        full = kitlib.resolution_report(stage, [toolkit / "lib64"] if toolkit else None)
        named = kitlib.resolution_report(stage, None)   # what a bare machine sees before the CUDA set
        problems = full["problems"] + named["problems"]
        if problems:
            raise KitError("the kit's libraries do not all resolve:\n" + "\n".join(problems))
        glibc = kitlib.required_versions(kitlib.elf_files(stage))
        kit = work / "kit"
        kit.mkdir()
        nets_info = write_nets(kit / "nets", mode)
        mtcnn = nets_info.pop("mtcnn")
        for f in RUN_FILES:
            shutil.copy2(HERE / f, kit / f)
        payload = kit / ("payload.tar.xz" if mode == "cuda" else "payload.tar.gz")
        unpacked = tree_bytes(stage)
        # xz for the carried kit (size counts); fast gzip for the test's mini-kit.
        with (tarfile.open(payload, "w:xz", preset=9) if mode == "cuda" else
              tarfile.open(payload, "w:gz", compresslevel=1)) as tf:
            for sub in ("bin", "lib"):
                tf.add(stage / sub, arcname=sub)
        cfg = MODES[mode]
        manifest = {
            "format": "g2s-gpu-kit/1", "mode": mode, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "fingerprint": inputs_fingerprint(caffe["key"], mode), "build_key": caffe["key"],
            "caffe_prefix": str(prefix), "cmake_flags": caffe.get("cmake_flags"), "nvcc": caffe.get("nvcc"),
            "caffe_build_seconds": caffe.get("build_seconds"), "project_patches": caffe.get("project_patches"),
            "cuda_wheels": {n: v[0] for n, v in CUDA_WHEELS.items()} if mode == "cuda" else None,
            "payload": {"file": payload.name, "sha256": sha256_file(payload), "bytes": payload.stat().st_size,
                        "unpacked_bytes": unpacked},
            "cuda_sonames": full["cuda_sonames"], "base_sonames": sorted(kitlib.BASE_SONAMES),
            "carried": carried, "glibc_required": glibc,
            "resolution": {"checked_with_cuda_dirs": [str(toolkit / "lib64")] if toolkit else [],
                           "problems": problems, "elves": full["elves"]},
            **nets_info,
            "checks": {"time": cfg["time"], "concurrent": cfg["concurrent"], "workspace": cfg["workspace"],
                       "training": dict(cfg["training"], snapshot_prefix="snap/step1"),
                       "cpu_gpu": dict(cfg["cpu_gpu"], blobs=list(FEATURE_BLOBS), grad_layers=list(GRAD_LAYERS)),
                       "mtcnn": dict(cfg["mtcnn"], **mtcnn)},
            "caps": {k: {"cap": c, "min": m} for k, (c, m) in cfg["caps"].items()}, "budget_s": cfg["budget_s"],
            "run_command": RUN_COMMAND if mode == "cuda" else f"python3 {out}/run_checks.py --cpu --out DIR",
        }
        manifest["kit_bytes"] = tree_bytes(kit) + len(json.dumps(manifest, indent=1))
        manifest["package_seconds"] = round(time.time() - t0, 1)
        (kit / "kit.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if mode == "cuda" and tree_bytes(kit) > SIZE_LIMIT_MIB * 2 ** 20:
            raise KitError(f"the kit is {tree_bytes(kit) / 2 ** 20:.1f} MiB, over its {SIZE_LIMIT_MIB} MiB limit")
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            os.replace(out, old)
        os.replace(kit, out)          # the kit appears whole or not at all
        shutil.rmtree(old, ignore_errors=True)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--cpu-mini", action="store_true", help="package the venv's CPU Caffe instead (tests)")
    ap.add_argument("--out", type=Path, default=None, help="kit folder (None: build/gpu_kit or build/gpu_kit_cpu)")
    ap.add_argument("--cuda-home", default=None, help="CUDA 13 toolkit with nvcc (None: $CUDA_HOME, nvcc on PATH, "
                                                      "/usr/local/cuda-13*)")
    ap.add_argument("--cache", type=Path, default=None, help="cache (None: build_caffe.py's, env G2S_CAFFE_CACHE)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="compile jobs")
    ap.add_argument("--force", action="store_true", help="repackage even if the kit is up to date")
    ap.add_argument("--configure-only", action="store_true",
                    help="CUDA kit: steps 1 and 2 up to Caffe's CMake configure (minutes, not the hour-long "
                         "compile); nothing is built or packaged (CI's check of the kit's build steps)")
    ap.add_argument("--caffe-prefix", type=Path, default=None,
                    help="--cpu-mini: the CPU Caffe to package (None: the venv's, .venv/caffe-prefix)")
    a = ap.parse_args(argv)
    mode = "cpu" if a.cpu_mini else "cuda"
    out = (a.out or DEFAULT_OUT[mode]).resolve()
    cache = a.cache or _build_caffe_module().default_cache()
    t0 = time.time()
    try:
        toolkit = None
        python = str(Path(sys.executable))
        if mode == "cuda":
            cuda_home = find_cuda_home(a.cuda_home)
            log(f"CUDA toolkit {cuda_home} (nvcc {nvcc_release(cuda_home)})")
            toolkit = cuda_toolkit(cache, cuda_home, fetch_wheels(cache, python))
            log(f"CUDA {CUDA_MAJOR} toolkit folder with the wheels: {toolkit}")
        if mode == "cuda" and a.configure_only:
            args = caffe_args(mode, toolkit, python, a.jobs) + ["--cache", str(cache), "--configure-only"]
            if subprocess.run([sys.executable, str(BUILD_CAFFE), *args]).returncode:
                raise KitError("build_caffe.py --configure-only failed; see its log above")
            log(f"configured in {time.time() - t0:.0f} s (--configure-only)")
            return 0
        if mode == "cuda":
            caffe = build_caffe(caffe_args(mode, toolkit, python, a.jobs) + (["--cache", str(cache)] if a.cache else []))
        else:
            caffe = venv_caffe(a.caffe_prefix)
        fp = inputs_fingerprint(caffe["key"], mode)
        current = out / "kit.json"
        if not a.force and current.is_file() and json.loads(current.read_text()).get("fingerprint") == fp:
            log(f"{out} is up to date ({tree_bytes(out) / 2 ** 20:.1f} MiB)")
            return 0
        out.parent.mkdir(parents=True, exist_ok=True)
        m = make_kit(out, mode, caffe, toolkit, cache)
    except (KitError, subprocess.CalledProcessError) as e:
        print(f"[kit] error: {e}", file=sys.stderr)
        return 1
    size = tree_bytes(out) / 2 ** 20
    log(f"{out}: {size:.1f} MiB ({m['payload']['unpacked_bytes'] / 2 ** 20:.1f} MiB unpacked), "
        f"{len(m['carried'])} libraries carried, all resolve; packaged in {m['package_seconds']} s, "
        f"{time.time() - t0:.0f} s in all")
    log(f"CUDA libraries the GPU machine must provide: {', '.join(m['cuda_sonames']) or 'none'}")
    log(f"run it: {m['run_command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
