"""Where reviewers run it, run by a real Docker engine (tests/dockerd_fixture.py):

1. the fresh-machine lane: docker/Dockerfile.cpu is a stock debian:12-slim given only the
   README's prerequisites (git, make) that runs the README's `make setup`; inside it, the stock
   python3, `g2s --help`, `g2s gen` and the engine's real-Caffe training tests;
2. the CPU image's demo through compose (`--profile cpu run --rm demo`, a short variant),
   writing demo_output/ as the host user given in G2S_UID/G2S_GID;
3. the reviewer's chain (prep -> gen -> train -> eval -> compare) and the baseline's services
   on the CPU image (docker/compose.cpu.yaml), a rerun that retrains nothing, and a failing
   stage that stops the chain with its one-line error.

Every container and build step uses the host's network (docker/compose.host-network.yaml);
the session fixture checks at the end that no other network was ever created.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import ROOT

sys.path.insert(0, str(ROOT / "tools" / "dockerd"))
from local_dockerd import compose_binary  # noqa: E402

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOCKER = ROOT / "docker"

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")          # this machine's proxy CA is in it
IMAGE = "g2s-caffe:cpu"
USER = 4321            # a host user that is neither root nor the image's build-time user
QUICK_IMAGES = 300


def compose(engine, *args: str, files=("compose.yaml", "compose.host-network.yaml"), env: dict | None = None,
            timeout: float = 1800) -> subprocess.CompletedProcess:
    e = {k: v for k, v in engine.env().items() if not k.startswith(("G2S_", "DATASET"))}
    if HOST_CA.is_file():
        e["G2S_PIP_CA"] = str(HOST_CA)
    e.update(env or {})
    cmd = [compose_binary()]
    for f in files:
        cmd += ["-f", str(f if Path(f).is_absolute() else DOCKER / f)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=e, timeout=timeout)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"exit {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def build(engine, service: str, image: str, *profile: str, env: dict | None = None) -> None:
    """`compose build SERVICE`, timed; the image must exist afterwards (the old tag is removed
    first, so that an earlier build cannot pass for this one)."""
    engine.docker("image", "rm", image, check=False)       # its layers stay cached
    t0 = time.monotonic()
    r = compose(engine, *profile, "--progress", "plain", "build", service, env=env, timeout=4 * 3600)
    out = (r.stdout + r.stderr)[-6000:]
    assert r.returncode == 0 and engine.has_image(image), f"{image} was not built:\n{out}"
    print(f"\n[docker] {image} built in {time.monotonic() - t0:.0f} s")


def owned_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, USER, USER)
    return path


def sha256s(root: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob(pattern))}


# ------------------------------------------------------------------ 1. the fresh machine
@pytest.fixture(scope="module")
def cpu_image(docker_engine):
    build(docker_engine, "demo", IMAGE, "--profile", "cpu")
    return docker_engine


def run_in_image(engine, *cmd: str, user: str = f"{USER}:{USER}", timeout: float = 900):
    return engine.docker("run", "--rm", "--network", "host", "--user", user, "--entrypoint", cmd[0], IMAGE,
                         *cmd[1:], check=False, timeout=timeout)


def test_fresh_debian_12_runs_the_readme_setup(cpu_image):
    engine = cpu_image
    # The image starts from the stock base with only the README's prerequisites added.
    text = (DOCKER / "Dockerfile.cpu").read_text()
    readme = (ROOT / "README.md").read_text()
    prereq = re.search(r"apt-get install -y ([\w .-]+?)\s*(?:#|`|\n)", readme).group(1).split()
    assert f"apt-get install -y {' '.join(prereq)} &&" in text
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M) and "ARG BASE_IMAGE=debian:12-slim" in text
    # Debian's own python3 built the venv and Caffe (not a newer one from elsewhere).
    r = run_in_image(engine, "sh", "-c", "/usr/bin/python3 --version; /opt/g2s/.venv/bin/python --version; "
                     "cat $(cat /opt/g2s/.venv/caffe-prefix)/BUILD_INFO.json")
    assert r.returncode == 0, r.stderr
    versions = re.findall(r"Python (\S+)", r.stdout)
    assert versions[0] == versions[1] and versions[0].startswith("3.11."), r.stdout
    assert f'"python": "{versions[0]}"' in r.stdout


def test_fresh_image_runs_g2s_help_and_gen(cpu_image):
    engine = cpu_image
    r = run_in_image(engine, "g2s", "--help")
    assert r.returncode == 0 and "demo" in r.stdout and "train" in r.stdout, r.stderr
    r = run_in_image(engine, "sh", "-c", "cd /tmp && g2s gen --dataset celeba --variant small --out /tmp/nets "
                     "&& ls -R /tmp/nets | head -50")
    assert r.returncode == 0, r.stderr
    assert "train_val.prototxt" in r.stdout and "solver.prototxt" in r.stdout


def test_fresh_image_trains_with_real_caffe(cpu_image):
    """The engine tests (tiny nets: caffe train, snapshots, resume, pycaffe) inside the image."""
    engine = cpu_image
    r = run_in_image(engine, "sh", "-c", "cd /opt/g2s && CI=true python -m pytest -q -p no:cacheprovider "
                     "tests/core/test_engine.py", timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", r.stdout) and " failed" not in r.stdout


# ------------------------------------------------------------------ 2. the demo
def test_compose_demo_writes_demo_output_as_the_host_user(cpu_image, tmp_path):
    engine = cpu_image
    out = owned_dir(tmp_path / "demo_output")
    env = {"G2S_DEMO_OUTPUT": str(out), "G2S_UID": str(USER), "G2S_GID": str(USER)}
    r = ok(compose(engine, "--profile", "cpu", "run", "--rm", "demo", "demo", "--quick", env=env))
    assert (out / "report.md").is_file() and (out / "table1_demo.csv").is_file(), r.stdout[-2000:]
    wrong = [p for p in [out, *out.rglob("*")] if (p.lstat().st_uid, p.lstat().st_gid) != (USER, USER)]
    assert not wrong, f"not owned by {USER}:{USER}: {wrong[:5]}"


def test_compose_demo_into_a_folder_the_user_cannot_write_says_so(cpu_image, tmp_path):
    engine = cpu_image
    out = tmp_path / "root_owned"
    out.mkdir()
    out.chmod(0o755)
    env = {"G2S_DEMO_OUTPUT": str(out), "G2S_UID": str(USER), "G2S_GID": str(USER)}
    r = compose(engine, "--profile", "cpu", "run", "--rm", "demo", "demo", "--quick", env=env)
    assert r.returncode != 0
    errors = [ln for ln in (r.stdout + r.stderr).splitlines() if "error" in ln.lower()]
    assert any("not writable" in ln and "G2S_UID" in ln for ln in errors), r.stdout[-1500:] + r.stderr[-1500:]
    assert "Traceback" not in r.stdout + r.stderr


# ------------------------------------------------------------------ 3. the reviewer's chain
CPU_FILES = ("compose.yaml", "compose.cpu.yaml", "compose.host-network.yaml")


@pytest.fixture(scope="module")
def reviewer_dirs(cpu_image, tmp_path_factory):
    """data/celeba (the demo generator's raw CelebA layout), empty weights/, work/, runs/."""
    from data_prep import demo_data

    root = tmp_path_factory.mktemp("reviewer")
    demo_data.generate(root / "data" / "celeba", demo_data.DEFAULT_SEED, QUICK_IMAGES)
    (root / "weights").mkdir()
    dirs = {"G2S_DATA": root / "data", "G2S_WEIGHTS": root / "weights",
            "G2S_WORK": owned_dir(root / "work"), "G2S_RUNS": owned_dir(root / "runs")}
    env = {k: str(v) for k, v in dirs.items()} | {"G2S_UID": str(USER), "G2S_GID": str(USER), "G2S_WORKERS": "2"}
    return cpu_image, root, env


@pytest.fixture(scope="module")
def chain(reviewer_dirs):
    engine, root, env = reviewer_dirs
    t0 = time.monotonic()
    r = ok(compose(engine, "up", "--attach-dependencies", "compare", files=CPU_FILES, env=env, timeout=3600))
    print(f"\n[docker] chain up compare: {time.monotonic() - t0:.0f} s")
    return engine, root, env, r


def test_up_compare_runs_the_whole_chain_on_the_cpu_image(chain):
    engine, root, env, r = chain
    runs = root / "runs" / "celeba"
    out = r.stdout + r.stderr
    for service in ("prep", "gen", "train", "eval", "compare"):
        assert re.search(rf"^{service}-1\s+\|", out, re.M), f"no output from {service}:\n{out[-3000:]}"
    assert (root / "work" / "celeba" / "manifest.json").is_file()
    assert (root / "work" / "nets").is_dir()
    assert (runs / "eval_test.csv").is_file()
    compare = runs / "compare"
    assert compare.is_dir() and any(compare.glob("*.md")) and any(compare.glob("*.csv"))
    assert sha256s(runs, "*.caffemodel"), "no trained weights in runs/"


def test_rerun_retrains_nothing(chain):
    engine, root, env, _ = chain
    runs = root / "runs" / "celeba"
    before = sha256s(runs, "*.caffemodel") | sha256s(root / "work", "*.mdb")
    t0 = time.monotonic()
    ok(compose(engine, "up", "--attach-dependencies", "compare", files=CPU_FILES, env=env))
    print(f"\n[docker] chain rerun: {time.monotonic() - t0:.0f} s")
    after = sha256s(runs, "*.caffemodel") | sha256s(root / "work", "*.mdb")
    assert before == after


def test_baseline_services_on_the_cpu_image(chain):
    engine, root, env, _ = chain
    runs = root / "runs" / "celeba"
    ok(compose(engine, "run", "--rm", "anet", files=CPU_FILES, env=env))
    ok(compose(engine, "run", "--rm", "lnets-anet", files=CPU_FILES, env=env))      # lnets first
    ok(compose(engine, "run", "--rm", "--no-deps", "localize", files=CPU_FILES, env=env))
    for run in ("anet_prep_boxes", "lnets", "lnets_anet"):
        assert sha256s(runs / run, "*.caffemodel"), f"{run}: no trained weights"
    assert (runs / "lnets" / "localize" / "celeba_test" / "summary.json").is_file()


def test_a_failing_stage_stops_the_chain_with_its_error(reviewer_dirs, tmp_path):
    """train without --weights-a none looks for the reviewer's VGG-Face file, absent here."""
    engine, root, env = reviewer_dirs
    fail = tmp_path / "train-needs-vgg-face.yaml"
    fail.write_text("services:\n  train:\n    environment:\n      G2S_ARGS: --variant small\n")
    env = env | {"G2S_RUNS": str(owned_dir(tmp_path / "runs"))}
    r = compose(engine, "up", "--attach-dependencies", "compare", files=(*CPU_FILES, fail), env=env)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    errors = [ln for ln in out.splitlines() if re.match(r"^train-1\s+\|.*error", ln)]
    assert len(errors) == 1 and "VGG_FACE.caffemodel" in errors[0], out[-3000:]
    assert "Traceback" not in out
    assert re.search(r"train.*(didn't|did not) complete successfully", out), out[-2000:]
    assert not re.search(r"^(eval|compare)-1\s+\|", out, re.M), "stages after the failed one ran"
    assert not (tmp_path / "runs" / "celeba" / "eval_test.csv").exists()



def test_no_network_but_host_and_none_was_created(docker_engine):
    """After the builds and the chain: every container and build step used the host's network."""
    from dockerd_fixture import networks

    assert networks(docker_engine) == {"host", "none"}


# ------------------------------------------------------------------ 4. the CUDA image (opt-in)
CUDA_IMAGE = "g2s-caffe:cuda-sm90"


@pytest.mark.skipif(os.environ.get("G2S_TEST_CUDA_IMAGE") != "1",
                    reason="the CUDA image build is opt-in (G2S_TEST_CUDA_IMAGE=1; ~1 h on 2 cores for sm_90)")
def test_cuda_image_builds_from_debian_and_links_what_it_was_built_with(docker_engine):
    """docker/Dockerfile from the stock debian:12-slim (CUDA 11.8, cuDNN, NCCL), sm_90 only; no
    GPU here: the libraries resolve, pycaffe imports, and a GPU asked for is one clear line."""
    build(docker_engine, "train", CUDA_IMAGE, env={"CUDA_ARCHS": "90", "G2S_IMAGE": CUDA_IMAGE})

    def inside(script: str):
        return docker_engine.docker("run", "--rm", "--network", "host", "--user", f"{USER}:{USER}",
                                    "--entrypoint", "bash", CUDA_IMAGE, "-c", script, check=False, timeout=600)

    r = inside('lib=$(ls $(cat /opt/g2s/.venv/caffe-prefix)/lib/libcaffe.so.*); readelf -d "$lib" | grep NEEDED; '
               'ldd "$lib"; cat /etc/g2s-cuda.env; nvcc --version | tail -1')
    assert r.returncode == 0, r.stderr
    needed = " ".join(re.findall(r"\[(lib[^\]]+)\]", r.stdout))
    for lib in ("libcudart.so.11.0", "libcublas.so.11", "libcurand.so.10", "libcudnn.so.8", "libnccl.so.2"):
        assert lib in needed, f"libcaffe does not link {lib}: {needed}"
        assert re.search(rf"^\s*{re.escape(lib)} => /\S+", r.stdout, re.M), f"{lib} does not resolve:\n{r.stdout}"
    assert "not found" not in r.stdout and "cuda_11.8" in r.stdout
    r = inside("python -c 'import caffe; print(caffe.__version__)' && caffe --version")
    assert r.returncode == 0 and "1.0.0" in r.stdout, r.stdout + r.stderr
    r = inside("mkdir -p /tmp/runs && g2s eval --runs /tmp/runs --gpu 0")
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "--gpu 0: no NVIDIA driver here" in err[0], r.stderr
    r = inside("caffe device_query -gpu 0")         # Caffe's own CUDA call fails too (glog, exit != 0)
    assert r.returncode != 0
