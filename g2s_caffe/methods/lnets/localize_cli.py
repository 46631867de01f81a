"""Localize faces with a trained LNets run (g2s lnets): per image the face box, its score (or
"no face"), pictures of the averaged response maps (Fig. 3/6), and on a
prepared split the localization evaluation of Fig. 7 against the dataset's face boxes, LNets
next to our MTCNN port on the same images.

  g2s localize photo1.jpg photo2.png --lnets runs/lnets          new photos -> localizations/
  g2s localize --lnets runs/lnets --data data/celeba --split test
                                      the split's raw images (the prepared manifest's sources),
                                      -> runs/lnets/localize/<dataset>_<split>/

Per image (cascade LNet_o -> LNet_s, infer.LNetsCascade.face, with density-peak pruning
and the run's face threshold): ``localizations.csv`` (face box [x1, y1, x2, y2) in image pixels
or "no face", its score, the threshold, LNet_o's box) and ``windows.jsonl`` (the same as JSON,
with the box whether or not it passed the threshold: one scored box per image is what the
Fig. 7 curves sweep, loc_eval.py).  ``pictures/``: for a sample (--pictures N, spread over the
images) the image with the boxes, LNet_o's averaged C5 response over the whole image, LNet_s's
over its head-shoulder region; ``pictures.png`` puts the sample side by side.  With --data and a face-box file
(CelebA's list_bbox_celeba.txt, the demo's): ``roc.csv``, ``recall_vs_iou.csv``,
``summary.json`` and ``loc_eval.png`` (loc_eval.py), LNets and "MTCNN (our port)" (unless
--no-mtcnn).  Every image is accounted for: an image without a face box in the file is an error
naming it, "no face" images are counted.  Long splits resume after a kill -9 (chunks of results).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
from pathlib import Path

import numpy as np

from g2s_caffe.core import disk
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError

PICTURES = 8                 # default sample size of the response-map pictures
CHUNK = 256                  # images per resumable result file
PHOTOS_OUT = Path("localizations")   # the output folder for photos given by name
# Space for a full disk's message (core/disk.py), about twice what was measured on 2026-12-04:
# 0.6 KiB of tables per image; a picture (the photo beside its two response maps) 1.2 MiB for a
# 512 x 512 photo, the sheet of three 1.1 MiB; Fig. 7's curves and figure 0.2 MiB.
LOCALIZE_BYTES_PER_IMAGE = 2 << 10
LOCALIZE_BYTES_PER_PICTURE = 2560 << 10
LOCALIZE_BYTES_FIXED = 512 << 10
LNETS_LABEL, MTCNN_LABEL = "LNets", "MTCNN (our port)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="photographs (any OpenCV format)")
    p.add_argument("--lnets", type=Path, required=True, metavar="RUN", help="an LNets run directory (g2s lnets)")
    p.add_argument("--data", type=Path, metavar="DIR", help="a prepared dataset: localize a split's raw images")
    p.add_argument("--split", default="test", help="with --data: which prepared split")
    p.add_argument("--images-dir", type=Path, metavar="DIR",
                   help="with --data: the raw image folder; None = the prepared manifest's sources.images")
    p.add_argument("--out", type=Path, help="output directory; None = RUN/localize/<dataset>_<split> with --data, "
                   "else localizations/")
    p.add_argument("--pictures", type=int, default=PICTURES, help="images drawn with their response maps")
    p.add_argument("--threshold", type=float, help="face threshold; None = the run's (its threshold stage)")
    p.add_argument("--no-mtcnn", action="store_true", help="with --data: leave our MTCNN port out of the curves")
    p.add_argument("--limit", type=int, help="with --data: only the first N images of the split (a quick look)")
    p.add_argument("--gpu", type=int, help="GPU id for the nets; None = CPU")


def outputs(args) -> list[Path]:
    return [args.out or (args.lnets / "localize" if args.data else PHOTOS_OUT)]


# ------------------------------------------------------------------ one image
def record(result) -> dict:
    """What localizations.csv / windows.jsonl keep of a CascadeResult (JSON-ready)."""
    f, hs = result.face, result.head_shoulder
    return {"face": list(f.box) if f.box is not None else None, "window": list(f.window),
            "score": float(f.score), "threshold": f.threshold, "is_face": bool(f.is_face), "pruned": bool(f.pruned),
            "peaks": len(f.peaks), "head_shoulder": list(hs.window), "head_shoulder_score": float(hs.score),
            "detections": [[*f.window, float(f.score)]]}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def picture(img: np.ndarray, result, reference=None) -> np.ndarray:
    """Fig. 3/6: the image with its boxes | LNet_o's averaged C5 map | LNet_s's, over the image."""
    import cv2

    from g2s_caffe.methods.lnets.localize import render_response

    def boxes(canvas, items):
        for b, colour in items:
            if b is None:
                continue
            x1, y1, x2, y2 = (int(round(v)) for v in b)
            cv2.rectangle(canvas, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), colour, 2)
        return canvas

    f, hs = result.face, result.head_shoulder
    face_colour = (0, 0, 255) if f.is_face else (0, 165, 255)
    plain = boxes(img.copy(), [(reference, (0, 200, 0)), (hs.window, (255, 255, 255)), (f.window, face_colour)])
    o = boxes(render_response(img, result.head_shoulder_map), [(hs.window, (255, 255, 255))])
    s = render_response(img, result.face_map)
    m = result.face_map
    if m is not result.head_shoulder_map:       # LNet_s saw only its window: dim the rest
        x1, x2 = (int(round(np.clip(v, 0, img.shape[1]))) for v in (m.x_edges[0], m.x_edges[-1]))
        y1, y2 = (int(round(np.clip(v, 0, img.shape[0]))) for v in (m.y_edges[0], m.y_edges[-1]))
        inside = np.zeros(img.shape[:2], bool)
        inside[y1:y2, x1:x2] = True
        s[~inside] = (img[~inside] * 0.4).astype(np.uint8)
    s = boxes(s, [(f.window, face_colour)])
    label = f"score {f.score:.3g} {'>=' if f.is_face else '<'} {f.threshold:.3g}" if f.threshold is not None \
        else f"score {f.score:.3g}"
    panels = []
    for canvas, text in ((plain, "face" if f.is_face else "no face"), (o, "LNet_o C5"), (s, "LNet_s C5")):
        bar = np.full((22, canvas.shape[1], 3), 30, np.uint8)
        cv2.putText(bar, text if text != "face" and text != "no face" else f"{text}: {label}", (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(np.vstack([bar, canvas]))
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    return np.hstack([panels[0], gap, panels[1], gap, panels[2]])


def sheet(pictures: list[np.ndarray], width: int = 900) -> np.ndarray:
    """The sample's pictures stacked, each scaled to one width."""
    import cv2

    rows = []
    for p in pictures:
        h = max(1, round(p.shape[0] * width / p.shape[1]))
        rows.append(cv2.resize(p, (width, h), interpolation=cv2.INTER_AREA))
        rows.append(np.full((6, width, 3), 255, np.uint8))
    return np.vstack(rows[:-1])


