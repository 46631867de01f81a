"""Helpers shared by the tests: tiny real data in the project's on-disk formats.

``make_tiny_prepared`` writes a small prepared dataset (manifest + label and image LMDBs,
real JPEGs) directly through the contract's Datum primitives, so the nets, training and
evaluation tests do not depend on running the whole data_prep pipeline.  The images carry
a learnable signal: attribute t is "on" when a bright square is drawn in cell t of a grid.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

from g2s_caffe.core import layout

ROOT = Path(__file__).resolve().parent.parent      # the repository


def right_of_centre(column: int, grid: int) -> bool:
    """Whether grid column ``column`` lies right of the vertical centre line.  A mark there is
    drawn hollow: the nets train on mirrored images, and a mirror swaps column c with
    grid - 1 - c, so two attributes in mirrored cells stay apart only by their shape."""
    return 2 * column > grid - 1


def synthetic_face(labels, size: int, rng: np.random.Generator) -> np.ndarray:
    """A BGR uint8 image whose pixels encode the labels (one grid cell per attribute: a bright
    square, a frame right of the centre line)."""
    img = rng.integers(40, 90, size=(size, size, 3), dtype=np.uint8)
    n = len(labels)
    grid = int(np.ceil(np.sqrt(n)))
    cell = size // grid
    for t, y in enumerate(labels):
        if y:
            r, c = divmod(t, grid)
            pad = max(1, cell // 6)
            y0, y1, x0, x1 = r * cell + pad, (r + 1) * cell - pad, c * cell + pad, (c + 1) * cell - pad
            inner = img[y0 + pad:y1 - pad, x0 + pad:x1 - pad].copy()
            img[y0:y1, x0:x1] = (230, 230, 230)
            if right_of_centre(c, grid) and inner.size:
                img[y0 + pad:y1 - pad, x0 + pad:x1 - pad] = inner
    return img


PERSON_BASE = {"train": 1000, "val": 2000, "test": 3000}
# `g2s train --config` for make_tiny_prepared's data: the small nets, 20 + 10 iterations.
TINY_TRAIN_CONFIG = """net: {variant: small, crop_size: 28, fc_dim: 16}
solver: {batch_size: 8, test_batch_size: 8, max_iter_step1: 20, max_iter_step23: 10,
         test_interval: 10, test_iter: 2, snapshot: 10, display: 5}
