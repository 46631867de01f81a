#!/usr/bin/env python3
"""The GPU check kit's run script: eight checks of the CUDA Caffe build, one JSON + one
Markdown report.  Standard library only (Python >= 3.9): it runs on a bare GPU machine.

  python3 build/gpu_kit/run_checks.py --out DIR            on the GPU machine (the kit's copy)
  python3 build/gpu_kit_cpu/run_checks.py --cpu --out DIR  dry run of a CPU mini-kit here

Checks (each with its own time cap inside one overall budget; a failed check is reported
with its log tail and the others still run):
  1 device_query  `caffe device_query`; GPU, driver, CUDA runtime, cuDNN, cuBLAS, cuRAND and
                  NCCL versions of the libraries actually resolved and loaded.
  2 time_single   `caffe time` of the Step-1 train net (full VGG-16) at per-GPU batch 128
                  (64 x iter_size 2 if 128 does not fit): forward, backward, images/s, with
                  TF32 allowed and with NVIDIA_TF32_OVERRIDE=0; peak GPU memory.
  3 concurrent    2 and 4 such jobs at once on the GPU: aggregate images/s.
  4 workspace     the same net with cuDNN's workspace limit raised (CAFFE_CUDNN_WORKSPACE_MB,
                  a setting of project patch 0007; Caffe's default is 8 MB).
  5 training      the Step-1 net trained a few hundred iterations on LMDBs written here;
                  loss falls, a snapshot, a resume from it.
  6 cpu_gpu       one forward pass (and one SGD step) on CPU and GPU from the same weights:
                  relative differences.
  7 schedule      the paper's whole schedule in GPU-hours from the measured speed.
  8 mtcnn         MTCNN's three nets at the sizes one raw CelebA photo gives them (P-Net per
                  pyramid scale, R-Net and O-Net on that photo's crops): `caffe time` on the
                  GPU as the detector builds them (Caffe's own convolutions) and with cuDNN's,
                  and on one CPU thread, forward time per net.

The kit (build_kit.py) holds kit.json (what to run), nets/ and payload.tar.xz (caffe,
libcaffe and the libraries a bare machine may lack).  The CUDA libraries are found on the
machine: its Python wheels (site-packages/nvidia/*/lib), CUDA toolkits, the system.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import math
import operator
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import caffe_io  # noqa: E402
import kitlib    # noqa: E402

FORMAT = "g2s-gpu-kit/1"
CHECKS = ("device_query", "time_single", "training", "cpu_gpu", "mtcnn", "concurrent", "workspace", "schedule")
TITLES = {
    "device_query": "1. Device and libraries", "time_single": "2. caffe time, one job",
    "concurrent": "3. Concurrent jobs on one GPU", "workspace": "4. cuDNN workspace limit",
    "training": "5. Short training, snapshot, resume", "cpu_gpu": "6. CPU vs GPU agreement",
    "schedule": "7. The paper's schedule in GPU-hours", "mtcnn": "8. MTCNN's nets on one photo, GPU vs CPU",
}
_dot = getattr(math, "sumprod", None) or (lambda a, b: math.fsum(map(operator.mul, a, b)))


class CheckFailed(RuntimeError):
    """A check's verdict: failed, with what was seen."""


# ---------------------------------------------------------------- processes
class Proc:
    """One logged subprocess in its own session (so a timeout kills all of it)."""

    def __init__(self, cmd: list[str], log: Path, env: dict, cwd: Path):
        self.cmd, self.log, self.t0 = cmd, log, time.time()
        log.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(log, "w")
        self._f.write(f"$ {' '.join(cmd)}\n")
        self._f.flush()
        self.p = subprocess.Popen(cmd, stdout=self._f, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  start_new_session=True)
        self.maps: set[str] = set()

    def wait(self, deadline: float) -> dict:
        timed_out = False
        while self.p.poll() is None:
            if time.time() > deadline:
                timed_out = True
                with _quiet():
                    os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
                break
            self.maps.update(kitlib.loaded_libraries(self.p.pid))
            time.sleep(0.25)
        self._f.close()
        text = self.log.read_text(errors="replace")
        return {"rc": self.p.returncode, "timed_out": timed_out, "seconds": round(time.time() - self.t0, 1),
                "text": text, "log": self.log.name}


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


def tail(text: str, lines: int = 40, chars: int = 4000) -> str:
    return "\n".join(text.splitlines()[-lines:])[-chars:]


