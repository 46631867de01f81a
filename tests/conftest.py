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
