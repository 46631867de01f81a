"""What do Step 1's 40 slices and losses cost?  `caffe time` forward+backward per iteration
of the Step-1 train net against the same VGG-16 with a single 2-way head (the Step-2 net),
same batch, same run, interleaved.  Goal: RATIO <= 1.03.

    .venv/bin/python bench/bench_step1_heads.py [--full-batch 2 --full-iterations 2]

Data layers are replaced by zero-filled Input layers of the same shapes (no LMDB, no JPEG
decode: only the nets are timed).  Prints one RATIO line per variant: the fastest run of
each net (on a shared machine the minimum is the least disturbed estimate), plus the
medians and, from `caffe time`'s per-layer report, what the layers after the trunk
(heads, slices, losses) cost by themselves.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

from g2s_caffe.methods.g2s import params as hp  # noqa: E402
from g2s_caffe.core.attributes import default_attributes  # noqa: E402

CAFFE = Path(sys.executable).parent / "caffe"
FWD_BWD = re.compile(r"Average Forward-Backward: ([\d.]+) ms")
PER_LAYER = re.compile(r"\]\s+(\S+)\s+(?:forward|backward): ([\d.e-]+) ms")
TRUNK = re.compile(r"^(conv|relu|pool|fc6|fc7|drop|data$|labels$)")
GOAL = 1.03


def timing_nets(shape: hp.NetShape, batch: int, folder: Path) -> dict[str, Path]:
    """Step-1 and single-head train nets (TRAIN phase, Input layers) as prototxt files."""
    import caffe

    from g2s_caffe.core.nets.data_layers import with_inputs
    from g2s_caffe.methods.g2s import nets

    names = default_attributes("celeba").names
    data = nets.DataSpec("unused", "train", "val", "a", batch, batch)
    out = {}
    for label, net in (("single 2-way head", nets.attribute_net(names, 0, shape, data)),
                       ("step1 40 heads", nets.step1_net(names, shape, data))):
        path = folder / f"{label.split()[0]}_{shape.crop_size}.prototxt"
        path.write_text(str(with_inputs(net, batch, len(names), caffe.TRAIN)))
        out[label] = path
    return out


def caffe_time(model: Path, iterations: int) -> tuple[float, float]:
    """(forward+backward ms per iteration, ms of that spent in layers outside the trunk)."""
    r = subprocess.run([str(CAFFE), "time", "-model", str(model), "-iterations", str(iterations)],
                       capture_output=True, text=True, env={**os.environ, "GLOG_minloglevel": "0"})
    m = FWD_BWD.search(r.stderr)
    if r.returncode or not m:
        sys.exit(f"caffe time failed on {model}:\n{r.stderr[-2000:]}")
    heads = sum(float(ms) for name, ms in PER_LAYER.findall(r.stderr) if not TRUNK.match(name))
    return float(m.group(1)), heads


def compare(title: str, shape: hp.NetShape, batch: int, iterations: int, reps: int, folder: Path) -> float:
    models = timing_nets(shape, batch, folder)
    times: dict[str, list[float]] = {k: [] for k in models}
    heads: dict[str, list[float]] = {k: [] for k in models}
    with tqdm(total=reps * len(models), desc=title, unit="run") as bar:
        for rep in range(reps):
            order = list(models.items())
            for label, path in (order if rep % 2 == 0 else order[::-1]):   # ABBA: drift hits both alike
                total, head = caffe_time(path, iterations)
                times[label].append(total)
                heads[label].append(head)
                bar.update()
    single, joint = models   # baseline first
    ratio = min(times[joint]) / min(times[single])
    print(f"{title}: batch {batch}, {iterations} iterations x {reps} runs, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (ms fwd+bwd per iteration):")
    for label, ts in times.items():
        print(f"  {label:18s} min {min(ts):9.1f}  median {statistics.median(ts):9.1f}  "
              f"layers after the trunk {statistics.median(heads[label]):7.3f}")
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"  median ratio {median[joint] / median[single]:.3f}; Step 1's layers after the trunk: "
          f"{statistics.median(heads[joint]) / median[joint]:.3%} of an iteration")
    print(f"RATIO {title} step1/single-head = {ratio:.3f} (fastest runs; goal <= {GOAL})")
    return ratio


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full-batch", type=int, default=2, help="batch of the full VGG-16 comparison")
    p.add_argument("--full-iterations", type=int, default=2)
    p.add_argument("--full-reps", type=int, default=2)
    p.add_argument("--small-batch", type=int, default=32)
    p.add_argument("--small-iterations", type=int, default=20)
    p.add_argument("--small-reps", type=int, default=5)
    p.add_argument("--skip-full", action="store_true", help="only the small variant (~20 s)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        compare("small variant", hp.SMALL_NET, args.small_batch, args.small_iterations,
                args.small_reps, Path(tmp))
        if not args.skip_full:
            compare("full VGG-16", hp.FULL_NET, args.full_batch, args.full_iterations,
                    args.full_reps, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
