"""The Caffe build script's cache logic: same key -> no rebuild; any input change -> new key.

These test the key computation and the decision to build, not a 4-minute build (the real
build is exercised by `make setup`, which every test run goes through).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from support import ROOT
SCRIPT = ROOT / "tools" / "caffe" / "build_caffe.py"


@pytest.fixture(scope="module")
def bc():
    spec = importlib.util.spec_from_file_location("build_caffe", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_caffe"] = mod
    spec.loader.exec_module(mod)
    return mod


ABI = {"python": "3.11.2", "numpy": "1.26.4", "soabi": "cpython-311-x86_64-linux-gnu"}


@pytest.fixture()
def patch_dir(tmp_path, bc):
    d = tmp_path / "patches"
    shutil.copytree(bc.PATCH_DIR, d)
    return d


def _key(bc, patch_dir, flags=None, abi=ABI, sources=None):
    patches = bc.read_series(patch_dir)
    return bc.build_key(sources or bc.SOURCE_FILES, patches, flags or bc.variant_flags("cpu"), abi, "gcc 12")[0]


def test_key_is_stable(bc, patch_dir):
    assert _key(bc, patch_dir) == _key(bc, patch_dir)


def test_changed_patch_changes_key(bc, patch_dir):
    before = _key(bc, patch_dir)
    first = bc.read_series(patch_dir)[0]
    first.write_text(first.read_text() + "\n")
    assert _key(bc, patch_dir) != before


def test_flags_numpy_and_sources_are_part_of_the_key(bc, patch_dir):
    base = _key(bc, patch_dir)
    assert _key(bc, patch_dir, flags=bc.variant_flags("cuda")) != base
    assert _key(bc, patch_dir, flags=bc.variant_flags("cpu", extra={"USE_LEVELDB": "OFF"})) != base
    assert _key(bc, patch_dir, abi=dict(ABI, numpy="2.0.0")) != base
    other = dict(bc.SOURCE_FILES)
    other[next(iter(other))] = "0" * 64
    assert _key(bc, patch_dir, sources=other) != base


def test_flag_order_does_not_matter(bc, patch_dir):
    flags = bc.variant_flags("cpu")
    rev = dict(reversed(list(flags.items())))
    assert _key(bc, patch_dir, flags=flags) == _key(bc, patch_dir, flags=rev)


def test_series_must_list_every_patch(bc, patch_dir):
    (patch_dir / "9999-stray.patch").write_text("--- a/x\n+++ b/x\n")
    with pytest.raises(bc.BuildError, match="not listed"):
        bc.read_series(patch_dir)


def test_series_entry_must_exist(bc, patch_dir):
    with open(patch_dir / "series", "a") as f:
        f.write("missing.patch\n")
    with pytest.raises(bc.BuildError, match=r"series:\d+: patch 'missing.patch' does not exist"):
        bc.read_series(patch_dir)


def test_committed_patches_have_a_reason(bc):
    for p in bc.read_series(bc.PATCH_DIR):
        head = p.read_text().split("\n---", 1)[0]
        assert "Subject:" in head and "Why:" in head, f"{p.name}: needs Subject/Why header"


def test_cuda_flags(bc):
    f = bc.variant_flags("cuda", cuda_archs="70,75 80", cudnn=False)
    assert f["CPU_ONLY"] == "OFF" and f["CUDA_ARCH_NAME"] == "Manual"
    assert f["CUDA_ARCH_BIN"] == "70 75 80" and f["CUDA_ARCH_PTX"] == "80" and f["USE_CUDNN"] == "OFF"
    with pytest.raises(bc.BuildError):
        bc.variant_flags("cuda", cuda_archs="sm_70")


def _run_main(bc, monkeypatch, cache, calls):
    monkeypatch.setattr(bc, "fetch_sources", lambda c, m: calls.append("fetch") or {})

    def fake_build(cache_, key, record, files, patches, flags, python, jobs):
        calls.append("build")
        prefix = cache_ / f"caffe-{key[:16]}"
        prefix.mkdir(parents=True)
        (prefix / "BUILD_INFO.json").write_text(json.dumps(record))
        return prefix

    monkeypatch.setattr(bc, "build", fake_build)
    return bc.main(["--cache", str(cache), "--python", sys.executable])


def test_same_key_does_not_rebuild_changed_patch_does(bc, monkeypatch, tmp_path, patch_dir):
    monkeypatch.setattr(bc, "PATCH_DIR", patch_dir)
    cache, calls = tmp_path / "cache", []
    assert _run_main(bc, monkeypatch, cache, calls) == 0
    assert calls == ["fetch", "build"]
    assert _run_main(bc, monkeypatch, cache, calls) == 0
    assert calls == ["fetch", "build"], "a cached key must not rebuild"
    p = bc.read_series(patch_dir)[-1]
    p.write_text(p.read_text().replace("Why:", "Why (edited):", 1))
    assert _run_main(bc, monkeypatch, cache, calls) == 0
    assert calls == ["fetch", "build", "fetch", "build"]
    assert len(list(cache.glob("caffe-*"))) == 2


def test_incomplete_prefix_is_not_a_cache_hit(bc, monkeypatch, tmp_path, patch_dir):
    """A prefix without BUILD_INFO.json (never published) does not count as built."""
    monkeypatch.setattr(bc, "PATCH_DIR", patch_dir)
    cache = tmp_path / "cache"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bc.main(["--cache", str(cache), "--python", sys.executable, "--print-key"])
    prefix = Path(json.loads(out.getvalue())["prefix"])
    prefix.mkdir(parents=True)
    calls = []
    monkeypatch.setattr(bc, "fetch_sources", lambda c, m: calls.append("fetch") or {})
    monkeypatch.setattr(bc, "build", lambda *a: calls.append("build") or prefix)
    assert bc.main(["--cache", str(cache), "--python", sys.executable]) == 0
    assert calls == ["fetch", "build"]


def test_sha_mismatch_is_an_error(bc, tmp_path, monkeypatch):
    """A download whose sha256 differs is refused, never used."""
    dl = tmp_path / "downloads"
    dl.mkdir()
    for name in bc.SOURCE_FILES:
        (dl / name).write_bytes(b"not the real tarball")

    def fake_run(cmd, cwd=None, capture_output=None, text=None):
        class R:
            returncode = 0
            stdout = stderr = ""
        if "source" in cmd:
            for name in bc.SOURCE_FILES:
                (Path(cwd) / name).write_bytes(b"tampered")
        return R()

    import debian_apt   # tools/debian_apt.py, which build_caffe.py runs apt through

    monkeypatch.setattr(debian_apt.subprocess, "run", fake_run)
    with pytest.raises(bc.BuildError, match="does not match the pinned"):
        bc.fetch_sources(tmp_path, "http://deb.debian.org/debian")


def test_cuda_key_includes_nvcc_cpu_key_does_not(bc, patch_dir):
    """A CUDA build's key changes with the CUDA compiler; a CPU build records none."""
    patches = bc.read_series(patch_dir)
    cuda = bc.variant_flags("cuda")
    k1 = bc.build_key(bc.SOURCE_FILES, patches, cuda, ABI, "gcc 12", "Build cuda_13.0.r13.0")[0]
    k2 = bc.build_key(bc.SOURCE_FILES, patches, cuda, ABI, "gcc 12", "Build cuda_12.9.r12.9")[0]
    assert k1 != k2
    assert bc.nvcc_version(bc.variant_flags("cpu")) is None
    assert "nvcc" not in bc.build_key(bc.SOURCE_FILES, patches, bc.variant_flags("cpu"), ABI, "gcc 12")[1]


def test_kit_flags_skip_pycaffe_check_and_add_the_toolkit_libraries(bc, tmp_path):
    flags = bc.variant_flags("cuda", extra={"CUDA_TOOLKIT_ROOT_DIR": str(tmp_path / "cuda"), "BUILD_python": "OFF"})
    path = bc.runtime_library_path(tmp_path / "prefix", flags).split(":")
    assert path[:2] == [str(tmp_path / "prefix" / "lib"), str(tmp_path / "cuda" / "lib64")]
    assert bc.build_env(flags)["NCCL_DIR"] == str(tmp_path / "cuda")
    assert bc.runtime_library_path(tmp_path / "p", bc.variant_flags("cpu")).split(":")[0] == str(tmp_path / "p" / "lib")