class GpuMonitor:
    """Peak GPU memory in use (nvidia-smi, every 0.5 s) while a block runs; None without it."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        self.samples: list[float] = []
        self.baseline = None

    @staticmethod
    def used_mib() -> float | None:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                  "-i", "0"], capture_output=True, text=True, timeout=10).stdout
            return float(out.strip().splitlines()[0])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return None

    def __enter__(self):
        if self.enabled:
            self.baseline = self.used_mib()
            self._stop = threading.Event()
            self._t = threading.Thread(target=self._poll, daemon=True)
            self._t.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            v = self.used_mib()
            if v is not None:
                self.samples.append(v)
            self._stop.wait(0.5)

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._t.join(timeout=15)

    def result(self) -> dict:
        if not self.enabled or not self.samples:
            return {"peak_mib": None, "note": "nvidia-smi not available" if not self.enabled else "no sample"}
        base = self.baseline or 0.0
        return {"peak_mib": max(self.samples), "baseline_mib": base, "peak_over_baseline_mib": max(self.samples) - base}


# ---------------------------------------------------------------- log parsing
_TS = re.compile(r"^[IWEF](?:\d{8}|\d{4}) (\d\d):(\d\d):(\d\d\.\d+)")   # glog: I[YYYY]MMDD hh:mm:ss.us


def _stamp(line: str) -> float | None:
    m = _TS.match(line)
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def parse_time_log(text: str) -> dict:
    """`caffe time` averages, per-iteration times and the slowest layers."""
    def avg(label):
        m = re.search(rf"Average {label}: ([\d.]+) ms", text)
        return float(m.group(1)) if m else None
    iters, stamps = [], []
    for line in text.splitlines():
        m = re.search(r"Iteration: (\d+) forward-backward time: ([\d.]+) ms", line)
        if m:
            iters.append(float(m.group(2)))
            stamps.append(_stamp(line))
    layers = {}
    for m in re.finditer(r"\]\s+(\S+)\s+forward: ([\d.]+) ms\.", text):
        layers.setdefault(m.group(1), {})["forward_ms"] = float(m.group(2))
    for m in re.finditer(r"\]\s+(\S+)\s+backward: ([\d.]+) ms\.", text):
        layers.setdefault(m.group(1), {})["backward_ms"] = float(m.group(2))
    slowest = sorted(layers.items(), key=lambda kv: -(kv[1].get("forward_ms", 0) + kv[1].get("backward_ms", 0)))
    return {"forward_ms": avg("Forward pass"), "backward_ms": avg("Backward pass"),
            "forward_backward_ms": avg("Forward-Backward"), "iteration_ms": iters,
            "iteration_stamps": stamps, "median_iteration_ms": statistics.median(iters) if iters else None,
            "slowest_layers": [{"layer": k, **v} for k, v in slowest[:6]]}


def parse_train_log(text: str) -> dict:
    """Displayed losses, speed, test outputs and snapshots of a `caffe train` log."""
    losses, speeds, tests, snaps, test_secs = [], [], [], [], []
    test_start = None
    for line in text.splitlines():
        m = re.search(r"Iteration (\d+) \((\S+) iter/s, ([\d.e+-]+)s/(\d+) iters\), loss = (\S+)", line)
        if m:
            losses.append((int(m.group(1)), float(m.group(5))))
            speeds.append((int(m.group(1)), float(m.group(3)) / int(m.group(4))))
            continue
        m = re.search(r"Iteration (\d+), loss = (\S+)", line)
        if m:
            losses.append((int(m.group(1)), float(m.group(2))))
            continue
        if re.search(r"Iteration \d+, Testing net", line):
            test_start = _stamp(line)
        m = re.search(r"Test net output #\d+: (\S+) = (\S+)", line)
        if m:
            tests.append((m.group(1), float(m.group(2))))
            if test_start is not None:
                t = _stamp(line)
                if t is not None:
                    test_secs.append(t - test_start)
                test_start = None
        m = re.search(r"Snapshotting to binary proto file (\S+)", line)
        if m:
            snaps.append(m.group(1))
    resumed = re.search(r"Resuming from (\S+)", text)
    return {"losses": losses, "seconds_per_iter": speeds, "tests": tests, "snapshots": snaps,
            "test_seconds": test_secs, "resumed_from": resumed.group(1) if resumed else None,
            "finished": "Optimization Done" in text}


def mtcnn_times(text: str, parts: list[str]) -> dict:
    """Forward ms of the MTCNN time net's parts (each the sum of its layers' averages; P-Net's
    scales together as pnet_ms) from a `caffe time` log, and the whole forward pass."""
    by_part = dict.fromkeys(parts, 0.0)
    for m in re.finditer(r"\]\s+([^/\s]+)/\S+\s+forward: ([\d.]+) ms\.", text):
        if m.group(1) in by_part:
            by_part[m.group(1)] += float(m.group(2))
    missing = [p for p, v in by_part.items() if v == 0.0]
    forward = parse_time_log(text)["forward_ms"]
    if forward is None or missing:
        raise CheckFailed(f"caffe time's log lacks the forward time of {', '.join(missing) or 'the net'}\n{tail(text)}")
    return {"forward_ms": forward, "pnet_ms": round(sum(v for p, v in by_part.items() if p.startswith("pnet_")), 4),
            "rnet_ms": round(by_part["rnet"], 4), "onet_ms": round(by_part["onet"], 4),
            "by_part": {p: round(v, 4) for p, v in by_part.items()}}


def with_conv_engine(prototxt: str, engine: str) -> str:
    """The net with every convolution on ``engine`` (CAFFE: im2col + BLAS; CUDNN; DEFAULT).  Any
    other engine line goes too: the MTCNN time net sets one on its convolutions only."""
    out = re.sub(r"\n\s*engine: \w+", "", prototxt)
    out, n = re.subn(r"convolution_param\s*\{", f"convolution_param {{\n    engine: {engine}", out)
    if not n:
        raise CheckFailed("the MTCNN time net has no convolution_param to set the engine of")
    return out


def images_per_s(batch_images: int, ms: float | None) -> float | None:
    return None if not ms else round(batch_images * 1000.0 / ms, 1)


# ---------------------------------------------------------------- the run
class Run:
    def __init__(self, kit_dir: Path, out: Path, work: Path, cpu: bool, budget: float,
                 cuda_dirs: list[str] | None):
        self.kit_dir, self.out, self.work, self.cpu = kit_dir, out, work, cpu
        self.t0 = time.time()
        self.deadline = self.t0 + budget
        self.budget = budget
        self.kit = json.loads((kit_dir / "kit.json").read_text())
        if self.kit.get("format") != FORMAT:
            raise SystemExit(f"{kit_dir / 'kit.json'}: format {self.kit.get('format')!r}, expected {FORMAT!r}")
        if cpu != (self.kit["mode"] == "cpu"):
            raise SystemExit(f"{kit_dir}: a {self.kit['mode']} kit; "
                             + ("--cpu needs a CPU mini-kit (build_kit.py --cpu-mini)" if cpu
                                else "run a CPU mini-kit with --cpu"))
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, dict] = {}
        self.extra_cuda = cuda_dirs or []
        self.env = None

    # -- set-up
    def unpack(self) -> Path:
        p = self.kit["payload"]
        payload = self.kit_dir / p["file"]
        if not payload.is_file():
            raise SystemExit(f"{payload}: missing; rebuild the kit (make gpu-kit) or carry the whole folder")
        h = hashlib.sha256()
        with open(payload, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != p["sha256"]:
            raise SystemExit(f"{payload}: sha256 {h.hexdigest()} is not the kit's {p['sha256']}; rebuild the kit")
        root = self.work / "kit"
        extract(payload, root)
        for sub in ("nets",):
            shutil.copytree(self.kit_dir / sub, self.work / sub, dirs_exist_ok=True)
        return root

    def prepare(self) -> None:
        self.root = self.unpack()
        self.caffe = self.root / "bin" / "caffe"
        self.extract = self.root / "bin" / "extract_features"
        lib = self.root / "lib"
        if self.cpu:
            self.cuda = {"found": {}, "missing": [], "dirs": [], "searched": [],
                         "note": "CPU dry run: no CUDA set"}
        else:
            self.cuda = kitlib.find_cuda(self.kit["cuda_sonames"] + ["libcuda.so.1"], self.extra_cuda)
        # The machine's own LD_LIBRARY_PATH (e.g. the driver's folder) stays, after the kit's.
        inherited = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
        dirs = [str(lib)] + self.cuda["dirs"] + [d for d in inherited if d not in self.cuda["dirs"]]
        self.env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(dirs), GLOG_logtostderr="1",
                        GLOG_minloglevel="0", OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS",
                                                                                   str(os.cpu_count() or 1)))
        self.env.pop("NVIDIA_TF32_OVERRIDE", None)
        self.env.pop("CAFFE_CUDNN_WORKSPACE_MB", None)
        self.resolution = kitlib.resolution_report(self.root, None if self.cpu else
                                                   [Path(d) for d in self.cuda["dirs"]])

    def gpu_args(self) -> list[str]:
        return [] if self.cpu else ["-gpu", "0"]

    def caffe_env(self, tf32: bool = False, workspace_mb: int | None = None) -> dict:
        env = dict(self.env)
        if not tf32:
            env["NVIDIA_TF32_OVERRIDE"] = "0"
        if workspace_mb is not None:
            env["CAFFE_CUDNN_WORKSPACE_MB"] = str(workspace_mb)
        return env

    def run(self, name: str, cmd: list[str], deadline: float, env: dict | None = None) -> dict:
        proc = Proc(cmd, self.logs / f"{name}.log", env or self.env, self.work)
        r = proc.wait(deadline)
        r["maps"] = sorted(proc.maps)
        return r

    def must(self, r: dict, what: str) -> dict:
        if r["timed_out"]:
            raise CheckFailed(f"{what}: timed out after {r['seconds']} s (log {r['log']})\n{tail(r['text'])}")
        if r["rc"] != 0:
            raise CheckFailed(f"{what}: exit {r['rc']} (log {r['log']})\n{tail(r['text'])}")
        return r

    # -- the checks
    def check_device_query(self, deadline: float) -> dict:
        out = {"library_resolution": {"problems": self.resolution["problems"],
                                      "library_path": self.resolution["library_path"]},
               "cuda_libraries": self.cuda, "glibc": {"machine": kitlib.glibc_version(),
                                                     "kit_requires": self.kit.get("glibc_required", {})}}
        out["versions"] = library_versions(self.cuda["found"]) if not self.cpu else {}
        out["wheels"] = nvidia_wheels()
        failures = []
        if self.cpu:
            r = self.run("version", [str(self.caffe), "--version"], deadline)
            out["caffe_version"] = r["text"].strip().splitlines()[-1] if r["text"].strip() else None
            out["note"] = "CPU dry run: no GPU to query"
        else:
            out["nvidia_smi"] = nvidia_smi()
            r = self.run("device_query", [str(self.caffe), "device_query", "-gpu", "0"], deadline)
            out["device_query"] = dict(re.findall(r"\]\s+([A-Z][^:]+?):\s+(.+)$", r["text"], re.M))
        if r["timed_out"] or r["rc"] != 0:
            failures.append(f"caffe {'--version' if self.cpu else 'device_query'}: "
                            f"{'timed out' if r['timed_out'] else 'exit %s' % r['rc']} (log {r['log']})\n{tail(r['text'])}")
        if self.resolution["problems"]:
            failures.append("libraries do not resolve:\n" + "\n".join(self.resolution["problems"]))
        if self.cuda["missing"]:
            failures.append("CUDA libraries not found on this machine: " + ", ".join(self.cuda["missing"])
                            + "\nsearched: " + ", ".join(self.cuda["searched"])
                            + "\nset G2S_CUDA_LIB_DIRS=DIR[:DIR] to where they are")
        if failures:
            raise CheckFailed("\n".join(failures), out)
        return out

    def _time(self, name: str, batch: int, deadline: float, env: dict, iterations: int) -> dict:
        net = self.work / self.kit["nets"]["time"][str(batch)]
        with GpuMonitor(not self.cpu) as mon:
            r = self.run(name, [str(self.caffe), "time", "-model", str(net), *self.gpu_args(),
                                f"-iterations={iterations}"], deadline, env)
        res = {"batch": batch, "log": r["log"], "seconds": r["seconds"], "memory": mon.result()}
        if r["timed_out"] or r["rc"] != 0:
            res.update(ok=False, out_of_memory="out of memory" in r["text"].lower(), tail=tail(r["text"]))
            return res
        t = parse_time_log(r["text"])
        t.pop("iteration_stamps")
        res.update(ok=True, **t, maps=r["maps"])
        return res

    def time_net(self, name: str, deadline: float, env: dict, iterations: int) -> dict:
        """Batch 128; 64 (x iter_size 2 = 128 images) when 128 does not fit."""
        cfg = self.kit["checks"]["time"]
        res = self._time(f"{name}_b{cfg['batch']}", cfg["batch"], deadline, env, iterations)
        if not res["ok"] and res.get("out_of_memory") and cfg.get("fallback_batch"):
            fb = self._time(f"{name}_b{cfg['fallback_batch']}", cfg["fallback_batch"], deadline, env, iterations)
            fb["fallback_from"] = res
            res = fb
        if not res["ok"]:
            raise CheckFailed(f"caffe time ({name}) failed (log {res['log']})\n{res.get('tail', '')}", res)
        per128 = cfg["batch"] // res["batch"]            # iter_size that keeps 128 images
        res["iter_size"] = per128
        res["images"] = res["batch"] * per128
        res["ms_per_128"] = res["forward_backward_ms"] * per128
        res["images_per_s"] = images_per_s(res["images"], res["ms_per_128"])
        return res

    def check_time_single(self, deadline: float) -> dict:
        it = self.kit["checks"]["time"]["iterations"]
        out = {}
        for label, tf32 in (("tf32_off", False), ("tf32_allowed", True)):
            out[label] = self.time_net(f"time_{label}", deadline, self.caffe_env(tf32=tf32), it)
        maps = out["tf32_off"].pop("maps", [])
        out["tf32_allowed"].pop("maps", None)
        out["loaded_by_caffe"] = [p for p in maps if kitlib.is_cuda(os.path.basename(p)) or "/kit/lib/" in p]
        a, b = out["tf32_allowed"]["images_per_s"], out["tf32_off"]["images_per_s"]
        out["tf32_speedup"] = round(a / b, 3) if a and b else None
        return out

    def check_concurrent(self, deadline: float) -> dict:
        cfg = self.kit["checks"]["concurrent"]
        single = (self.results.get("time_single", {}).get("tf32_off") or {}).get("images_per_s")
        out = {"single_job_images_per_s": single, "runs": {}}
        batch = self.kit["checks"]["time"]["batch"]
        net = self.work / self.kit["nets"]["time"][str(batch)]
        for k in cfg["jobs"]:
            if time.time() > deadline - 10:
                out["runs"][str(k)] = {"ok": False, "skipped": "out of time"}
                continue
            with GpuMonitor(not self.cpu) as mon:
                procs = [Proc([str(self.caffe), "time", "-model", str(net), *self.gpu_args(),
                               f"-iterations={cfg['iterations']}"], self.logs / f"concurrent_{k}_{j}.log",
                              self.caffe_env(), self.work) for j in range(k)]
                rs = [p.wait(deadline) for p in procs]
            bad = [r for r in rs if r["timed_out"] or r["rc"] != 0]
            if bad:
                out["runs"][str(k)] = {"ok": False, "tail": tail(bad[0]["text"]), "log": bad[0]["log"]}
                continue
            out["runs"][str(k)] = dict(aggregate(rs, batch), ok=True, memory=mon.result(),
                                       logs=[r["log"] for r in rs])
        for k, r in out["runs"].items():
            if r.get("ok") and single:
                r["speedup_vs_one_job"] = round(r["aggregate_images_per_s"] / single, 3)
        good = {k: r for k, r in out["runs"].items() if r.get("ok")}
        if not good:
            first = next(iter(out["runs"].values()), {})
            raise CheckFailed("no concurrent run finished\n" + first.get("tail", ""), out)
        return out

    def check_workspace(self, deadline: float) -> dict:
        cfg = self.kit["checks"]["workspace"]
        it = self.kit["checks"]["time"]["iterations"]
        base = self.results.get("time_single", {}).get("tf32_off")
        out = {"default_mb": 8, "default": {k: base.get(k) for k in ("images_per_s", "forward_ms", "backward_ms",
                                                                     "memory")} if base else None, "runs": {}}
        for mb in cfg["mb"]:
            res = self.time_net(f"workspace_{mb}mb", deadline, self.caffe_env(workspace_mb=mb), it)
            res.pop("maps", None)
            text = (self.logs / res["log"]).read_text(errors="replace")
            res["setting_seen"] = f"cuDNN workspace limit: {mb} MB" in text
            if not self.cpu and not res["setting_seen"]:
                raise CheckFailed(f"CAFFE_CUDNN_WORKSPACE_MB={mb} was not taken up (no 'cuDNN workspace "
                                  f"limit' line in {res['log']}): is patch 0007 in this build?", out)
            if base and base.get("images_per_s"):
                res["speedup_vs_default"] = round(res["images_per_s"] / base["images_per_s"], 3)
            out["runs"][str(mb)] = res
        if self.cpu:
            out["note"] = "CPU dry run: cuDNN is not used, the setting has no effect"
        return out

    def make_data(self) -> dict:
        d = self.kit["data"]
        lmdb = caffe_io.Lmdb(self.root / "lib" / "liblmdb.so.0")
        made = {}
        for split, count, size in (("train", d["train_images"], d["image_size"]),
                                   ("val", d["val_images"], d["image_size"]),
                                   ("grad", d["grad_images"], d["crop_size"])):
            folder = self.work / "data" / split
            shutil.rmtree(folder, ignore_errors=True)
            images, labels = synthetic_split(d, split, count, size)
            lmdb.write(folder / "a_lmdb", images)
            lmdb.write(folder / "labels_lmdb", labels)
            made[split] = count
        return made

    def check_training(self, deadline: float) -> dict:
        cfg = self.kit["checks"]["training"]
        t = time.time()
        out = {"images": self.make_data()}
        out["data_seconds"] = round(time.time() - t, 1)
        (self.work / "snap").mkdir(exist_ok=True)
        env = self.caffe_env()
        with GpuMonitor(not self.cpu) as mon:
            r1 = self.must(self.run("train", [str(self.caffe), "train", "-solver",
                                              str(self.work / self.kit["nets"]["solver_train"]), *self.gpu_args()],
                                    deadline, env), "caffe train")
        first = parse_train_log(r1["text"])
        snap = self.work / f"{cfg['snapshot_prefix']}_iter_{cfg['iterations']}"
        out["first"] = summarize_train(first)
        out["memory"] = mon.result()
        for ext in ("caffemodel", "solverstate"):
            f = snap.with_name(snap.name + f".{ext}")
            if not f.is_file():
                raise CheckFailed(f"no snapshot {f.name} after training (log {r1['log']})\n{tail(r1['text'])}", out)
            out[f"snapshot_{ext}_mb"] = round(f.stat().st_size / 2 ** 20, 1)
        r2 = self.must(self.run("resume", [str(self.caffe), "train", "-solver",
                                           str(self.work / self.kit["nets"]["solver_resume"]),
                                           f"-snapshot={snap}.solverstate", *self.gpu_args()], deadline, env),
                       "caffe train --snapshot")
        second = parse_train_log(r2["text"])
        out["resume"] = summarize_train(second)
        verdicts = training_verdicts(first, second, cfg)
        out["verdicts"] = verdicts
        final = self.work / f"{cfg['snapshot_prefix']}_iter_{cfg['resume_to']}.caffemodel"
        out["final_weights"] = final.name if final.is_file() else None
        bad = [k for k, v in verdicts.items() if v is False]
        if bad:
            raise CheckFailed("training: " + ", ".join(bad) + f" (logs {r1['log']}, {r2['log']})", out)
        return out

    def weights(self, deadline: float) -> tuple[Path, str]:
        cfg = self.kit["checks"]["training"]
        final = self.work / f"{cfg['snapshot_prefix']}_iter_{cfg['resume_to']}.caffemodel"
        if final.is_file():
            return final, f"trained ({final.name}, check 5)"
        if not (self.work / "data" / "val").is_dir():
            self.make_data()
        (self.work / "init").mkdir(exist_ok=True)
        self.must(self.run("init_weights", [str(self.caffe), "train", "-solver",
                                            str(self.work / self.kit["nets"]["solver_init"])], deadline),
                  "initial weights (caffe train, 0 iterations)")
        return self.work / "init" / "step1_iter_0.caffemodel", "initial (fillers, seed fixed): check 5 left none"

    def check_cpu_gpu(self, deadline: float) -> dict:
        cfg = self.kit["checks"]["cpu_gpu"]
        weights, origin = self.weights(deadline)
        out = {"weights": origin, "forward": {}, "sgd_step": {}}
        lmdb = caffe_io.Lmdb(self.root / "lib" / "liblmdb.so.0")
        blobs = cfg["blobs"]
        feats = {}
        modes = [("cpu", "CPU", False)] + ([] if self.cpu else [("gpu", "GPU", False), ("gpu_tf32", "GPU", True)])
        if self.cpu:
            modes.append(("cpu_again", "CPU", False))   # the dry run compares CPU with CPU
        for label, mode, tf32 in modes:
            names = ",".join(f"feat_{label}_{b}" for b in blobs)
            for b in blobs:
                shutil.rmtree(self.work / f"feat_{label}_{b}", ignore_errors=True)
            cmd = [str(self.extract), str(weights), str(self.work / self.kit["nets"]["features"]), ",".join(blobs),
                   names, "1", "lmdb", mode] + (["0"] if mode == "GPU" else [])
            self.must(self.run(f"features_{label}", cmd, deadline, self.caffe_env(tf32=tf32)), f"extract_features {label}")
            feats[label] = {b: [v for _, raw in lmdb.read(self.work / f"feat_{label}_{b}")
                                for v in caffe_io.decode_datum(raw)["float_data"]] for b in blobs}
        ref = "cpu"
        for label in feats:
            if label == ref:
                continue
            out["forward"][label] = {b: rel_diff(feats[ref][b], feats[label][b]) for b in blobs}
        # One SGD step (lr 1, no momentum/decay, no dropout, fixed crops) on each side.
        steps = {}
        for label, solver in (("cpu", "grad_solver_cpu"), ("gpu", "grad_solver_gpu")):
            prefix = self.work / "grad" / label
            prefix.parent.mkdir(exist_ok=True)
            cmd = [str(self.caffe), "train", "-solver", str(self.work / self.kit["nets"][solver]), f"-weights={weights}"]
            if label == "gpu" and not self.cpu:
                cmd += ["-gpu", "0"]
            r = self.must(self.run(f"sgd_step_{label}", cmd, deadline, self.caffe_env()), f"one SGD step ({label})")
            steps[label] = {"model": Path(str(prefix) + "_iter_1.caffemodel"),
                            "loss0": (parse_train_log(r["text"])["losses"] or [(0, None)])[0][1]}
        layers = cfg["grad_layers"]
        w0 = caffe_io.caffemodel_blobs(weights, layers)
        w = {k: caffe_io.caffemodel_blobs(v["model"], layers) for k, v in steps.items()}
        for layer in layers:
            if layer not in w0:
                raise CheckFailed(f"layer {layer} not in {weights.name}", out)
            out["sgd_step"][layer] = [step_diff(w0[layer][i], w["cpu"][layer][i], w["gpu"][layer][i])
                                      for i in range(len(w0[layer]))]
        out["loss_iteration_0"] = {k: v["loss0"] for k, v in steps.items()}
        return agreement_verdict(out, cfg)

    def check_mtcnn(self, deadline: float) -> dict:
        """`caffe time` of kit.json's MTCNN net on the GPU (as the detector builds it: Caffe's own
        convolutions, im2col + cuBLAS; and with cuDNN's) and on one CPU thread (OpenBLAS 1, as
        each of the detector's threads runs): forward ms per net for one photo."""
        cfg = self.kit["checks"]["mtcnn"]
        net = self.work / self.kit["nets"]["mtcnn_time"]
        cudnn = self.work / "mtcnn_time_cudnn.prototxt"
        # DEFAULT: cuDNN in a cuDNN build in GPU mode (Caffe's choice), Caffe's own on a CPU build
        cudnn.write_text(with_conv_engine(net.read_text(), "DEFAULT"))
        out = {"photo": cfg["photo"]}
        if self.cpu:
            out["note"] = "CPU dry run: the 'gpu' sides ran on the CPU too"
        for side, model, args, iterations in (("gpu", net, self.gpu_args(), cfg["gpu_iterations"]),
                                              ("gpu_cudnn", cudnn, self.gpu_args(), cfg["gpu_iterations"]),
                                              ("cpu", net, [], cfg["cpu_iterations"])):
            env = dict(self.caffe_env(), OPENBLAS_NUM_THREADS="1")
            r = self.must(self.run(f"mtcnn_{side}", [str(self.caffe), "time", "-model", str(model), *args,
                                                     f"-iterations={iterations}"], deadline, env),
                          f"caffe time of MTCNN's nets ({side})")
            out[side] = mtcnn_times(r["text"], cfg["parts"])
        c = out["cpu"]["forward_ms"]
        for side in ("gpu", "gpu_cudnn"):
            g = out[side]["forward_ms"]
            out[f"{side}_vs_cpu"] = round(g / c, 4) if g and c else None
        return out

    def check_schedule(self, deadline: float) -> dict:
        return schedule(self.kit["schedule"], self.results)

    # -- driver
    def execute(self, only: list[str] | None) -> None:
        caps = self.kit["caps"]
        for name in CHECKS:
            if only and name not in only:
                continue
            start = time.time()
            left = self.deadline - start
            need = caps[name]["min"]
            if left < need:
                self.results[name] = {"status": "skipped", "reason": f"out of time: {left:.0f} s left of the "
                                      f"{self.budget:.0f} s budget, the check needs >= {need} s", "seconds": 0}
                continue
            cap = min(caps[name]["cap"], left)
            print(f"[kit] {name}: up to {cap:.0f} s", flush=True)
            try:
                res = getattr(self, f"check_{name}")(start + cap)
                res = {"status": "ok", **res}
            except CheckFailed as e:
                detail = e.args[1] if len(e.args) > 1 else {}
                res = {"status": "failed", "error": str(e.args[0]), **(detail if isinstance(detail, dict) else {})}
            except Exception as e:  # a bug or an unexpected file: reported, the other checks still run
                res = {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            res["seconds"] = round(time.time() - start, 1)
            res["cap_s"] = round(cap)
            if time.time() > start + cap and res["status"] == "failed":
                res["status"] = "timeout"
            self.results[name] = res
            print(f"[kit] {name}: {res['status']} in {res['seconds']} s", flush=True)


# ---------------------------------------------------------------- helpers of the checks
def library_versions(found: dict[str, str]) -> dict:
    """Versions reported by the CUDA libraries that resolve for caffe (loaded with ctypes from
    those very files): CUDA runtime and driver, cuBLAS, cuDNN, cuRAND, NCCL."""
    out = {}

    def load(prefix):
        path = next((p for s, p in found.items() if s.startswith(prefix)), None)
        if not path:
            return None, None
        try:
            return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL), path
        except OSError as e:
            out[prefix] = {"error": str(e), "path": path}
            return None, path

    def intcall(lib, fn, *args):
        v = ctypes.c_int()
        rc = getattr(lib, fn)(*args, ctypes.byref(v))
        return v.value if rc == 0 else f"error {rc}"

    lt, _ = load("libcublasLt.so")
    del lt
    cudart, p = load("libcudart.so")
    if cudart:
        out["cuda_runtime"] = {"path": p, "version": intcall(cudart, "cudaRuntimeGetVersion"),
                               "driver_supports": intcall(cudart, "cudaDriverGetVersion")}
    cublas, p = load("libcublas.so")
    if cublas:
        out["cublas"] = {"path": p, "version": ".".join(str(intcall(cublas, "cublasGetProperty", k)) for k in (0, 1, 2))}
    cudnn, p = load("libcudnn.so")
    if cudnn:
        cudnn.cudnnGetVersion.restype = ctypes.c_size_t
        cudnn.cudnnGetCudartVersion.restype = ctypes.c_size_t
        out["cudnn"] = {"path": p, "version": cudnn.cudnnGetVersion(), "built_for_cudart": cudnn.cudnnGetCudartVersion()}
    curand, p = load("libcurand.so")
    if curand:
        out["curand"] = {"path": p, "version": intcall(curand, "curandGetVersion")}
    nccl, p = load("libnccl.so")
    if nccl:
        out["nccl"] = {"path": p, "version": intcall(nccl, "ncclGetVersion")}
    return out


