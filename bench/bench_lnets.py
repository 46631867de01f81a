"""LNets (LNet_o -> LNet_s -> face window, g2s_caffe/methods/lnets/infer.py) vs our MTCNN port
(data_prep/mtcnn), ms per 300x300 image, same images, same process; plus ANet's one pass per
face (bench/bench_anet_onepass.py's nets) so that the whole LNets+ANet chain has a figure.

The paper (GPU, a 300x300 image): LNets 35 ms, ANet 14 ms.  Here: Caffe on CPU.  The LNets
have random weights (speed does not depend on their values; the density-peak step's work
does a little, through how many cells respond).  Images: 300x300 views of the registry photos
(astronaut, Tom Hanks, two crops of the group photo t1.jpg, coffee: no face).
Prints ms/image per stage and RATIO = LNets (full) / MTCNN.

    .venv/bin/python bench/bench_lnets.py [--rounds 3] [--variant full|small|both]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

SIDE = 300
PAPER_MS = {"LNets": 35, "ANet": 14}     # §3 / NOTES.md: GPU, a 300x300 image


def images() -> list[np.ndarray]:
    from skimage import data

    from data_prep.photos import photo_path

    def square(img, x, y, side):
        return cv2.resize(img[y:y + side, x:x + side], (SIDE, SIDE), interpolation=cv2.INTER_AREA)

    astro = cv2.imread(str(photo_path("astronaut.png")))
    hanks = cv2.imread(str(photo_path("Tom_Hanks_54745.png")))
    group = cv2.imread(str(photo_path("t1.jpg")))
    canvas = np.full((SIDE, SIDE, 3), 90, np.uint8)
    canvas[60:60 + 180, 60:60 + 180] = cv2.resize(hanks, (180, 180), interpolation=cv2.INTER_AREA)
    coffee = data.coffee()[:, :, ::-1]
    return [square(astro, 0, 0, 512), canvas, square(group, 0, 100, 450), square(group, 700, 150, 450),
            square(coffee, 100, 0, 400)]


def timed(fn, items, rounds: int) -> float:
    for x in items:                      # warm-up: allocations, reshapes, first-call set-up
        fn(x)
    t0 = time.perf_counter()
    for _ in range(rounds):
        for x in items:
            fn(x)
    return (time.perf_counter() - t0) * 1000 / (rounds * len(items))


def bench_lnets(variant: str, imgs, rounds: int, tmp: Path) -> dict[str, float]:
    import caffe
    from google.protobuf import text_format

    from g2s_caffe.methods.lnets import infer as li
    from g2s_caffe.methods.lnets import nets as lnet_nets, localize
    from g2s_caffe.methods.lnets import params as hp

    shape = hp.LNET_VARIANTS[variant][0]
    path = tmp / f"{variant}_deploy.prototxt"
    path.write_text(text_format.MessageToString(lnet_nets.deploy_net(shape)))
    caffe.set_random_seed(0)
    o, s = li.LNet(path, None, shape, "lnet_o"), li.LNet(path, None, shape, "lnet_s")
    cascade = li.LNetsCascade(o, s)
    maps_o = [o.on_whole(x) for x in imgs]
    firsts = [localize.localize(m) for m in maps_o]
    maps_s = [s.on_crop(x, f.window)[0] for x, f in zip(imgs, firsts)]
    return {
        "LNet_o forward (resize + net)": timed(o.on_whole, imgs, rounds),
        "LNet_s forward (crop + net)": timed(lambda k: s.on_crop(imgs[k], firsts[k].window), range(len(imgs)), rounds),
        "localization (mass boxes, peaks, scores)": timed(lambda k: localize.refine(localize.localize(maps_o[k]),
                                                                                    maps_o[k], maps_s[k]),
                                                          range(len(imgs)), rounds),
        "LNets total (cascade.face)": timed(cascade.face, imgs, rounds),
    }


def bench_anet(variant: str, rounds: int, tmp: Path) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_anet_onepass import faces, nets_for

    from g2s_caffe.methods.anet import nets
    from g2s_caffe.methods.anet import params as hp

    shape = hp.ANET_VARIANTS[variant][0]
    _, _, onepass = nets_for(shape, tmp)
    regions = faces(shape.region_size, 3)

    def one(x):
        onepass.blobs["data"].data[...] = x[None]
        return nets.patch_features(onepass.forward()[nets.FEATURE_BLOB])

    return timed(one, regions, rounds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variant", choices=("full", "small", "both"), default="both")
    args = ap.parse_args()
    import caffe

    from data_prep.mtcnn import MTCNN
    from g2s_caffe.methods.lnets import loc_eval

    caffe.set_mode_cpu()
    imgs = images()
    variants = ("full", "small") if args.variant == "both" else (args.variant,)
    print(f"Caffe on CPU, {os.cpu_count()} cores; {len(imgs)} images of {SIDE}x{SIDE} px x {args.rounds} rounds")
    mtcnn = MTCNN(min_face=loc_eval.MTCNN_MIN_FACE, factor=loc_eval.MTCNN_FACTOR,
                  thresholds=loc_eval.MTCNN_THRESHOLDS)
    mtcnn_ms = timed(mtcnn.detect, imgs, args.rounds)
    found = [len(mtcnn.detect(x)) for x in imgs]
    print(f"MTCNN port (min face {loc_eval.MTCNN_MIN_FACE}, faces found {found})   : {mtcnn_ms:8.1f} ms/image")
    with tempfile.TemporaryDirectory() as tmp:
        for v in variants:
            res = bench_lnets(v, imgs, args.rounds, Path(tmp))
            anet = bench_anet(v, args.rounds, Path(tmp))
            print(f"{v} variant:")
            for k, ms in res.items():
                print(f"  {k:42s}: {ms:8.1f} ms/image")
            total = res["LNets total (cascade.face)"]
            print(f"  {'ANet one pass (one face region)':42s}: {anet:8.1f} ms/face")
            print(f"  {'LNets + ANet':42s}: {total + anet:8.1f} ms/image")
            print(f"  {'RATIO LNets (' + v + ') / MTCNN port':42s}: {total / mtcnn_ms:8.2f}")
    print(f"paper (GPU): LNets {PAPER_MS['LNets']} ms, ANet {PAPER_MS['ANet']} ms per 300x300 image "
          "(context only: a GPU vs this CPU)")
    print("(one run on a shared machine: noisy; compare the RATIO, not the absolute times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
