"""LNets learn where the tags are: `g2s lnets` (the real `caffe train`, CPU, the small variant from
random init) on raw images whose only tag-bearing pixels are thin rings at each attribute's spot
in the face, next to two hollow squares at random places that say nothing.  Trained LNets must
score a held-out face with rings above the same face with hollow squares in their place, by
their own face score (the cascade's, as `g2s localize` computes it): an AUC a broken pipeline
would miss.  The test of the test: the same training with base_lr 0 and with tags shuffled
within each class falls short.

Why this fixture (docs/testing.md): on plain faces against background crops, LNets trained on
shuffled tags separate faces from backgrounds as well as trained ones (anything face-like
responds), so "the threshold is above chance" cannot fail; decoy faces with the marks untagged
left one trained seed in five below chance.  Here the rings and the squares have the same
contrast and size, so an untrained net scores them alike, and only tags tie the rings to the
answer."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from support import face_on_noise, make_raw_prepared, mark_spots

pytestmark = [pytest.mark.caffe, pytest.mark.slow]

ATTRIBUTES = ["Smiling", "Eyeglasses", "Bald", "Wearing_Hat"]
COUNTS = {"train": 256, "val": 16}
RAW = (160, 128)                 # raw image width, height
SEED = 0
# The small variant's solver (base_lr 0.01) without its step at 300: the rate stays put.  With
# 1-px outlines and 1,000 iterations (with the step or without) trained runs did not rank the
# rings first (AUC 0.22-0.44, seeds 0-1).
LNET_O_ITERS, LNET_S_ITERS, BATCH = 2000, 100, 8
HELD_OUT = 32                    # faces scored twice: with rings, with squares in their place
MARK_BGR, MARK_WIDTH, SQUARES = (20, 40, 30), 2, 2       # outlines of the same colour and width
# AUC (rings above squares, over the held-out faces) that trained LNets reach and the controls
# do not.  Measured with this module's settings over seeds 0-4 of the data and the solver
# (2026-12-04, docs/testing.md): learning 0.893-0.997; base_lr 0 0.414-0.527; tags shuffled
# within each class 0.338-0.540.
MIN_AUC = 0.75
CONDITIONS = ("learning", "base_lr_0", "shuffled_tags")


def ring(img: np.ndarray, cx: int, cy: int, radius: int) -> None:
    cv2.circle(img, (cx, cy), radius, MARK_BGR, MARK_WIDTH)


def hollow_square(img: np.ndarray, cx: int, cy: int, radius: int) -> None:
    cv2.rectangle(img, (cx - radius, cy - radius), (cx + radius, cy + radius), MARK_BGR, MARK_WIDTH)


def ringed_face(labels, width: int, height: int, rng: np.random.Generator):
    """A face on noise; attribute t's tag on: a thin ring at its spot; always: SQUARES hollow
    squares of a ring's size anywhere in the image, unrelated to the tags."""
    img, box = face_on_noise(width, height, rng)
    spots = mark_spots(len(labels), box)
    radius = spots[0][2]
    for _ in range(SQUARES):
        hollow_square(img, int(rng.integers(radius, width - radius)), int(rng.integers(radius, height - radius)),
                      radius)
    for on, (cx, cy, r, _) in zip(labels, spots):
        if on:
            ring(img, cx, cy, r)
    return img, box