poll_seconds: 0.1
progress_seconds: 1
"""


def choices_row(section: str, first_cell: str) -> str:
    """The "paper says / we chose / why" row of docs/choices.md under the heading that starts
    with ``section`` whose first cell is ``first_cell``: the tests take the "we chose" literals
    from there and check that the row still says them."""
    heading = None
    for line in (ROOT / "docs" / "choices.md").read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif heading and heading.startswith(section) and line.startswith(f"| {first_cell} |"):
            return line
    raise AssertionError(f"docs/choices.md: no row '| {first_cell} |' under '## {section}...'")


def person_of(split: str, index: int, people: int) -> int:
    return PERSON_BASE[split] + index % people


def _sha_dir(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def written_labels(labels: np.ndarray, split: str, shuffle_labels: tuple[str, ...], seed: int) -> np.ndarray:
    """The labels a split's labels LMDB holds: the drawn ones, or for a split in
    ``shuffle_labels`` labels that say nothing about the pixels (the learning tests' control): per
    attribute, each class of the drawn label shuffled into half positives, half negatives.  Not a
    plain permutation of the rows: it leaves a chance correlation of about 1/sqrt(n) with the
    pixels, which a learner turns into a near-perfect detector (or anti-detector) of squares this
    salient."""
    if split not in shuffle_labels:
        return labels
    rng = np.random.default_rng([seed, len(labels)])
    out = np.zeros_like(labels)
    for t in range(labels.shape[1]):
        for value in (0, 1):
            rows = np.flatnonzero(labels[:, t] == value)
            out[rng.permutation(rows)[:len(rows) // 2], t] = 1
    return out


def make_tiny_prepared(root: Path, attributes: list[str], counts: dict[str, int] | None = None,
                       size: int = 32, schemes: tuple[str, ...] = ("a",), seed: int = 0,
                       jpeg_quality: int = 95, dataset: str = "tiny", people: int | None = None,
                       shuffle_labels: tuple[str, ...] = ()) -> Path:
    """Write a prepared dataset at ``root`` and return it (see g2s_caffe.core.layout).

    ``people``: also write identities_lmdb, image i of a split being person
    ``PERSON_BASE[split] + i % people`` (each split its own people, as CelebA's splits).
    ``shuffle_labels``: splits whose labels say nothing about the pixels (``written_labels``)."""
    counts = counts or {"train": 64, "val": 32, "test": 32}
    rng = np.random.default_rng(seed)
    root = Path(root)
    manifest = {"format": layout.FORMAT, "dataset": dataset, "attributes": list(attributes),
                "image_size": size, "encoding": "jpeg", "jpeg_quality": jpeg_quality,
                "schemes": list(schemes), "splits": {}, "tool": {"writer": "tests/support.py"},
                "parameters": {"seed": seed}}
    for split, n in counts.items():
        labels = rng.integers(0, 2, size=(n, len(attributes)))
        written = written_labels(labels, split, shuffle_labels, seed)
        keys = [layout.key_for(i, f"{split}_{i:06d}.jpg") for i in range(n)]
        lm = {}
        whats = (layout.LABELS, *schemes) + ((layout.IDENTITIES,) if people else ())
        for what in whats:
            path = layout.lmdb_dir(root, split, what)
            path.mkdir(parents=True, exist_ok=True)
            env = lmdb.open(str(path), map_size=1 << 28)
            with env.begin(write=True) as txn:
                for i, key in enumerate(keys):
                    if what == layout.LABELS:
                        val = layout.label_datum(written[i], i)
                    elif what == layout.IDENTITIES:
                        val = layout.identity_datum(person_of(split, i, people), i)
                    else:
                        img = synthetic_face(labels[i], size, rng)
                        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                        assert ok
                        val = layout.image_datum(buf.tobytes(), size, i)
                    txn.put(key.encode(), val)
            env.close()
            lm[what] = {"path": str(path.relative_to(root)), "sha256": _sha_dir(path)}
        manifest["splits"][split] = {
            "count": n, "keys_sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest(),
            "lmdbs": lm, "states": {"detected": n, "fallback": 0, "discarded": 0, "missing": 0}}
        if people:
            manifest["splits"][split][layout.IDENTITIES] = min(n, people)
    manifest["identities"] = bool(people)
    if people:
        manifest["identity_source"] = {"path": "tests/support.py", "sha256": "", "people": people}
    else:
        manifest["identity_note"] = "tests/support.py: written without identities"
    (root / layout.MANIFEST).write_text(json.dumps(manifest, indent=2))
    return root


def face_on_noise(width: int, height: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """A BGR "photo": noise background, one skin-coloured face ellipse at a random place and size.
    Returns (image, its face box x, y, w, h)."""
    img = rng.integers(30, 120, size=(height, width, 3), dtype=np.uint8)
    side = int(rng.integers(min(width, height) // 3, min(width, height) // 2))
    w, h = side, int(side * 1.2)
    x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    cv2.ellipse(img, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, (120, 160, 220), -1)
    return img, (x, y, w, h)


def mark_spots(attributes: int, box: tuple) -> list[tuple[int, int, int, bool]]:
    """Where attribute t's mark goes inside the face ``box``: (centre x, centre y, radius, hollow),
    one per attribute, on a grid over the face (hollow right of the centre: see right_of_centre)."""
    x, y, w, h = box
    grid = int(np.ceil(np.sqrt(attributes)))
    radius = max(2, w // 10)
    return [(x + (c + 1) * w // (grid + 1), y + (r + 1) * h // (grid + 1), radius, right_of_centre(c, grid))
            for r, c in (divmod(t, grid) for t in range(attributes))]


def raw_face_image(labels, width: int, height: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """``face_on_noise`` with attribute t drawn as a dark mark at its own spot inside the face
    (``mark_spots``: a disc, a ring right of the centre).  Returns (image, face box x, y, w, h)."""
    img, box = face_on_noise(width, height, rng)
    for on, (cx, cy, radius, hollow) in zip(labels, mark_spots(len(labels), box)):
        if on:
            cv2.circle(img, (cx, cy), radius, (20, 40, 30), max(1, radius // 2) if hollow else -1)
    return img, box


def make_raw_prepared(root: Path, attributes: list[str], counts: dict[str, int], people: int, size: int = 32,
                      raw_size: tuple[int, int] = (96, 80), seed: int = 0, jpeg_quality: int = 95,
                      dataset: str = "tiny", face=raw_face_image, shuffle_labels: tuple[str, ...] = ()) -> Path:
    """A prepared dataset (labels, identities and scheme "c" LMDBs) whose manifest points at raw
    images with a face-box file, as `g2s prep celeba` records them (sources.images, sources.bbox in
    CelebA's list_bbox_celeba.txt format): what LNets and LNets+ANet read.  Returns ``root``.

    ``face(labels, width, height, rng) -> (image, (x, y, w, h))`` draws each raw image
    (``raw_face_image``: the marks); ``shuffle_labels``: splits whose labels say nothing about
    the pixels (``written_labels``)."""
    from g2s_caffe.core.crops import crop_box

    rng = np.random.default_rng(seed)
    root = Path(root)
    images = root.parent / f"{root.name}_raw" / "img_celeba"
    images.mkdir(parents=True, exist_ok=True)
    box_rows = []
    manifest = {"format": layout.FORMAT, "dataset": dataset, "attributes": list(attributes), "image_size": size,
                "encoding": "jpeg", "jpeg_quality": jpeg_quality, "schemes": ["c"], "splits": {},
                "tool": {"writer": "tests/support.py"}, "parameters": {"seed": seed}, "identities": True,
                "identity_source": {"path": "tests/support.py", "sha256": "", "people": people},
                "sources": {"images": str(images), "bbox": str(images.parent / "list_bbox_celeba.txt")}}
    for split, n in counts.items():
        labels = rng.integers(0, 2, size=(n, len(attributes)))
        written = written_labels(labels, split, shuffle_labels, seed)
        names = [f"{split}_{i:06d}.jpg" for i in range(n)]
        keys = [layout.key_for(i, name) for i, name in enumerate(names)]
        crops = []
        for i, name in enumerate(names):
            img, (x, y, w, h) = face(labels[i], *raw_size, rng)
            cv2.imwrite(str(images / name), img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            box_rows.append(f"{name} {x} {y} {w} {h}")
            x0, y0, side = crop_box(x, y, w, h, "c")
            m = np.array([[size / side, 0, -x0 * size / side], [0, size / side, -y0 * size / side]])
            crop = cv2.warpAffine(img, m, (size, size), borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            assert ok
            crops.append(buf.tobytes())
        lm = {}
        for what in (layout.LABELS, layout.IDENTITIES, "c"):
            path = layout.lmdb_dir(root, split, what)
            path.mkdir(parents=True, exist_ok=True)
            env = lmdb.open(str(path), map_size=1 << 28)
            with env.begin(write=True) as txn:
                for i, key in enumerate(keys):
                    val = (layout.label_datum(written[i], i) if what == layout.LABELS else
                           layout.identity_datum(person_of(split, i, people), i) if what == layout.IDENTITIES else
                           layout.image_datum(crops[i], size, i))
                    txn.put(key.encode(), val)
            env.close()
            lm[what] = {"path": str(path.relative_to(root)), "sha256": _sha_dir(path)}
        manifest["splits"][split] = {
            "count": n, "keys_sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest(), "lmdbs": lm,
            "states": {"detected": n, "fallback": 0, "discarded": 0, "missing": 0}, layout.IDENTITIES: min(n, people)}
    total = sum(counts.values())
    (images.parent / "list_bbox_celeba.txt").write_text("\n".join([str(total), "image_id x_1 y_1 width height",
                                                                    *box_rows]) + "\n")
    (root / layout.MANIFEST).write_text(json.dumps(manifest, indent=2))
    return root


def check_finished_run(run, job_ids, stage_names) -> None:
    """Every job of a finished run has intact final weights, a fingerprint and its curves; every
    stage is done and each of its outputs is there with the sha256 the manifest recorded."""
    from g2s_caffe.core.runs import sha256_file

    for jid in job_ids:
        job = run.job(jid)
        assert job.status == "done", (jid, job.status)
        assert sha256_file(run.path(job.final.path)) == job.final.sha256, jid
        assert job.extra["fingerprint"] and (run.path(job.dir) / "curves.png").is_file(), jid
    for name in stage_names:
        st = run.stages[name]
        assert st["status"] == "done", name
        for out in st["outputs"].values():
            p = run.path(out["path"])
            assert p.exists(), out
            if p.is_file():
                assert sha256_file(p) == out["sha256"], out


# ------------------------------------------------------------------ what a results CSV says was learned
Z95 = 1.959963984540054          # the normal quantile of a two-sided 95 % interval


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score interval of successes / n at 95 %, by its textbook formula."""
    p = successes / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 / (1 + Z95 ** 2 / n) * np.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n ** 2))
    return centre - half, centre + half


def majority_margin(right: int, positives: int, n: int) -> float:
    """Accuracy minus the majority class's accuracy, in points, of ``right`` correct decisions
    on n images of which ``positives`` are positive."""
    return 100 * (right - max(positives, n - positives)) / n


def recomputed_rows(csv_path: Path) -> list[dict]:
    """The rows of a results CSV (`g2s eval`'s), each checked against what it was computed from:
    the counts against the scores and labels of its predictions file (decision p >= 0.5),
    accuracy, balanced accuracy and the accuracy's Wilson interval against the counts.  Adds
    ``margin``: accuracy minus the majority class's accuracy, in points."""
    import csv

    from g2s_caffe.core.evaluation.predictions import load_predictions

    csv_path = Path(csv_path)
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        pred = load_predictions(csv_path.parent / row["predictions"])
        t = list(pred.attributes).index(row["attribute"])
        say, truth = pred.probs[:, t] >= 0.5, pred.labels[:, t] == 1
        counts = {"tp": say & truth, "tn": ~say & ~truth, "fp": say & ~truth, "fn": ~say & truth}
        counts = {k: int(v.sum()) for k, v in counts.items()}
        assert {k: int(row[k]) for k in counts} == counts, row
        n, positives = int(row["n"]), int(row["positives"])
        assert n == len(truth) and positives == counts["tp"] + counts["fn"], row
        right = counts["tp"] + counts["tn"]
        assert float(row["accuracy"]) == pytest.approx(100 * right / n, abs=1e-3), row
        lo, hi = wilson(right, n)
        assert (float(row["accuracy_lo"]), float(row["accuracy_hi"])) == pytest.approx((100 * lo, 100 * hi), abs=1e-3)
        if 0 < positives < n:
            balanced = (counts["tp"] / positives + counts["tn"] / (n - positives)) / 2
            assert float(row["balanced_accuracy"]) == pytest.approx(100 * balanced, abs=1e-3), row
        # A percentile bootstrap interval need not hold its point estimate: with the tests' 10
        # resamples a row now and then has it just outside (seen: 46.55 above [39.35, 46.47]).
        assert 0 <= float(row["balanced_accuracy_lo"]) <= float(row["balanced_accuracy_hi"]) <= 100, row
        row["margin"] = majority_margin(right, positives, n)
    return rows


def margins(csv_path: Path) -> dict[str, dict[str, float]]:
    """run -> attribute -> accuracy minus the majority class's, in points (recomputed_rows)."""
    out: dict[str, dict[str, float]] = {}
    for row in recomputed_rows(csv_path):
        out.setdefault(row["run"], {})[row["attribute"]] = row["margin"]
    return out


def learned(by_attribute: dict[str, float], margin: float) -> bool:
    """The learning tests' criterion: every attribute beats its majority class by ``margin``
    points or more."""
    return min(by_attribute.values()) >= margin
