"""LNets' candidate windows: every window of the C5 grid, scored exactly with an integral image
(our choice, g2s_caffe/methods/lnets/localize.py) vs EdgeBox proposals (the paper: 500 per image,
opencv-contrib's cv2.ximgproc.createEdgeBoxes on an edge map without the structured-edge model).

Images: the demo's (data_prep/demo_data.py: real faces re-composed, 170-230 px wide) with their
annotation boxes (list_bbox_celeba.txt's), generated in memory.  Two stages, as LNets run:
  LNet_o  the whole image at the full variant's scale (longer side 227)
  LNet_s  a square head-shoulder crop (here: the reference box enlarged 2x about its centre,
          a stand-in for LNet_o's window), resized to 227
Box quality needs no trained net: for each image, the best IoU that ANY candidate reaches with
the reference box, i.e. the ceiling of the window set (no scoring rule can pick better).  Speed:
ms per image to make the candidates and score them on a response map of the image's grid.
Prints recall at IoU >= 0.5 / 0.7 / 0.8, mean best IoU, ms per image, and
RATIO = EdgeBoxes ms / grid ms.  Without opencv-contrib (the project's venv pins
opencv-python-headless) only the grid is measured; run it once in a venv that has
opencv-contrib-python-headless to compare (docs/baseline.md, "LNets").

    .venv/bin/python bench/bench_lnet_windows.py [--images 300]
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

EDGEBOX_WINDOWS = 500          # the paper's number of proposals per image
HEAD_SHOULDER_ENLARGE = 2.0    # stand-in head-shoulder window: the face box, 2x, square
IOUS = (0.5, 0.7, 0.8)


def demo_images(count: int, seed: int = 2018):
    from data_prep import demo_data
    from g2s_caffe.methods.lnets.boxes import xywh_to_xyxy

    photos = demo_data.load_photos()
    out = []
    for i in range(count):
        jpeg, _, _, box = demo_data.compose(i, seed, photos)
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        out.append((img, np.asarray(xywh_to_xyxy(box))))
    return out


def geometry():
    from caffe.proto import caffe_pb2

    from g2s_caffe.core.nets.protofiles import read_text_proto
    from g2s_caffe.methods.lnets.localize import Geometry
    from g2s_caffe.core.paths import repo_root

    deploy = repo_root() / "prototxt" / "celeba" / "lnets" / "lnet_o_deploy.prototxt"
    return Geometry.from_net(read_text_proto(deploy, caffe_pb2.NetParameter()))


def stage_views(img, ref, size: int):
    """(view image, reference box in the view, view px -> image px scale) for both stages."""
    from g2s_caffe.methods.lnets import infer as li

    small, back = li.resize_longer(img, size)
    whole = (small, ref / back)
    x1, y1, x2, y2 = ref
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, HEAD_SHOULDER_ENLARGE * max(x2 - x1, y2 - y1) / 2
    patch, to_image = li.crop(img, (cx - half, cy - half, cx + half, cy + half), size)
    in_patch = np.array([(x1 - to_image.shift_x) / to_image.scale_x, (y1 - to_image.shift_y) / to_image.scale_y,
                         (x2 - to_image.shift_x) / to_image.scale_x, (y2 - to_image.shift_y) / to_image.scale_y])
    return {"LNet_o (whole image)": whole, "LNet_s (head-shoulder crop)": (patch, in_patch)}


def grid_candidates(view, geo, rng):
    """All grid windows of the view's map, scored on a (random) map: (boxes, seconds)."""
    from g2s_caffe.methods.lnets import localize as lz

    h, w = view.shape[:2]
    t0 = time.perf_counter()
    mh, mw = geo.map_size(h), geo.map_size(w)
    resp = lz.ResponseMap.from_net(rng.random((mh, mw)), geo, (h, w), lz.Affine(), (w, h))
    windows = lz.grid_windows(mh, mw)
    scores = lz.window_scores(resp.values, windows)
    int(np.argmax(scores))
    boxes = resp.boxes(windows)
    return boxes, time.perf_counter() - t0


