"""Data-layer overhead of `caffe train` on the Step-1 net, and the schedule's cost on paper.

  .venv/bin/python bench/bench_train.py [--iters 30] [--full-iters 3] [--sec-per-iter 0.5]

1. Small variant (CPU): iterations/s of the real `caffe train` reading the two LMDBs (JPEG
   decode, crop, mirror) vs `caffe time` on the same net with the Data layers replaced by
   Input layers (no data).  RATIO = train s/iter / time s/iter; overhead = RATIO - 1 (goal
   <= 5 %).  `caffe train` also pays the SGD update, which `caffe time` does not, so the
   figure is an upper bound on the data layers' share.
2. Full VGG-16 (240 -> 224) at a small batch, briefly (same comparison).
3. GPU-hours of the paper's schedule (120k Step-1 + 2T x 40k Step-2/3 iterations at batch
   128) at an assumed/measured seconds per iteration, with K jobs sharing a GPU.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("GLOG_minloglevel", "2")


def caffe(*args, cwd) -> str:
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    r = subprocess.run([str(Path(sys.executable).parent / "caffe"), *args], cwd=cwd, env=env,
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    return r.stderr


def measure(tmp: Path, net_shape, batch: int, iters: int, size: int, label: str) -> float:
    import caffe as _c  # noqa: F401
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from g2s_caffe import params as hp
    from g2s_caffe.attributes import default_attributes
    from g2s_caffe.gen import generate_tree
    from g2s_caffe.nets import with_inputs
    from support import make_tiny_prepared

    attrs = default_attributes("celeba")
    data = make_tiny_prepared(tmp / f"data{size}", attrs.names, counts={"train": 64, "val": 8}, size=size)
    solver = hp.SolverSettings(batch_size=batch, test_batch_size=batch, max_iter_step1=iters,
                               max_iter_step23=1, test_interval=10 ** 6, snapshot=10 ** 6, solver_mode="CPU")
    generate_tree(attrs, tmp / f"nets{size}", "celeba", net_shape, solver, str(data), "bench", monitor_size=8)
    d = tmp / f"nets{size}" / "celeba" / "step1"
    s = text_format.Merge((d / "solver.prototxt").read_text(), caffe_pb2.SolverParameter())
    s.net, s.display, s.snapshot_after_train = str(d / "train_val.prototxt"), 1, False
    s.test_initialization = False
    s.snapshot_prefix = str(tmp / "snap")
    (d / "bench_solver.prototxt").write_text(text_format.MessageToString(s))
    log = caffe("train", f"--solver={d / 'bench_solver.prototxt'}", cwd=tmp)
    (tmp / f"train{size}.log").write_text(log)
    # per-iteration wall time from glog's timestamps between consecutive "Iteration N, loss"
    stamps = [(int(m.group(4)), float(m.group(1)) * 3600 + float(m.group(2)) * 60 + float(m.group(3)))
              for m in re.finditer(r"^I\d{4,8} (\d+):(\d+):([\d.]+)\s+\d+ \S+\] Iteration (\d+)(?: \([^)]*\))?, loss",
                                   log, re.M)]
    pts = [t for _, t in stamps]
    warm = pts[1:]                       # drop the first (net setup, prefetch warm-up)
    train_s = (warm[-1] - warm[0]) / (len(warm) - 1)
    net = text_format.Merge((d / "train_val.prototxt").read_text(), caffe_pb2.NetParameter())
    (d / "time.prototxt").write_text(text_format.MessageToString(with_inputs(net, batch, len(attrs))))
    tlog = caffe("time", f"--model={d / 'time.prototxt'}", f"--iterations={max(2, iters // 2)}", cwd=tmp)
    fb_ms = float(re.search(r"Average Forward-Backward: ([\d.]+) ms", tlog).group(1))
    ratio = train_s / (fb_ms / 1000)
    print(f"{label}: caffe train {train_s * 1000:.1f} ms/iter ({1 / train_s:.2f} it/s, {len(warm) - 1} iters) "
          f"vs caffe time forward-backward {fb_ms:.1f} ms -> RATIO {ratio:.3f} (overhead {100 * (ratio - 1):+.1f} %, "
          f"goal <= +5 %)")
    return ratio


def cost(sec_per_iter: float, attrs: int, k: int, share_speedup: float) -> None:
    s1, s23 = 120_000, 40_000
    h1 = s1 * sec_per_iter / 3600
    h23 = 2 * attrs * s23 * sec_per_iter / 3600
    print("\nschedule cost on paper: GPU-hours = (120000 + 2T x 40000) x s/iter / 3600, "
          f"T={attrs}, s/iter={sec_per_iter} (batch 128, input; measure yours on a GPU)")
    print(f"  Step 1: {h1:.1f} GPU-h; Steps 2+3: {2 * attrs} jobs x 40000 it = {h23:.1f} GPU-h; "
          f"total {h1 + h23:.1f} GPU-h")
    print(f"  with {k} jobs per GPU at an aggregate speed-up of {share_speedup} (input: measure with "
          f"--jobs-per-gpu): Steps 2+3 = {h23 / share_speedup:.1f} GPU-h, total {h1 + h23 / share_speedup:.1f} "
          f"GPU-h -> RATIO {(h1 + h23 / share_speedup) / (h1 + h23):.3f} vs one job per GPU")


def main() -> None:
    from g2s_caffe import params as hp

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--full-iters", type=int, default=3, help="0 skips the full-size net")
    p.add_argument("--full-batch", type=int, default=2)
    p.add_argument("--sec-per-iter", type=float, default=0.5)
    p.add_argument("--jobs-per-gpu", type=int, default=2)
    p.add_argument("--share-speedup", type=float, default=1.2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        measure(tmp, hp.SMALL_NET, 32, a.iters, 64, "small Step-1 net, batch 32, 56 crop, 40 attributes")
        if a.full_iters:
            measure(tmp, hp.FULL_NET, a.full_batch, a.full_iters + 1, 240,
                    f"full VGG-16 Step-1 net, batch {a.full_batch}, 224 crop")
    cost(a.sec_per_iter, 40, a.jobs_per_gpu, a.share_speedup)


if __name__ == "__main__":
    main()
