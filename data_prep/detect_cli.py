"""Detect faces with the Caffe MTCNN port: per image, per face, the box [x1, y1, x2, y2],
the score and the 5 landmarks [[x, y] x5] (left eye, right eye, nose, left and right mouth
corner; left/right as seen in the image).  A table by default, JSON with --json.  An image
that cannot be read gets an error line naming it; the others are still processed, and the
exit code is 1 if any image failed."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (anything cv2.imread reads)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--min-face", type=float, default=20, help="smallest face side to find, in pixels")
    p.add_argument("--factor", type=float, default=0.709, help="image pyramid scale step")
    p.add_argument("--thresholds", type=float, nargs=3, default=[0.6, 0.7, 0.7], metavar=("P", "R", "O"),
                   help="P-Net, R-Net and O-Net score thresholds")
    p.add_argument("--gpu", type=int, default=None, help="GPU id (a CUDA build of Caffe); none = CPU")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per image on CPU (default: the cores this process may use, at most 2)")


def read_image(path: str):
    """BGR uint8 image, or raise G2SError naming the file."""
    import cv2
    import numpy as np
    from g2s_caffe.core.errors import G2SError
    p = Path(path)
    if not p.is_file():
        raise G2SError(f"{path}: no such file; check the path")
    img = cv2.imdecode(np.fromfile(str(p), dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise G2SError(f"{path}: cannot decode as an image (corrupt or unsupported format); "
                       "convert it to JPEG or PNG")
    return img


def _table(path: str, faces) -> str:
    if not faces:
        return f"{path}: no face"
    lines = [f"{path}: {len(faces)} face{'s' if len(faces) > 1 else ''}",
             f"  {'#':>2} {'score':>6}  {'box x1,y1,x2,y2':<26} landmarks (x,y): "
             "left eye, right eye, nose, mouth left, mouth right"]
    for i, f in enumerate(faces):
        box = ",".join(f"{v:.1f}" for v in f.box)
        lm = " ".join(f"{x:.1f},{y:.1f}" for x, y in f.landmarks)
        lines.append(f"  {i:>2} {f.score:6.4f}  {box:<26} {lm}")
    return "\n".join(lines)


def run(args) -> int:
    from g2s_caffe.core.errors import G2SError
    from data_prep.mtcnn import MTCNN
    det = MTCNN(min_face=args.min_face, factor=args.factor, thresholds=tuple(args.thresholds), gpu=args.gpu,
                threads=args.threads)
    results, failed = [], 0
    for path in args.images:
        try:
            faces = det.detect(read_image(path), name=path)
        except G2SError as e:
            failed += 1
            print(f"g2s detect: error: {e}", file=sys.stderr)
            results.append({"image": path, "error": str(e)})
            if not args.json:
                print(f"{path}: ERROR (see stderr)")
            continue
        results.append({"image": path, "faces": [f.to_dict() for f in faces]})
        if not args.json:
            print(_table(path, faces))
    if args.json:
        print(json.dumps({"images": results}, indent=1))
    if failed:
        print(f"g2s detect: {failed} of {len(args.images)} image(s) failed", file=sys.stderr)
    return 1 if failed else 0