def nvidia_wheels() -> dict[str, str]:
    """NVIDIA's wheels installed in the Python environments kitlib searches (name -> version)."""
    out = {}
    for site in kitlib.site_dirs():
        for info in sorted(site.glob("nvidia_*.dist-info")):
            name, _, version = info.name[: -len(".dist-info")].partition("-")
            out.setdefault(name, version)
    return out


def nvidia_smi() -> dict:
    q = "name,driver_version,memory.total,clocks.max.sm,power.limit,pci.bus_id"
    try:
        r = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader", "-i", "0"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    if r.returncode:
        return {"error": r.stderr.strip() or r.stdout.strip()}
    return dict(zip(q.split(","), [v.strip() for v in r.stdout.strip().split(",")]))


def aggregate(runs: list[dict], batch: int) -> dict:
    """Aggregate images/s of concurrent `caffe time` jobs over the window in which all of them
    were in their timed loop (glog timestamps of each iteration's end)."""
    series = []
    for r in runs:
        stamps = []
        for line in r["text"].splitlines():
            if re.search(r"Iteration: \d+ forward-backward time", line):
                t = _stamp(line)
                if t is not None:
                    stamps.append(t)
        series.append(stamps)
    if any(len(s) < 2 for s in series):
        raise CheckFailed("a concurrent job logged fewer than 2 timed iterations")
    start, end = max(s[0] for s in series), min(s[-1] for s in series)
    per_job = [images_per_s(batch, parse_time_log(r["text"])["median_iteration_ms"]) for r in runs]
    medians = [parse_time_log(r["text"])["median_iteration_ms"] or 0.0 for r in runs]
    if end - start < max(1.0, 3 * max(medians) / 1000.0):
        # Too short a common window to count in: the sum of the per-job rates, flagged.
        return {"aggregate_images_per_s": round(sum(x or 0.0 for x in per_job), 1), "per_job_images_per_s": per_job,
                "overlap_s": round(max(0.0, end - start), 2), "overlap_ok": False,
                "method": "sum of per-job median rates (the timed loops overlapped too briefly to count)"}
    done = sum(sum(1 for t in s if start < t <= end) for s in series)
    return {"aggregate_images_per_s": round(done * batch / (end - start), 1), "per_job_images_per_s": per_job,
            "overlap_s": round(end - start, 2), "overlap_ok": True,
            "method": "iterations completed by all jobs inside their common timed window"}


