"""What a manifest records about where and when something ran."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from g2s_caffe.core.paths import repo_root


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except OSError:
        return None


def caffe_info() -> dict:
    """The Caffe build a run uses: version, install prefix, and the build's BUILD_INFO.json."""
    import caffe

    prefix_file = Path(sys.executable).parent.parent / "caffe-prefix"
    prefix = prefix_file.read_text().strip() if prefix_file.is_file() else str(Path(caffe.__file__).parent)
    info_path = Path(prefix) / "BUILD_INFO.json"
    build = json.loads(info_path.read_text()) if info_path.is_file() else None
    return {"version": getattr(caffe, "__version__", "1.0.0"), "prefix": prefix, "build_info": build}