def edgebox_candidates(view, geo, rng, edges_kind: str):
    """EdgeBoxes' proposals on the view, snapped to the map's cells and scored the same way."""
    from g2s_caffe.methods.lnets import localize as lz

    t0 = time.perf_counter()
    gray = cv2.cvtColor(view, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    if edges_kind == "canny":
        edges = (cv2.Canny(view, 50, 150) > 0).astype(np.float32)
    else:
        mag = np.sqrt(gx * gx + gy * gy)
        edges = mag / max(float(mag.max()), 1e-6)
    orient = np.mod(np.arctan2(gy, gx), np.pi).astype(np.float32)
    eb = cv2.ximgproc.createEdgeBoxes(maxBoxes=EDGEBOX_WINDOWS)
    found = eb.getBoundingBoxes(edges, orient)
    rects = found[0] if isinstance(found, tuple) else found
    rects = np.asarray(rects, np.float64).reshape(-1, 4)
    boxes = np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], 1)
    h, w = view.shape[:2]
    mh, mw = geo.map_size(h), geo.map_size(w)
    resp = lz.ResponseMap.from_net(rng.random((mh, mw)), geo, (h, w), lz.Affine(), (w, h))
    if len(boxes):    # snap to cell boundaries: the map's resolution; score like the grid
        c0 = np.abs(boxes[:, 0, None] - resp.x_edges[None]).argmin(1)
        c1 = np.maximum(np.abs(boxes[:, 2, None] - resp.x_edges[None]).argmin(1), c0 + 1)
        r0 = np.abs(boxes[:, 1, None] - resp.y_edges[None]).argmin(1)
        r1 = np.maximum(np.abs(boxes[:, 3, None] - resp.y_edges[None]).argmin(1), r0 + 1)
        cells = np.stack([np.minimum(r0, mh - 1), np.minimum(c0, mw - 1), np.minimum(r1, mh), np.minimum(c1, mw)], 1)
        int(np.argmax(lz.window_scores(resp.values, cells)))
    return boxes, time.perf_counter() - t0


def summarize(name: str, best: list[float], seconds: list[float], counts: list[int]) -> float:
    b = np.asarray(best)
    rec = "  ".join(f"IoU>={t}: {np.mean(b >= t):5.3f}" for t in IOUS)
    ms = 1000 * float(np.mean(seconds))
    print(f"  {name:34s} {rec}  mean best IoU {b.mean():.3f}  windows/image {np.mean(counts):7.0f}  "
          f"{ms:7.2f} ms/image")
    return ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    args = ap.parse_args()
    from g2s_caffe.methods.lnets import params as hp
    from g2s_caffe.methods.lnets.boxes import iou_matrix

    have_eb = hasattr(cv2, "ximgproc")
    geo, rng = geometry(), np.random.default_rng(0)
    images = demo_images(args.images)
    print(f"{len(images)} demo images, full-variant scale {hp.FULL_LNET.input_size} px, C5 stride "
          f"{geo.stride}; opencv {cv2.__version__}, ximgproc {'yes' if have_eb else 'NO (grid only)'}")
    methods = ["grid (all windows, integral image)"] + (
        [f"EdgeBoxes {EDGEBOX_WINDOWS} ({k} edges)" for k in ("sobel", "canny")] if have_eb else [])
    for stage in stage_views(*images[0], hp.FULL_LNET.input_size):
        print(stage)
        ms = {}
        for m in methods:
            best, secs, counts = [], [], []
            for img, ref in images:
                view, ref_v = stage_views(img, ref, hp.FULL_LNET.input_size)[stage]
                if m.startswith("grid"):
                    boxes, s = grid_candidates(view, geo, rng)
                else:
                    boxes, s = edgebox_candidates(view, geo, rng, "canny" if "canny" in m else "sobel")
                best.append(float(iou_matrix(ref_v[None], boxes).max()) if len(boxes) else 0.0)
                secs.append(s)
                counts.append(len(boxes))
            ms[m] = summarize(m, best, secs, counts)
        for m in methods[1:]:
            print(f"  RATIO {m} / grid ms: {ms[m] / ms[methods[0]]:.2f}")
        if not have_eb:
            print("  RATIO EdgeBoxes / grid ms: not measured (no cv2.ximgproc: opencv-contrib-python-headless)")
    print("(one run on a shared 2-core machine: timings are noisy; the IoU figures are exact)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