def held_out_pairs(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """n faces never trained on, each drawn twice: every spot a ring, every spot a square."""
    rng = np.random.default_rng([seed, 9999])
    pairs = []
    for _ in range(n):
        img, box = face_on_noise(*RAW, rng)
        rings, squares = img.copy(), img.copy()
        for cx, cy, r, _ in mark_spots(len(ATTRIBUTES), box):
            ring(rings, cx, cy, r)
            hollow_square(squares, cx, cy, r)
        pairs.append((rings, squares))
    return pairs


def auc(positive, negative) -> float:
    """P(a positive scores above a negative), ties half (Mann-Whitney)."""
    p, q = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((p > q).mean() + 0.5 * (p == q).mean())


def rings_over_squares(root, condition: str, seed: int = SEED) -> float:
    """Train LNets under ``condition`` in ``root``; the held-out AUC of rings over squares."""
    from g2s_caffe.cli import main
    from g2s_caffe.core.runs import load_run
    from g2s_caffe.methods.lnets.stages import cascade_of

    data = make_raw_prepared(root / "data", ATTRIBUTES, COUNTS, people=8, size=32, raw_size=RAW, seed=seed,
                             face=ringed_face, shuffle_labels=("train", "val") if condition == "shuffled_tags" else ())
    attrs = root / "attrs.yaml"
    attrs.write_text("attributes:\n" + "".join(f"  - {{name: {n}, crop: a}}\n" for n in ATTRIBUTES))
    (root / "lnets.yaml").write_text(
        f"variant: small\nsolver: {{batch_size: {BATCH}, test_batch_size: 8, max_iter_lnet_o: {LNET_O_ITERS}, "
        f"max_iter_lnet_s: {LNET_S_ITERS}, test_interval: 100000, test_iter: 1, snapshot: 100000, display: 100, "
        f"stepsize: {LNET_O_ITERS}, "
        f"seed: {seed}}}\nthreshold: {{face_images: 8, background_crops: 8, registry_photos: false}}\n"
        "poll_seconds: 0.2\nprogress_seconds: 30\n")
    argv = ["lnets", "--data", str(data), "--runs", str(root / "runs"), "--attributes", str(attrs),
            "--config", str(root / "lnets.yaml"), "--weights-alexnet", "none"]
    if condition == "base_lr_0":
        assert main(["gen", "--attributes", str(attrs), "--dataset", "tiny", "--variant", "small", "--monitor-size",
                     str(COUNTS["val"]),
                     "--out", str(root / "nets")]) == 0
        solvers = list((root / "nets").rglob("lnet_*_solver.prototxt"))
        assert len(solvers) == 2, solvers
        for solver in solvers:
            solver.write_text(re.sub(r"(?m)^base_lr: .*$", "base_lr: 0", solver.read_text()))
        argv += ["--nets", str(root / "nets")]
    assert main(argv) == 0
    run = load_run(root / "runs" / "lnets")
    if condition == "base_lr_0":      # the run trained with the edited solvers
        for which in ("lnet_o", "lnet_s"):
            assert re.search(r"(?m)^base_lr: 0$", run.path(run.job(f"lnets/{which}").solver).read_text())
    cascade = cascade_of(run, with_threshold=False)
    scores = [[cascade.face(img).face.score for img in pair] for pair in held_out_pairs(HELD_OUT, seed)]
    rings, squares = zip(*scores)
    return auc(rings, squares)


def test_auc_counts_ties_as_half():
    assert auc([2, 3], [1, 1]) == 1.0 and auc([1], [2]) == 0.0 and auc([1, 2], [1, 2]) == 0.5


def test_the_fixture_differs_only_in_the_marks():
    rings, squares = held_out_pairs(1, SEED)[0]
    differ = np.any(rings != squares, axis=2)
    assert 0 < differ.mean() < 0.05                       # a few thin outlines, the rest identical
    labels = [1, 0, 1, 0]
    a, box_a = ringed_face(labels, *RAW, np.random.default_rng(1))
    b, box_b = ringed_face([0, 0, 0, 0], *RAW, np.random.default_rng(1))
    assert box_a == box_b
    for on, (cx, cy, r, _) in zip(labels, mark_spots(len(labels), box_a)):
        window = (slice(cy - r - 1, cy + r + 2), slice(cx - r - 1, cx + r + 2))
        assert np.any(a[window] != b[window]) == bool(on)


@pytest.mark.parametrize("condition", CONDITIONS)
def test_lnets_rank_the_tagged_rings_above_untagged_squares_only_when_they_learn(tmp_path, condition):
    got = rings_over_squares(tmp_path, condition)
    if condition == "learning":
        assert got >= MIN_AUC, got
    else:
        assert got < MIN_AUC, (condition, got)
