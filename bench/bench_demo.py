"""The quick demo's wall time (`g2s demo --quick`: generate -> prep -> gen -> train -> ANet ->
LNets -> localize -> eval -> report), and a rerun's against it.

The test suite proves what a rerun does (tests/test_demo.py: every stage reused, no file
rewritten but the report); how long either takes is measured here, not asserted there.  Prints
the seconds of the first run and of the rerun, each stage's seconds (the demo's own stamps), and
RATIO = rerun / first run (the rerun loads the results and redraws the report only).

    .venv/bin/python bench/bench_demo.py [--out DIR]      (~7 min on 2 idle cores)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def demo(out: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "g2s_caffe.cli", "demo", "--quick", "--out", str(out)], cwd=ROOT,
                       env={**os.environ, "GLOG_minloglevel": "2"}, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"g2s demo --quick failed (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="demo output folder (default: a temporary one, removed)")
    a = ap.parse_args(argv)
    tmp = None if a.out else Path(tempfile.mkdtemp(prefix="bench_demo_"))
    out = a.out or tmp / "demo_output"
    try:
        first = demo(out)
        again = demo(out)
        from g2s_caffe.demo import STAGES

        print("g2s demo --quick")
        for stamp in sorted((out / STAGES).glob("*.json")):
            print(f"  stage {stamp.stem:12s}: {json.loads(stamp.read_text())['seconds']:8.1f} s")
        print(f"  first run                : {first:8.1f} s")
        print(f"  rerun (everything reused): {again:8.1f} s")
        print(f"  RATIO rerun / first run  : {again / first:8.3f}")
        print("(one run on a shared machine: noisy; compare the RATIO, not the absolute times)")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
