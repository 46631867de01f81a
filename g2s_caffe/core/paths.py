"""Where machine-local artefacts live (never in git): the per-machine cache."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$G2S_CACHE``, else ``$XDG_CACHE_HOME/g2s-caffe``, else ``~/.cache/g2s-caffe``.

    The Caffe build (tools/caffe/build_caffe.py) uses the same default root.
    """
    env = os.environ.get("G2S_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "g2s-caffe"


def assets_dir() -> Path:
    """Converted/extracted registry assets (MTCNN caffemodels, demo source photos)."""
    d = cache_dir() / "assets"
    d.mkdir(parents=True, exist_ok=True)
    return d


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
