"""Test-wide settings.  In CI (CI=true) the Caffe tests must run: a failing
`import caffe` is an error there, never a silent skip."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).parent))
pytest_plugins = ["dockerd_fixture"]

ROOT = Path(__file__).resolve().parent.parent


def _caffe_available() -> tuple[bool, str]:
    try:
        import caffe  # noqa: F401
        return True, ""
    except Exception as e:  # ImportError or a broken shared library
        return False, f"{type(e).__name__}: {e}"


CAFFE_OK, CAFFE_WHY = _caffe_available()


def pytest_report_header(config):
    """What this run will skip and why, before it starts (docs/testing.md); each skip's reason is
    listed again at the end (-rs)."""
    ci = os.environ.get("CI") == "true"
    if CAFFE_OK:
        caffe = "caffe: importable; the tests marked caffe run"
    elif ci:
        caffe = f"caffe: NOT importable ({CAFFE_WHY}): an error with CI=true"
    else:
        caffe = f"caffe: NOT importable ({CAFFE_WHY}): the tests marked caffe are skipped; run `make setup`"
    return [caffe, "CI=true: nothing may skip for a missing Caffe or Slurm" if ci else
            "CI is not 'true': a test whose tool is missing here (Slurm, docker, a built CUDA kit) skips, saying why"]


def pytest_collection_modifyitems(config, items):
    if CAFFE_OK:
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(f"CI=true but `import caffe` fails ({CAFFE_WHY}); run `make setup`")
    skip = pytest.mark.skip(reason=f"Caffe not importable ({CAFFE_WHY}); run `make setup`")
    for item in items:
        if "caffe" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
