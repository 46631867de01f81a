"""How LNets' response maps become face boxes, measured on a trained run's val split (never
test): the best-scored window (the rule before issue 23) against the alternatives.

    .venv/bin/python bench/bench_lnet_boxes.py --lnets RUN --data PREPARED [--split val] [--figure PNG]

Per image of the split, LNet_o's and LNet_s's averaged C5 maps through the run's cascade (as
`g2s localize` runs it) and the dataset's face box (list_bbox_celeba.txt: the val split's boxes
may choose constants, they never reach training).  Prints:

1. the diagnosis of the pipeline before issue 23 (LNet_o's best-scored window, made square
   without margin, is LNet_s's region; LNet_s's best-scored window is the face; best-scored =
   sum / sqrt(area) over every grid window; no pruning): the chosen window's IoU with the face
   against the best IoU any grid window reaches (the ceiling of the window set), and where it
   falls: height / width, size relative to the face box and to the region the net saw, centre
   offset from the face box in face widths / heights;
2. the rules, on the maps of the cascade as it runs now: each one's box, the face shape (scale
   and shift; the aspect is the boxes': localize.BoxShape) fitted
   on one half of the images and tested on the other (2-fold, so the hit rate is not fitted on
   itself), the top-1 hit rate at IoU >= 0.5 with its Wilson interval, and the shape fitted on
   all images (the constants params.py takes); a uniform map's box is the prior (where faces
   are in these images, whatever the net says); RATIO = the mass box's hit rate / the
   best-scored window's, both fitted; then the two nets' mass boxes averaged with weights
   0 .. 1 on LNet_s's (SECOND_NET_WEIGHT), and the cascade as configured in params.py (what
   `g2s localize` answers): its top-1 hit rate and its TPR at FPPI 0.1 (one box per image);
3. the face boxes' height / width (FACE_BOX_ASPECT's source);
4. density-peak pruning on these one-face images (every cut is a wrong one): how many of each
   net's maps it cuts at the chosen and at the earlier constants, and the hits it costs.

--figure writes the diagnosis as a picture (docs/baseline.md): the best-scored windows of the
pipeline before against the cascade's boxes now.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

HIT_IOU = 0.5
# The face-shape grid a rule's box is fitted over (localize.BoxShape): wide enough that no fit
# below sits on its edge.
SCALES = np.round(np.arange(0.5, 3.01, 0.1), 2)
ASPECTS = (1.33,)              # params.FACE_BOX_ASPECT: the val boxes' median, not fitted
SHIFTS_X = (-0.1, 0.0, 0.1)
SHIFTS_Y = np.round(np.arange(-0.3, 0.31, 0.1), 2)
MASS_FLOORS = (0.0, 0.1, 0.2, 0.3)
RING_CELLS = 1
# Face-shaped windows: height / width and side relative to the region the net saw, the ranges
# of the val faces (1.12-1.40, 0.40-0.67 of LNet_s's region before issue 23) widened a little.
FACE_WINDOW_ASPECT, FACE_WINDOW_SIZE = (1.0, 1.6), (0.35, 0.75)
EARLIER_PEAKS = (0.35, 3.0)    # PEAK_MIN_DENSITY, PEAK_MIN_SEPARATION before issue 23


def collect(run_dir: Path, data_dir: Path, split: str):
    """Per image: the face box and, for each net, its map and the region it saw, now and
    before issue 23 ("before": LNet_s on the square of LNet_o's best-scored window)."""
    from g2s_caffe.core.layout import open_prepared
    from g2s_caffe.core.runs import load_run
    from g2s_caffe.methods.lnets import stages as st
    from g2s_caffe.methods.lnets.raw import RawImages, reference_boxes, split_items

    run, data = load_run(run_dir), open_prepared(data_dir)
    refs, where = reference_boxes(data)
    if refs is None:
        raise SystemExit(f"no face boxes: {where}")
    cascade = st.cascade_of(run, with_threshold=False)
    items, raw = split_items(data, split), RawImages(data)
    out = []
    for key, name in zip(items.keys, items.names):
        img = raw.load(key)
        res = cascade.face(img, where=key)
        before, _, _ = cascade.lnet_s.on_crop(img, best_scored(res.head_shoulder_map), margin=0.0)
        h, w = img.shape[:2]
        out.append({"name": name, "face": refs[name][0], "lnet_o": res.head_shoulder_map, "lnet_s": res.face_map,
                    "answer": (np.array(res.face.window), res.face.score),
                    "lnet_s_before": before, "region_lnet_o": np.array([0.0, 0.0, w, h]),
                    "region_lnet_s": region(res.face_map), "region_lnet_s_before": region(before)})
    return out


def region(resp) -> np.ndarray:
    return np.array([resp.x_edges[0], resp.y_edges[0], resp.x_edges[-1], resp.y_edges[-1]])


def best_scored(resp) -> np.ndarray:
    """The rule before issue 23: the grid window of the highest sum / sqrt(area), as a box."""
    return window_rule(paper_score)(resp)


# ------------------------------------------------------------------ the rules: map -> base box
def window_rule(score, face_shaped: bool = False):
    """The grid window of the best ``score(values, windows)`` (a base box to be shaped);
    ``face_shaped``: among the windows of a face's height / width and size only."""
    from g2s_caffe.methods.lnets import localize as lz

    def rule(resp):
        windows = lz.grid_windows(*resp.values.shape)
        s = score(resp.values, windows)
        if face_shaped:
            b = resp.boxes(windows)
            w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
            side = np.sqrt(w * h) / max(resp.x_edges[-1] - resp.x_edges[0], resp.y_edges[-1] - resp.y_edges[0])
            ok = ((h >= FACE_WINDOW_ASPECT[0] * w) & (h <= FACE_WINDOW_ASPECT[1] * w)
                  & (side >= FACE_WINDOW_SIZE[0]) & (side <= FACE_WINDOW_SIZE[1]))
            s = np.where(ok, s, -np.inf) if ok.any() else s
        return resp.boxes(windows[int(np.argmax(s))][None])[0]
    return rule


def paper_score(values, windows):
    from g2s_caffe.methods.lnets import localize as lz

    return lz.window_scores(values, windows)


def ring_score(values, windows):
    """Mean response inside minus the mean of a RING_CELLS-wide ring around, times sqrt(area)."""
    from g2s_caffe.methods.lnets import localize as lz

    h, w = values.shape
    outer = np.stack([np.maximum(windows[:, 0] - RING_CELLS, 0), np.maximum(windows[:, 1] - RING_CELLS, 0),
                      np.minimum(windows[:, 2] + RING_CELLS, h), np.minimum(windows[:, 3] + RING_CELLS, w)], 1)
    area = lambda b: ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).astype(np.float64)
    inside, total = lz.window_sums(values, windows), lz.window_sums(values, outer)
    ring = np.where(area(outer) > area(windows), (total - inside) / np.maximum(area(outer) - area(windows), 1), 0)
    return (inside / area(windows) - ring) * np.sqrt(area(windows))


