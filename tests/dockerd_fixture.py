"""The session's Docker engine (tools/dockerd/local_dockerd.py), for tests marked `docker`.

It installs nothing: `make test` installed Debian's docker.io and mmdebstrap
(tools/test-packages.txt).  It starts one dockerd for the whole session, its layers under the
project's cache (kept between runs, so a rerun with nothing changed builds nothing), makes the
stock debian:12-slim base image if the engine lacks it, and at the end stops dockerd by its PID
and checks that nothing of it is left and that no network but `host` and `none` ever existed.
Outside CI it skips, saying why, when the engine cannot run here; with CI=true it must run.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools" / "dockerd"))
from local_dockerd import DockerdError, LocalDockerd  # noqa: E402

from g2s_caffe.core.paths import cache_dir  # noqa: E402


def networks(engine: LocalDockerd) -> set[str]:
    return set(engine.docker("network", "ls", "--format", "{{.Name}}").stdout.split())


@pytest.fixture(scope="session")
def docker_engine():
    engine = LocalDockerd(cache_dir())
    try:
        engine.start()
        t0 = time.monotonic()
        made = engine.ensure_base_image()
    except DockerdError as e:
        engine.stop()
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the test Docker engine cannot run: {e}")
        pytest.skip(f"no test Docker engine: {e}")
    print(f"\n[dockerd] ready in {engine.started_s:.1f} s"
          + (f"; debian:12-slim made in {time.monotonic() - t0:.0f} s" if made else ""))
    yield engine
    nets = networks(engine)
    engine.stop()
    assert engine.proc.poll() is not None, f"dockerd (pid {engine.proc.pid}) still running"
    assert not engine._leftovers(), "processes of the test engine left running"
    assert nets == {"host", "none"}, f"networks other than host and none were created: {sorted(nets)}"
