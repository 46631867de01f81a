"""Choosing CPU or a GPU for pycaffe inference (g2s eval / g2s predict)."""
from __future__ import annotations

import json
from pathlib import Path

from g2s_caffe.core.errors import G2SError


def caffe_build_info() -> dict:
    """BUILD_INFO.json of the Caffe build pycaffe comes from ({} if unknown)."""
    import caffe

    # <prefix>/lib/python3/dist-packages/caffe/__init__.py -> <prefix>
    prefix = Path(caffe.__file__).resolve().parents[4]
    try:
        return json.loads((prefix / "BUILD_INFO.json").read_text())
    except (OSError, ValueError):
        return {}


def select_device(gpu: int | None) -> str:
    """CPU when gpu is None, else GPU `gpu`; a CPU-only build refuses a GPU up front
    (Caffe would abort the process on the first net otherwise)."""
    import caffe

    if gpu is None:
        caffe.set_mode_cpu()
        return "CPU"
    flags = caffe_build_info().get("cmake_flags", {})
    if flags.get("CPU_ONLY") == "ON":
        raise G2SError(f"--gpu {gpu}: this Caffe is a CPU-only build; use the CUDA image "
                       "(docker/Dockerfile) or build with tools/caffe/build_caffe.py --variant cuda")
    if gpu < 0:
        raise G2SError(f"--gpu {gpu}: expected a GPU id >= 0")
    caffe.set_mode_gpu()
    caffe.set_device(gpu)
    return f"GPU {gpu}"