def coverage_score(values, windows):
    """The map's mass the window holds minus its share of the area: sum of (v - mean v)."""
    from g2s_caffe.methods.lnets import localize as lz

    return lz.window_sums(values - values.mean(), windows)


def mass_rule(floor: float, uniform: bool = False):
    """The base box of the response's mass (scale 1, square); ``uniform``: of a flat map."""
    from g2s_caffe.methods.lnets import localize as lz

    def rule(resp):
        mass = np.ones(resp.values.shape) if uniform else lz.response_mass(resp.values, floor)
        cx, cy, spread = lz.mass_moments(resp, mass)
        return lz.shaped_box(cx, cy, 2 * spread, lz.BoxShape(1.0, 1.0))
    return rule


def rules() -> dict:
    out = {"best-scored window (before)": window_rule(paper_score),
           "best-scored face-shaped window": window_rule(paper_score, face_shaped=True),
           "inside vs ring window": window_rule(ring_score),
           "mass-coverage window": window_rule(coverage_score)}
    for f in MASS_FLOORS:
        out[f"mass box, floor {f:g}"] = mass_rule(f)
    out["prior: a flat map's mass box"] = mass_rule(0.0, uniform=True)
    return out


# ------------------------------------------------------------------ shapes fitted to the faces
def shaped(base: np.ndarray, scale, aspect, dx, dy) -> np.ndarray:
    """Base boxes (K, 4) reshaped like localize.shaped_box: same centre, geometric size x scale."""
    c = (base[:, :2] + base[:, 2:]) / 2
    side = scale * np.sqrt(np.prod(base[:, 2:] - base[:, :2], axis=1))
    wh = np.stack([side / np.sqrt(aspect), side * np.sqrt(aspect)], 1)
    c = c + np.array([dx, dy]) * wh
    return np.concatenate([c - wh / 2, c + wh / 2], 1)


def ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (K, 4) boxes."""
    lo, hi = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    union = np.prod(a[:, 2:] - a[:, :2], axis=1) + np.prod(b[:, 2:] - b[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def fit(base: np.ndarray, faces: np.ndarray) -> tuple:
    """The (scale, aspect, dx, dy) with the most hits (ties: scale nearest 1, then no shift)."""
    best, key = None, None
    for s in SCALES:
        for a in ASPECTS:
            for dx in SHIFTS_X:
                for dy in SHIFTS_Y:
                    hits = int((ious(shaped(base, s, a, dx, dy), faces) >= HIT_IOU).sum())
                    k = (hits, -abs(s - 1), -abs(dx) - abs(dy))
                    if key is None or k > key:
                        best, key = (float(s), float(a), float(dx), float(dy)), k
    return best


def two_fold(base: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Hits of each image under the shape fitted on the other half."""
    half = np.arange(len(base)) % 2 == 0
    hits = np.zeros(len(base), bool)
    for test in (half, ~half):
        shape = fit(base[~test], faces[~test])
        hits[test] = ious(shaped(base[test], *shape), faces[test]) >= HIT_IOU
    return hits


# ------------------------------------------------------------------ the diagnosis
def diagnosis(items, net: str) -> dict:
    """Per image: the best-scored window's IoU, the best IoU of any grid window, and where the
    best-scored window falls relative to the face and the region."""
    from g2s_caffe.methods.lnets import boxes as bx
    from g2s_caffe.methods.lnets import localize as lz

    rows = {k: [] for k in ("chosen_iou", "best_iou", "aspect", "width_vs_face", "height_vs_face",
                            "size_vs_region", "dx", "dy")}
    for it in items:
        resp, face, seen = it[net], it["face"], it[f"region_{net}"]
        windows = lz.grid_windows(*resp.values.shape)
        boxes = resp.boxes(windows)
        chosen = boxes[int(np.argmax(lz.window_scores(resp.values, windows)))]
        fw, fh = face[2] - face[0], face[3] - face[1]
        cw, ch = chosen[2] - chosen[0], chosen[3] - chosen[1]
        rows["chosen_iou"].append(bx.iou_matrix(chosen[None], face[None])[0, 0])
        rows["best_iou"].append(bx.iou_matrix(boxes, face[None]).max())
        rows["aspect"].append(ch / cw)
        rows["width_vs_face"].append(cw / fw)
        rows["height_vs_face"].append(ch / fh)
        rows["size_vs_region"].append(np.sqrt(cw * ch) / max(seen[2] - seen[0], seen[3] - seen[1]))
        rows["dx"].append(((chosen[0] + chosen[2]) - (face[0] + face[2])) / 2 / fw)
        rows["dy"].append(((chosen[1] + chosen[3]) - (face[1] + face[3])) / 2 / fh)
    return {k: np.asarray(v) for k, v in rows.items()}


def quartiles(v: np.ndarray) -> str:
    q = np.percentile(v, [25, 50, 75])
    return f"{q[1]:.2f} [{q[0]:.2f}, {q[2]:.2f}]"


def pct(hits: np.ndarray) -> str:
    from g2s_caffe.core.evaluation.stats import wilson_interval

    iv = wilson_interval(int(hits.sum()), len(hits))
    return f"{100 * hits.mean():5.1f} % [{100 * iv.lo:.1f}, {100 * iv.hi:.1f}]"