def synthetic_split(d: dict, split: str, count: int, size: int):
    """Raw-pixel image Datums and label Datums (same keys): attribute t is positive with
    probability prior[t] and then brightens horizontal band t of the image, darkens it if
    negative.  Around the net's mean, the pixel amplitude is chosen at build time so that the
    net's input has unit scale (the nets train from random init here)."""
    import random
    rng = random.Random(f"{d['seed']}-{split}")
    T, amp, noise = d["attributes"], d["amplitude"], d["noise"]
    mean = [int(round(m)) for m in d["mean_bgr"]]
    band = max(1, size // T)

    def table(level: int) -> bytes:   # random byte -> level + noise in [-noise, noise]
        return bytes(max(0, min(255, level + (b % (2 * noise + 1)) - noise)) for b in range(256))

    tables = {(c, s): table(mean[c] + s * amp) for c in range(3) for s in (-1, 0, 1)}
    images, labels = [], []
    for i in range(count):
        y = [1 if rng.random() < d["priors"][t] else 0 for t in range(T)]
        planes = bytearray()
        for c in range(3):
            for row in range(size):
                t = row // band
                s = 0 if t >= T else (1 if y[t] else -1)
                planes += rng.randbytes(size).translate(tables[(c, s)]) if hasattr(rng, "randbytes") \
                    else bytes(rng.getrandbits(8) for _ in range(size)).translate(tables[(c, s)])
        key = f"{i:08d}".encode()
        images.append((key, caffe_io.encode_datum(3, size, size, i, data=bytes(planes))))
        labels.append((key, caffe_io.encode_datum(T, 1, 1, i, float_data=[float(v) for v in y])))
    return images, labels


def summarize_train(p: dict) -> dict:
    losses = p["losses"]
    spi = [s for _, s in p["seconds_per_iter"]]
    tests = {}
    for name, v in p["tests"]:
        tests.setdefault(name, []).append(v)
    acc = [v[-1] for k, v in tests.items() if k.startswith("accuracy")]
    return {"first_iteration": losses[0][0] if losses else None, "last_iteration": losses[-1][0] if losses else None,
            "losses": losses, "seconds_per_iter": statistics.median(spi[1:] or spi) if spi else None,
            "test_mean_accuracy_last": round(statistics.mean(acc), 4) if acc else None,
            "test_seconds": statistics.median(p["test_seconds"]) if p["test_seconds"] else None,
            "snapshots": p["snapshots"], "resumed_from": p["resumed_from"], "finished": p["finished"]}


def training_verdicts(first: dict, second: dict, cfg: dict) -> dict:
    """Pass/fail of the training check; each entry True, False or None (not measurable)."""
    l1 = [v for _, v in first["losses"]]
    l2 = [v for _, v in second["losses"]]
    finite = all(math.isfinite(v) for v in l1 + l2)
    head = statistics.mean(l1[:2]) if len(l1) >= 2 else None
    end = statistics.mean(l1[-3:]) if len(l1) >= 3 else None
    falls = None if head is None or end is None else end < cfg["loss_ratio"] * head
    resumed_at = second["losses"][0][0] if second["losses"] else None
    continuous = None
    if l2 and head is not None and end is not None and falls:
        # Resumed from the snapshot, not from scratch: its losses stay in the lower half of
        # the fall (a restart would begin back at the first loss).
        continuous = statistics.mean(l2) < head - 0.5 * (head - end)
    return {"losses_finite": finite, "loss_falls": falls,
            "snapshot_written": bool(first["snapshots"]), "resumed_from_snapshot": second["resumed_from"] is not None,
            "resumed_at_snapshot_iteration": resumed_at == cfg["iterations"],
            "resumed_loss_continuous": continuous, "resume_finished": second["finished"],
            "loss_first_mean": head, "loss_last_mean": end}


def ulp32(x: float) -> float:
    """The spacing of float32 numbers at ``x``."""
    if x == 0.0:
        return 2.0 ** -149
    return 2.0 ** (math.frexp(x)[1] - 24)


def rel_diff(a, b) -> dict:
    """||a - b|| / ||a|| and max |a - b| / max |a| over two equally long sequences."""
    if len(a) != len(b):
        return {"relative": None, "error": f"lengths differ: {len(a)} vs {len(b)}"}
    d = [x - y for x, y in zip(a, b)]
    na = math.sqrt(_dot(a, a))
    nd = math.sqrt(_dot(d, d))
    ma = max((abs(x) for x in a), default=0.0)
    md = max((abs(x) for x in d), default=0.0)
    return {"relative": nd / na if na else (0.0 if nd == 0 else None), "max_abs": md,
            "max_abs_relative": md / ma if ma else None, "count": len(a)}


def step_diff(w0, cpu, gpu) -> dict:
    """rel_diff of one blob's SGD step on CPU (weights ``cpu`` - ``w0``) and on GPU, with the
    float32 rounding floor of that step relative to its norm."""
    step_cpu = [a - b for a, b in zip(cpu, w0)]
    d = rel_diff(step_cpu, [a - b for a, b in zip(gpu, w0)])
    # Each side stores w0 - step in float32: the step is known to one float32 ulp of w0 per
    # weight, a floor under any measured difference.
    norm = math.sqrt(_dot(step_cpu, step_cpu))
    floor = math.sqrt(math.fsum(ulp32(x) ** 2 for x in w0))
    d["rounding_floor"] = floor / norm if norm else None
    return d


def agreement_verdict(out: dict, cfg: dict) -> dict:
    """Check 6's verdict on its measurements: ``out["forward"]`` {label: {blob: rel_diff}} (label
    gpu_tf32 for information only) and ``out["sgd_step"]`` {layer: [step_diff]}; adds the worst
    values and the limits to ``out`` and returns it, or raises CheckFailed past a limit."""
    worst_fwd = max((d["relative"] for b in out["forward"].values() for d in b.values()
                     if d["relative"] is not None), default=0.0)
    fp32 = [d["relative"] for lab, b in out["forward"].items() if lab != "gpu_tf32" for d in b.values()]
    worst_grad = max((max(0.0, d["relative"] - 2 * (d["rounding_floor"] or 0.0))
                      for per in out["sgd_step"].values() for d in per if d["relative"] is not None),
                     default=0.0)
    out["worst_forward_fp32"] = max(fp32) if fp32 else None
    out["worst_forward_any"] = worst_fwd
    out["worst_sgd_step"] = worst_grad
    out["thresholds"] = {"forward_fp32": cfg["forward_tol"], "sgd_step": cfg["grad_tol"]}
    if (out["worst_forward_fp32"] or 0) > cfg["forward_tol"] or worst_grad > cfg["grad_tol"]:
        raise CheckFailed(f"CPU and GPU disagree: forward {out['worst_forward_fp32']:.3g} "
                          f"(limit {cfg['forward_tol']}), SGD step {worst_grad:.3g} (limit {cfg['grad_tol']})", out)
    return out


def schedule(s: dict, results: dict) -> dict:
    """GPU-hours of the paper's schedule (Step 1; Steps 2+3: 2T independent fine-tunes) from
    the measured seconds per iteration, 1 job per GPU and the best measured jobs per GPU."""
    train = results.get("training", {})
    t_single = results.get("time_single", {})
    conc = results.get("concurrent", {}).get("runs", {})
    sources = []
    s_train = ((train.get("first") or {}).get("seconds_per_iter") if train.get("status") == "ok" else None)
    if s_train:
        sources.append(("training (Data layers + SGD update), TF32 off", s_train))
    fb = (t_single.get("tf32_off") or {}).get("ms_per_128")
    if fb:
        sources.append(("caffe time forward+backward, TF32 off", fb / 1000.0))
    fb32 = (t_single.get("tf32_allowed") or {}).get("ms_per_128")
    if fb32:
        sources.append(("caffe time forward+backward, TF32 allowed", fb32 / 1000.0))
    if not sources:
        raise CheckFailed("no measured speed (checks 2 and 5 did not finish)")
    test_s = (train.get("first") or {}).get("test_seconds")
    per_test_forward = test_s / s["kit_test_iter"] if test_s else None   # one TEST forward of test_batch
    best_k, best_speedup = 1, 1.0
    for k, r in conc.items():
        if r.get("ok") and (r.get("speedup_vs_one_job") or 0) > best_speedup:
            best_k, best_speedup = int(k), r["speedup_vs_one_job"]
    rows = []
    for label, sec in sources:
        val1 = (s["step1_iters"] / s["test_interval"]) * s["test_iter"] * (per_test_forward or 0)
        val23 = (s["step23_iters"] / s["test_interval"]) * s["test_iter"] * (per_test_forward or 0)
        h1 = (s["step1_iters"] * sec + val1) / 3600
        h23 = s["step23_jobs"] * (s["step23_iters"] * sec + val23) / 3600
        rows.append({"speed_from": label, "seconds_per_iter": round(sec, 4),
                     "step1_gpu_h": round(h1, 1), "steps23_gpu_h": round(h23, 1),
                     "total_gpu_h_1_job_per_gpu": round(h1 + h23, 1),
                     "best_jobs_per_gpu": best_k, "aggregate_speedup": best_speedup,
                     "total_gpu_h_best_jobs_per_gpu": round(h1 + h23 / best_speedup, 1)})
    assumed = s["readme_assumed_s_per_iter"]
    readme = (s["step1_iters"] + s["step23_jobs"] * s["step23_iters"]) * assumed / 3600
    return {"rows": rows, "validation_forward_s": per_test_forward,
            "validation_note": ("validation: every test_interval iterations, test_iter forwards of batch "
                                f"{s['test_batch']}, at the per-forward time measured in check 5"
                                if per_test_forward else "validation not included (no test timing measured)"),
            "readme_assumed": {"seconds_per_iter": assumed, "total_gpu_h": round(readme, 1)},
            "assumptions": ("Steps 2/3 nets have the Step-1 trunk and a 2-way head: same cost per "
                            "iteration as Step 1 (the head is 0.01 % of the work); Step 1 runs one job; "
                            "the jobs-per-GPU speed-up (check 3, caffe time) applies to Steps 2/3 only")}


# ---------------------------------------------------------------- reports
def _fmt(v, nd=1):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}f}" if abs(v) >= 10 ** -nd or v == 0 else f"{v:.2e}"
    return str(v)


