"""Choosing CPU or a GPU for pycaffe inference (g2s eval / g2s predict)."""
from __future__ import annotations

import ctypes
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


def visible_gpus() -> tuple[int, str]:
    """(GPUs the CUDA driver sees, why none when 0), asked of the driver itself (libcuda), so
    that a missing GPU is one clear line and not a Caffe abort with a stack trace."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no NVIDIA driver here (libcuda.so.1 not found)"
    rc = cuda.cuInit(0)
    if rc != 0:
        name = ctypes.c_char_p()
        cuda.cuGetErrorName(rc, ctypes.byref(name))
        return 0, f"the NVIDIA driver sees no usable GPU (cuInit: {(name.value or b'error %d' % rc).decode()})"
    n = ctypes.c_int(0)
    cuda.cuDeviceGetCount(ctypes.byref(n))
    return n.value, "" if n.value else "the NVIDIA driver sees no GPU"


def require_gpus(ids, option: str) -> None:
    """G2SError (one line) unless every GPU id in ``ids`` is visible."""
    n, why = visible_gpus()
    if any(i >= n for i in ids):
        raise G2SError(f"{option} {','.join(map(str, ids))}: {why or f'only {n} GPU(s) visible'}; in a "
                       "container, give it the GPUs (NVIDIA Container Toolkit: compose's GPU reservation, "
                       "docker run --gpus), or leave the option out to run on the CPU")


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
    require_gpus([gpu], "--gpu")
    caffe.set_mode_gpu()
    caffe.set_device(gpu)
    return f"GPU {gpu}"