def _png(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise G2SError("PNG encoding failed")
    return buf.tobytes()


# ------------------------------------------------------------------ outputs
def write_tables(out: Path, names: list[str], recs: list[dict]) -> list[Path]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "face", "x1", "y1", "x2", "y2", "score", "threshold", "pruned", "peaks",
                "head_shoulder_x1", "head_shoulder_y1", "head_shoulder_x2", "head_shoulder_y2", "head_shoulder_score"])
    for n, r in zip(names, recs):
        box = r["face"] or [""] * 4
        w.writerow([n, "face" if r["is_face"] else "no face", *(f"{v:.1f}" if v != "" else "" for v in box),
                    f"{r['score']:.6g}", "" if r["threshold"] is None else f"{r['threshold']:.6g}", int(r["pruned"]),
                    r["peaks"], *(f"{v:.1f}" for v in r["head_shoulder"]), f"{r['head_shoulder_score']:.6g}"])
    lines = "".join(json.dumps({"image": n, **r}) + "\n" for n, r in zip(names, recs))
    return [write_atomic(out / "localizations.csv", buf.getvalue()), write_atomic(out / "windows.jsonl", lines)]


def run(args) -> int:
    import cv2

    from g2s_caffe.core.device import select_device
    from g2s_caffe.core.runs import load_run
    from g2s_caffe.methods.lnets import stages as st
    from g2s_caffe.core.jobs.chunks import resumable_map
    from g2s_caffe.methods.lnets.job_hooks import METHOD

    if args.pictures < 0:
        raise G2SError(f"--pictures {args.pictures}: expected >= 0")
    if bool(args.images) == bool(args.data):
        raise G2SError("give IMAGE files or --data DIR (a prepared dataset's split), one of the two")
    run_ = load_run(args.lnets)
    if run_.method != METHOD:
        raise G2SError(f"--lnets {args.lnets}: a {run_.method!r} run, not an LNets run (train one with `g2s lnets`)")
    print(f"g2s localize: running the nets on the {select_device(args.gpu)}")
    cascade = st.cascade_of(run_, with_threshold=args.threshold is None)
    if args.threshold is not None:
        cascade.threshold = args.threshold
    refs = None
    if args.data:
        from g2s_caffe.core.layout import open_prepared
        from g2s_caffe.methods.lnets.raw import RawImages, reference_boxes, split_items

        data = open_prepared(args.data)
        items = split_items(data, args.split)
        raw = RawImages(data, args.images_dir)
        keys = items.keys[:args.limit] if args.limit else items.keys
        names = items.names[:len(keys)]
        load = lambda i: raw.load(keys[i])
        refs, where = reference_boxes(data)
        if refs is not None:
            lost = [n for n in names if n not in refs]
            if lost:
                raise G2SError(f"{where}: no face box for {len(lost)} image(s) of the {args.split} split "
                               f"({', '.join(lost[:3])}...); the box file is from another release")
        out = args.out or run_.root / "localize" / f"{data.manifest.get('dataset', 'data')}_{args.split}"
        tag_data = {"data": str(data.root.resolve()), "split": args.split, "images": raw.identity()}
    else:
        names = [str(p) for p in args.images]
        for p in args.images:
            if not p.is_file():
                raise G2SError(f"{p}: no such image")

        def load(i):
            img = cv2.imread(names[i], cv2.IMREAD_COLOR)
            if img is None:
                raise G2SError(f"{names[i]}: not an image OpenCV can read (JPEG, PNG, BMP, TIFF, ...)")
            return img
        out = args.out or PHOTOS_OUT
        tag_data = {"photos": names}
    out = Path(out)
    pictures = min(args.pictures, len(names))
    disk.expect(out, len(names) * LOCALIZE_BYTES_PER_IMAGE + (pictures + bool(pictures)) * LOCALIZE_BYTES_PER_PICTURE
                + LOCALIZE_BYTES_FIXED, f"localize ({len(names)} image(s), {pictures} picture(s))")
    ident = {**st.cascade_identity(run_), "threshold": cascade.threshold, **tag_data}
    recs = resumable_map(out / ".chunks" / "lnets", ident, names,
                         lambda i: record(cascade.face(load(i), where=names[i])), CHUNK, desc="LNets localize")
    written = write_tables(out, names, recs)
    found = sum(r["is_face"] for r in recs)
    print(f"{len(names)} image(s): a face in {found}, no face (score below the threshold "
          f"{cascade.threshold:.4g}) in {len(names) - found}")
    if not args.data and len(names) <= 20:
        for n, r in zip(names, recs):
            what = ("face [" + ", ".join(f"{v:.0f}" for v in r["face"]) + "]") if r["is_face"] else "no face"
            print(f"  {n}: {what} (score {r['score']:.4g})")

    # pictures of a sample, spread over the images
    sample = st.spread(len(names), args.pictures) if args.pictures else []
    pics = []
    for i in sample:
        img = load(i)
        ref = refs[names[i]][0] if refs is not None else None
        pic = picture(img, cascade.face(img, where=names[i]), ref)
        written.append(write_atomic(out / "pictures" / f"{i:05d}_{_safe(Path(names[i]).name)}.png", _png(pic)))
        pics.append(pic)
    if pics:
        written.append(write_atomic(out / "pictures.png", _png(sheet(pics))))

    if args.data and refs is None:
        print(f"no localization curves: {where}")
    elif args.data:
        from g2s_caffe.methods.lnets import loc_eval as le

        def dets(rs):
            return [le.ImageDetections(n, np.asarray([d[:4] for d in r["detections"]]).reshape(-1, 4),
                                       np.asarray([d[4] for d in r["detections"]], np.float64), refs[n])
                    for n, r in zip(names, rs)]
        results = {LNETS_LABEL: dets(recs)}
        if not args.no_mtcnn:
            mtcnn = le.mtcnn_detector()

            def detect(i):
                b, s = mtcnn(load(i))
                return {"detections": [[*map(float, bb), float(ss)] for bb, ss in zip(b, s)]}
            mt = resumable_map(out / ".chunks" / "mtcnn", {**tag_data, "mtcnn": [le.MTCNN_MIN_FACE, le.MTCNN_FACTOR,
                                                                                list(le.MTCNN_THRESHOLDS)]},
                               names, detect, CHUNK, desc="MTCNN (our port)")
            results[MTCNN_LABEL] = dets(mt)
        summary = le.write_report(results, out, title=f"Face localization (Fig. 7), {run_.dataset} LNets")
        for det, s in summary.items():
            t = s["tpr_at_fppi_0.1"]
            print(f"{det}: TPR at FPPI 0.1 (IoU >= 0.5) {100 * t['value']:.1f} % [{100 * t['ci95'][0]:.1f}, "
                  f"{100 * t['ci95'][1]:.1f}] over {s['images']} images; recall at IoU 0.5 / 0.7 (FPPI 0.1): "
                  f"{100 * s['recall_vs_iou_at_fppi_0.1']['0.5']:.1f} / {100 * s['recall_vs_iou_at_fppi_0.1']['0.7']:.1f} %")
        written += [out / "roc.csv", out / "recall_vs_iou.csv", out / "summary.json", out / "loc_eval.png"]
    print(f"wrote {out}/: " + ", ".join(sorted({str(Path(p).relative_to(out)).split('/')[0] for p in written})))
    return 0