def markdown(report: dict) -> str:
    r, k = report["checks"], report["kit"]
    lines = [f"# G2S-Caffe GPU check kit report ({'CPU DRY RUN' if report['cpu_dry_run'] else 'GPU'})", "",
             f"- date: {report['finished_at']}; host: {report['host']}; wall time {report['seconds']} s "
             f"of a {report['budget_s']} s budget",
             f"- kit: {k['mode']} build {k.get('build_key', '?')[:16]}, built {k.get('built_at')}, "
             f"nvcc {k.get('nvcc') or '—'}, built against {k.get('cuda_wheels') or '—'}", "",
             "| check | status | seconds | headline |", "|---|---|---|---|"]
    order = sorted(CHECKS, key=lambda n: TITLES[n])      # by number; they run in CHECKS order
    for name in order:
        res = r.get(name, {"status": "not run"})
        lines.append(f"| {TITLES[name]} | **{res['status']}** | {res.get('seconds', '—')} | "
                     f"{headline(name, res)} |")
    for name in order:
        res = r.get(name)
        if not res:
            continue
        lines += ["", f"## {TITLES[name]}: {res['status']}", ""]
        if res["status"] != "ok":
            lines += ["```", str(res.get("error") or res.get("reason", ""))[-3000:], "```"]
        lines += detail(name, res)
    return "\n".join(lines) + "\n"