def plot(diag: dict, hits_old: np.ndarray, new_boxes: np.ndarray, faces: np.ndarray, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from g2s_caffe.core.atomic import write_atomic

    fig, ax = plt.subplots(1, 4, figsize=(16, 3.8))
    bins = np.linspace(0, 1, 21)
    new_iou = ious(new_boxes, faces)
    ax[0].hist(diag["best_iou"], bins, alpha=0.5, label="best window in the set")
    ax[0].hist(diag["chosen_iou"], bins, alpha=0.5, label="best-scored window (before)")
    ax[0].hist(new_iou, bins, histtype="step", linewidth=2, color="k", label="the cascade's box (now)")
    ax[0].axvline(HIT_IOU, color="grey", linestyle="--")
    ax[0].set_xlabel("IoU with the face box")
    ax[0].set_ylabel("images")
    ax[0].legend(fontsize=7)
    ax[0].set_title("(a) what the window set holds vs what is chosen", fontsize=9)
    ax[1].hist(diag["aspect"], bins=np.linspace(0.3, 2.2, 20), alpha=0.7)
    face_aspect = (faces[:, 3] - faces[:, 1]) / (faces[:, 2] - faces[:, 0])
    ax[1].axvspan(face_aspect.min(), face_aspect.max(), color="g", alpha=0.2, label="face boxes")
    ax[1].set_xlabel("height / width of the best-scored window")
    ax[1].legend(fontsize=7)
    ax[1].set_title("(b) shape of the best-scored window", fontsize=9)
    ax[2].scatter(diag["width_vs_face"], diag["height_vs_face"], s=6, alpha=0.6)
    ax[2].axhline(1, color="g")
    ax[2].axvline(1, color="g")
    ax[2].set_xlabel("width / face width")
    ax[2].set_ylabel("height / face height")
    ax[2].set_title("(c) size relative to the face box", fontsize=9)
    ax[3].scatter(diag["dx"], diag["dy"], s=6, alpha=0.6, label="best-scored window")
    nc = ((new_boxes[:, :2] + new_boxes[:, 2:]) - (faces[:, :2] + faces[:, 2:])) / 2 / (faces[:, 2:] - faces[:, :2])
    ax[3].scatter(nc[:, 0], nc[:, 1], s=6, alpha=0.6, color="k", label="the cascade's box")
    ax[3].axhline(0, color="g")
    ax[3].axvline(0, color="g")
    ax[3].invert_yaxis()
    ax[3].set_xlabel("centre offset / face width")
    ax[3].set_ylabel("centre offset / face height (down)")
    ax[3].legend(fontsize=7)
    ax[3].set_title("(d) centre relative to the face box", fontsize=9)
    fig.suptitle(f"LNets on {len(faces)} val images: LNet_s's best-scored window (before) hits the face "
                 f"(IoU >= {HIT_IOU}) on {100 * hits_old.mean():.0f} %, the cascade's box (now) on "
                 f"{100 * (new_iou >= HIT_IOU).mean():.0f} %", fontsize=10)
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    write_atomic(png, buf.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lnets", type=Path, required=True, help="a trained LNets run (g2s lnets)")
    ap.add_argument("--data", type=Path, required=True, help="its prepared dataset (with a face-box file)")
    ap.add_argument("--split", default="val", help="never test: the constants are chosen here")
    ap.add_argument("--figure", type=Path, help="write the diagnosis picture here")
    args = ap.parse_args(argv)
    if args.split == "test":
        raise SystemExit("--split test: the box constants are chosen on val, never on test")
    from g2s_caffe.methods.lnets import loc_eval as le
    from g2s_caffe.methods.lnets import localize as lz
    from g2s_caffe.methods.lnets import params as hp

    items = collect(args.lnets, args.data, args.split)
    faces = np.array([it["face"] for it in items])
    aspect = (faces[:, 3] - faces[:, 1]) / (faces[:, 2] - faces[:, 0])
    print(f"{len(items)} images of {args.split}; face boxes' height / width: median {np.median(aspect):.2f}, "
          f"range {aspect.min():.2f}-{aspect.max():.2f}")
    results = {}
    for net in ("lnet_o", "lnet_s_before"):
        d = diagnosis(items, net)
        print(f"\n== {net}: the best-scored window (the pipeline before issue 23)")
        print(f"  IoU >= {HIT_IOU} with the face: {pct(d['chosen_iou'] >= HIT_IOU)}; the best window of the set: "
              f"{pct(d['best_iou'] >= HIT_IOU)}; median IoU {np.median(d['chosen_iou']):.2f} vs "
              f"{np.median(d['best_iou']):.2f}")
        for k in ("aspect", "width_vs_face", "height_vs_face", "size_vs_region", "dx", "dy"):
            print(f"  {k:15s} median [quartiles] {quartiles(d[k])}")
    for net in ("lnet_o", "lnet_s"):
        print(f"== {net}: rules, top-1 hit rate at IoU >= {HIT_IOU} (shape fitted on the other half) | "
              "shape fitted on all (scale, aspect, dx, dy), its hit rate")
        for name, rule in rules().items():
            base = np.array([rule(it[net]) for it in items])
            hits = two_fold(base, faces)
            shape = fit(base, faces)
            results[(net, name)] = (hits, base, shape)
            print(f"  {name:30s} {pct(hits)} | {shape} {100 * (ious(shaped(base, *shape), faces) >= HIT_IOU).mean():.1f} %")
        old = results[(net, "best-scored window (before)")][0]
        new = results[(net, f"mass box, floor {hp.MASS_FLOOR:g}")][0]
        print(f"RATIO {net} mass box (floor {hp.MASS_FLOOR:g}) / best-scored window, top-1 hits: "
              f"{new.mean() / max(old.mean(), 1e-9):.2f}")
    print("\n== the two nets' mass boxes averaged, weight w on LNet_s's (shape fitted after averaging)")
    own = {net: results[(net, f"mass box, floor {hp.MASS_FLOOR:g}")] for net in ("lnet_o", "lnet_s")}
    for w in (0.0, 0.25, 0.5, 0.75, 1.0):
        base = (1 - w) * own["lnet_o"][1] + w * own["lnet_s"][1]
        print(f"  w = {w:4.2f}: {pct(two_fold(base, faces))} | {fit(base, faces)}")
    answers, scores = np.array([it["answer"][0] for it in items]), np.array([it["answer"][1] for it in items])
    hits = ious(answers, faces) >= HIT_IOU
    dets = [le.ImageDetections(it["name"], b[None], np.array([sc]), f[None])
            for it, b, sc, f in zip(items, answers, scores, faces)]
    print(f"== the cascade as configured (params.py; w = {hp.SECOND_NET_WEIGHT:g}): top-1 hit rate {pct(hits)}; "
          f"TPR at FPPI {le.RECALL_FPPI:g} (IoU >= {HIT_IOU}, one box per image) "
          f"{100 * le.tpr_at_fppi(le.roc(dets), le.RECALL_FPPI):.1f} %")
    print(f"\n== density-peak pruning on {len(items)} one-face images (box shapes as params.py)")
    for net, shape in (("lnet_o", lz.LNET_O_BOX), ("lnet_s", lz.FACE_BOX)):
        plain = np.array([lz.mass_box(it[net], shape) for it in items])
        for dens, sep in ((hp.PEAK_MIN_DENSITY, hp.PEAK_MIN_SEPARATION), EARLIER_PEAKS):
            cut, boxes = 0, []
            for it in items:
                found = lz.density_peaks(it[net].values, min_density=dens, min_separation=sep)
                mass = lz.response_mass(it[net].values, shape.floor)
                if len(found.peaks) >= 2:
                    cut, mass = cut + 1, np.where(found.labels == 0, mass, 0.0)
                boxes.append(lz.mass_box(it[net], shape, mass))
            print(f"  {net} at {dens:g} / {sep:g} cells: {cut} maps cut ({100 * cut / len(items):.1f} %); hits "
                  f"{100 * (ious(np.array(boxes), faces) >= HIT_IOU).mean():.1f} % vs "
                  f"{100 * (ious(plain, faces) >= HIT_IOU).mean():.1f} % unpruned")
    if args.figure:
        d = diagnosis(items, "lnet_s_before")
        plot(d, d["chosen_iou"] >= HIT_IOU, answers, faces, args.figure)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