def headline(name: str, res: dict) -> str:
    try:
        if name == "device_query":
            v = res.get("versions", {})
            smi = res.get("nvidia_smi", {})
            return (f"{smi.get('name', res.get('caffe_version', ''))}, driver {smi.get('driver_version', '—')}, "
                    f"CUDA {v.get('cuda_runtime', {}).get('version', '—')}, cuDNN {v.get('cudnn', {}).get('version', '—')}, "
                    f"cuBLAS {v.get('cublas', {}).get('version', '—')}")
        if name == "time_single":
            a, b = res.get("tf32_off", {}), res.get("tf32_allowed", {})
            return (f"{_fmt(b.get('images_per_s'))} img/s (TF32 allowed), {_fmt(a.get('images_per_s'))} img/s "
                    f"(TF32 off), batch {a.get('batch', '—')}")
        if name == "concurrent":
            return ", ".join(f"{kk} jobs: {_fmt(v.get('aggregate_images_per_s'))} img/s "
                             f"(x{_fmt(v.get('speedup_vs_one_job'), 2)})" for kk, v in res.get("runs", {}).items())
        if name == "workspace":
            return ", ".join(f"{kk} MB: {_fmt(v.get('images_per_s'))} img/s (x{_fmt(v.get('speedup_vs_default'), 2)})"
                             for kk, v in res.get("runs", {}).items())
        if name == "training":
            v = res.get("verdicts", {})
            return (f"loss {_fmt(v.get('loss_first_mean'), 2)} -> {_fmt(v.get('loss_last_mean'), 2)}, "
                    f"{_fmt((res.get('first') or {}).get('seconds_per_iter'), 3)} s/iter, resume "
                    f"{'ok' if v.get('resumed_at_snapshot_iteration') else '—'}")
        if name == "cpu_gpu":
            return (f"forward rel. diff {_fmt(res.get('worst_forward_fp32'), 8)} (FP32), "
                    f"SGD step {_fmt(res.get('worst_sgd_step'), 8)}")
        if name == "mtcnn":
            g, d, c = res.get("gpu", {}), res.get("gpu_cudnn", {}), res.get("cpu", {})
            return (f"{_fmt(g.get('forward_ms'), 2)} ms per photo on the GPU (P-Net {_fmt(g.get('pnet_ms'), 2)}, "
                    f"R-Net {_fmt(g.get('rnet_ms'), 2)}, O-Net {_fmt(g.get('onet_ms'), 2)}), "
                    f"{_fmt(d.get('forward_ms'), 2)} ms with cuDNN's convolutions, "
                    f"{_fmt(c.get('forward_ms'), 1)} ms on one CPU thread (x{_fmt(res.get('gpu_vs_cpu'), 3)}, "
                    f"cuDNN x{_fmt(res.get('gpu_cudnn_vs_cpu'), 3)})")
        if name == "schedule":
            row = (res.get("rows") or [{}])[0]
            return (f"{_fmt(row.get('total_gpu_h_1_job_per_gpu'))} GPU-h at 1 job/GPU, "
                    f"{_fmt(row.get('total_gpu_h_best_jobs_per_gpu'))} at {row.get('best_jobs_per_gpu')} jobs/GPU "
                    f"(docs/benchmarks.md assumed {res.get('readme_assumed', {}).get('total_gpu_h')})")
    except (AttributeError, TypeError, KeyError, ValueError):
        pass
    return ""


def detail(name: str, res: dict) -> list[str]:
    out = []
    if name == "device_query":
        for k, v in (res.get("versions") or {}).items():
            out.append(f"- {k}: {v}")
        cuda = res.get("cuda_libraries", {})
        for s, p in (cuda.get("found") or {}).items():
            out.append(f"- {s} -> `{p}`")
        for s in cuda.get("missing") or []:
            out.append(f"- **{s}: not found**")
        out.append(f"- glibc {res.get('glibc', {}).get('machine')} (kit needs {res.get('glibc', {}).get('kit_requires')})")
        for p in (res.get("library_resolution") or {}).get("problems", []):
            out.append(f"- **{p}**")
        for k, v in (res.get("device_query") or {}).items():
            out.append(f"- {k}: {v}")
    elif name == "time_single":
        out += ["| setting | batch x iter_size | forward ms | backward ms | fwd+bwd ms / 128 | images/s | peak GPU MiB |",
                "|---|---|---|---|---|---|---|"]
        for label in ("tf32_allowed", "tf32_off"):
            t = res.get(label) or {}
            out.append(f"| {label} | {t.get('batch')} x {t.get('iter_size')} | {_fmt(t.get('forward_ms'))} | "
                       f"{_fmt(t.get('backward_ms'))} | {_fmt(t.get('ms_per_128'))} | {_fmt(t.get('images_per_s'))} | "
                       f"{_fmt((t.get('memory') or {}).get('peak_over_baseline_mib'), 0)} |")
        slow = (res.get("tf32_off") or {}).get("slowest_layers") or []
        if slow:
            out.append("")
            out.append("Slowest layers (TF32 off): " + ", ".join(
                f"{x['layer']} {_fmt(x.get('forward_ms'))}+{_fmt(x.get('backward_ms'))} ms" for x in slow))
    elif name == "concurrent":
        out += ["| jobs | aggregate images/s | vs one job | per job images/s | common window s | peak GPU MiB |",
                "|---|---|---|---|---|---|"]
        for k, v in (res.get("runs") or {}).items():
            out.append(f"| {k} | {_fmt(v.get('aggregate_images_per_s'))} | {_fmt(v.get('speedup_vs_one_job'), 3)} | "
                       f"{v.get('per_job_images_per_s')} | {v.get('overlap_s')} | "
                       f"{_fmt((v.get('memory') or {}).get('peak_over_baseline_mib'), 0)} |")
    elif name == "workspace":
        out += ["| limit MB | images/s | vs 8 MB | peak GPU MiB | setting seen in log |", "|---|---|---|---|---|"]
        d = res.get("default") or {}
        out.append(f"| 8 (default) | {_fmt(d.get('images_per_s'))} | 1 | "
                   f"{_fmt((d.get('memory') or {}).get('peak_over_baseline_mib'), 0)} | — |")
        for k, v in (res.get("runs") or {}).items():
            out.append(f"| {k} | {_fmt(v.get('images_per_s'))} | {_fmt(v.get('speedup_vs_default'), 3)} | "
                       f"{_fmt((v.get('memory') or {}).get('peak_over_baseline_mib'), 0)} | {v.get('setting_seen')} |")
    elif name == "training":
        for k, v in (res.get("verdicts") or {}).items():
            out.append(f"- {k}: {v}")
        for part in ("first", "resume"):
            p = res.get(part) or {}
            if p:
                out.append(f"- {part}: iterations {p.get('first_iteration')}..{p.get('last_iteration')}, "
                           f"{_fmt(p.get('seconds_per_iter'), 3)} s/iter, losses "
                           + ", ".join(f"{i}:{_fmt(v, 2)}" for i, v in p.get("losses", [])[:: max(1, len(p.get('losses', [])) // 12)]))
    elif name == "cpu_gpu":
        out.append(f"- weights: {res.get('weights')}")
        for lab, per in (res.get("forward") or {}).items():
            out.append(f"- forward, CPU vs {lab}: " + ", ".join(
                f"{b} {_fmt(d.get('relative'), 8)} (max {_fmt(d.get('max_abs_relative'), 8)})" for b, d in per.items()))
        for layer, per in (res.get("sgd_step") or {}).items():
            out.append(f"- SGD step {layer}: " + ", ".join(_fmt(d.get("relative"), 8) for d in per))
        out.append(f"- loss at iteration 0: {res.get('loss_iteration_0')}")
    elif name == "mtcnn":
        photo = res.get("photo") or {}
        out.append(f"- the photo: {photo.get('width')}x{photo.get('height')} px, smallest face {photo.get('min_face')} px, "
                   f"{photo.get('rnet_crops')} R-Net and {photo.get('onet_crops')} O-Net crops; {res.get('note', '')}")
        out += ["", "| net | GPU forward ms (Caffe's convolutions) | GPU, cuDNN's | one CPU thread ms |", "|---|---|---|---|"]
        g, e, c = res.get("gpu") or {}, res.get("gpu_cudnn") or {}, res.get("cpu") or {}
        for part in (g.get("by_part") or {}):
            out.append(f"| {part} | {_fmt(g['by_part'][part], 3)} | {_fmt((e.get('by_part') or {}).get(part), 3)} | "
                       f"{_fmt((c.get('by_part') or {}).get(part), 3)} |")
        out.append(f"| all (caffe time's forward pass) | {_fmt(g.get('forward_ms'), 3)} | {_fmt(e.get('forward_ms'), 3)} | "
                   f"{_fmt(c.get('forward_ms'), 3)} |")
    elif name == "schedule":
        out += ["| speed from | s/iter | Step 1 GPU-h | Steps 2+3 GPU-h | total, 1 job/GPU | best jobs/GPU | total then |",
                "|---|---|---|---|---|---|---|"]
        for row in res.get("rows") or []:
            out.append(f"| {row['speed_from']} | {row['seconds_per_iter']} | {row['step1_gpu_h']} | {row['steps23_gpu_h']} | "
                       f"{row['total_gpu_h_1_job_per_gpu']} | {row['best_jobs_per_gpu']} (x{row['aggregate_speedup']}) | "
                       f"{row['total_gpu_h_best_jobs_per_gpu']} |")
        out.append(f"- {res.get('validation_note')}")
        out.append(f"- The assumption of docs/benchmarks.md: {res.get('readme_assumed')}")
        out.append(f"- {res.get('assumptions')}")
    if res.get("traceback"):
        out += ["```", res["traceback"][-2000:], "```"]
    return out


def extract(archive: Path, root: Path) -> None:
    """Unpack a kit payload (regular files and symlinks inside it, nothing else)."""
    with tarfile.open(archive) as tf:
        if hasattr(tarfile, "tar_filter"):      # Python >= 3.12 and the security backports
            tf.extractall(root, filter="tar")
        else:
            for m in tf.getmembers():
                if m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir() or m.issym()):
                    raise SystemExit(f"{archive}: unexpected member {m.name!r}")
            tf.extractall(root)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_kit_report")),
                    help="folder for gpu_report.json, gpu_report.md and gpu_logs.tar.gz (env OUT)")
    ap.add_argument("--kit", type=Path, default=HERE, help="the kit folder (kit.json, nets/, payload)")
    ap.add_argument("--cpu", action="store_true", help="dry run of a CPU mini-kit (no GPU)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all checks (None: the kit's)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (None: a new temporary one)")
    ap.add_argument("--only", default="", help="comma-separated checks to run (default: all)")
    ap.add_argument("--cuda-lib-dir", action="append", default=[], help="extra folder with CUDA libraries")
    ap.add_argument("--keep-work", action="store_true", help="do not delete the scratch folder")
    a = ap.parse_args(argv)
    only = [c for c in a.only.split(",") if c]
    unknown = [c for c in only if c not in CHECKS]
    if unknown:
        ap.error(f"--only: unknown checks {unknown}; choose from {', '.join(CHECKS)}")
    if not (a.kit / "kit.json").is_file():
        ap.error(f"{a.kit}: no kit.json; build the kit (make gpu-kit, or build_kit.py --cpu-mini) and "
                 "carry the whole folder")
    kit = json.loads((a.kit / "kit.json").read_text())
    budget = a.budget if a.budget is not None else kit["budget_s"]
    a.out.mkdir(parents=True, exist_ok=True)
    work = a.work or Path(tempfile.mkdtemp(prefix="g2s-gpu-kit-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run = Run(a.kit, a.out, work, a.cpu, budget, a.cuda_lib_dir)
    try:
        run.prepare()
        run.execute(only)
    except SystemExit:
        raise
    except Exception as e:   # set-up failed: still write a report saying so
        run.results.setdefault("device_query", {"status": "failed", "error": f"kit set-up: {type(e).__name__}: {e}",
                                                "traceback": traceback.format_exc()})
    report = {"format": "g2s-gpu-kit-report/1", "cpu_dry_run": a.cpu, "started_at": started,
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.time() - run.t0, 1),
              "budget_s": budget, "host": os.uname().nodename,
              "kit": {k: kit.get(k) for k in ("mode", "built_at", "build_key", "nvcc", "cuda_wheels", "payload")},
              "checks": run.results}
    write_atomic(a.out / "gpu_report.json", json.dumps(report, indent=1, default=str) + "\n")
    write_atomic(a.out / "gpu_report.md", markdown(report))
    with tarfile.open(a.out / "gpu_logs.tar.gz.tmp", "w:gz") as tf:
        tf.add(run.logs, arcname="logs")
    os.replace(a.out / "gpu_logs.tar.gz.tmp", a.out / "gpu_logs.tar.gz")
    if not a.keep_work and a.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown(report).split("\n## ")[0])
    print(f"[kit] reports: {a.out / 'gpu_report.json'}, {a.out / 'gpu_report.md'}, {a.out / 'gpu_logs.tar.gz'}")
    bad = [n for n, r in run.results.items() if r["status"] != "ok"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
