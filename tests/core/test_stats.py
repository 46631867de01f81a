"""Intervals and tests against values worked out by hand (g2s_caffe/core/evaluation/stats.py, metrics, paired)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from g2s_caffe.core.evaluation import metrics, paired, stats
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.evaluation.predictions import Predictions

Z = 1.959963984540054   # the standard normal's 97.5 % point


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    centre = (k + Z * Z / 2) / (n + Z * Z)
    half = Z / (n + Z * Z) * math.sqrt(k * (n - k) / n + Z * Z / 4)
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(7, 10), (0, 20), (20, 20), (270, 300), (17966, 19962)])
def test_wilson_interval_is_the_textbook_formula(k, n):
    iv = stats.wilson_interval(k, n)
    lo, hi = wilson_by_hand(k, n)
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), abs=1e-12)
    assert iv.contains(k / n)


def test_wilson_known_numbers():
    # 7 of 10: [0.3968, 0.8922]; 0 of 20: upper bound z^2 / (n + z^2).
    iv = stats.wilson_interval(7, 10)
    assert (round(iv.lo, 4), round(iv.hi, 4)) == (0.3968, 0.8922)
    assert stats.wilson_interval(0, 20).lo == pytest.approx(0.0, abs=1e-15)
    assert stats.wilson_interval(0, 20).hi == pytest.approx(Z * Z / (20 + Z * Z))
    # The figures: 90 % on CelebA's 19,962 test images is about +-0.4 points, on
    # LFWA's 6,880 about +-0.7, on the demo's 300 about +-3.4.
    for n, half in ((19962, 0.42), (6880, 0.71), (300, 3.4)):
        iv = stats.wilson_interval(round(0.9 * n), n).scaled(100)
        assert (iv.hi - iv.lo) / 2 == pytest.approx(half, abs=0.05)
    with pytest.raises(G2SError, match="at least one image"):
        stats.wilson_interval(0, 0)


@pytest.mark.parametrize("b,c,p", [
    (1, 6, 16 / 128),          # 2 * (C(7,0) + C(7,1)) / 2^7
    (0, 6, 2 / 64),            # 2 * C(6,0) / 2^6
    (6, 0, 2 / 64),
    (2, 8, 112 / 1024),        # 2 * (1 + 10 + 45) / 2^10
    (5, 5, 1.0),
    (0, 0, 1.0),               # no discordant image: nothing to test
])
def test_exact_mcnemar_by_hand(b, c, p):
    assert stats.mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)


def test_holm_and_benjamini_hochberg_on_a_known_list():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max.
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    # BH: 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 = 0.02, 0.02, 0.04, 0.04 -> running min from the top.
    np.testing.assert_allclose(stats.benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])          # capped at 1
    np.testing.assert_allclose(stats.benjamini_hochberg([0.5, 0.6]), [0.6, 0.6])
    np.testing.assert_allclose(stats.adjust([0.2], "holm"), [0.2])
    with pytest.raises(G2SError, match="expected one of holm, bh"):
        stats.adjust(p, "bonferroni")


def test_weighted_rates_equal_scores_of_the_repeated_images():
    """A bootstrap resample is a count per image; the rates must be those of the images repeated."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, size=(12, 3))
    labels[:, 2] = 0                                  # one attribute without positives
    probs = [rng.random((12, 3)), rng.random((12, 3))]
    correct = [metrics.decide(p) == labels for p in probs]
    w = metrics.WeightedRates(correct, labels)
    counts = rng.integers(0, 4, size=(5, 12))
    counts[0] = 1                                     # the sample itself
    acc, bal = w.rates(counts)
    assert acc.shape == bal.shape == (2, 3, 5)
    for b, cnt in enumerate(counts):
        rows = np.repeat(np.arange(12), cnt)
        for s in range(2):
            want = metrics.score(probs[s][rows], labels[rows], ["a", "b", "c"])
            assert acc[s, :, b] == pytest.approx([x.accuracy for x in want])
            assert bal[s, :, b] == pytest.approx([x.balanced_accuracy for x in want])


def test_bootstrap_of_two_images_follows_the_binomial_by_hand():
    # One image right, one wrong: a resample of 2 draws has 0, 1 or 2 right with
    # probabilities 1/4, 1/2, 1/4, so the accuracy is 0, 0.5 or 1 that often.
    acc, _ = metrics.bootstrap_rates([np.array([[True], [False]])], np.array([[1], [0]]), resamples=4000, seed=1)
    freq = [np.mean(acc[0, 0] == v) for v in (0.0, 0.5, 1.0)]
    assert freq == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert stats.percentile_interval(acc[0, 0]) == stats.Interval(0.0, 1.0)


def test_bootstrap_is_reproducible_and_near_the_normal_interval():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(400, 1))
    correct = rng.random((400, 1)) < 0.9
    a1, _ = metrics.bootstrap_rates([correct], labels, resamples=2000, seed=7)
    a2, _ = metrics.bootstrap_rates([correct], labels, resamples=2000, seed=7)
    a3, _ = metrics.bootstrap_rates([correct], labels, resamples=2000, seed=8)
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)
    p = correct.mean()
    iv = stats.percentile_interval(a1[0, 0])
    half = Z * math.sqrt(p * (1 - p) / 400)
    assert (iv.lo, iv.hi) == pytest.approx((p - half, p + half), abs=0.006)
    with pytest.raises(G2SError, match="at least 2 test images"):
        metrics.bootstrap_rates([correct[:1]], labels[:1])


def test_summarize_gives_every_interval():
    labels = np.array([[1, 0], [1, 1], [1, 0], [0, 1], [0, 0], [0, 1], [0, 0], [0, 0], [0, 1], [0, 0]] * 3)
    probs = np.where(labels == 1, 0.8, 0.3)
    probs[0, 0] = 0.1                                # attribute A: one false negative of 30 images
    s = metrics.summarize(probs, labels, ["A", "B"], resamples=500, seed=3)
    a, b = s.scores
    assert s.accuracy_intervals[0] == stats.wilson_interval(a.correct, a.n)
    assert s.accuracy_intervals[1] == stats.wilson_interval(30, 30)
    assert s.balanced_intervals[1] == stats.Interval(1.0, 1.0)      # always right: no spread
    assert s.balanced_intervals[0].lo < a.balanced_accuracy <= s.balanced_intervals[0].hi
    assert s.mean_accuracy_interval.contains(s.mean_accuracy)
    assert s.to_json()["bootstrap_resamples"] == 500 and s.to_json()["mean_accuracy_ci"][1] <= 100


def _pred(source, correct_rows, labels):
    """Predictions whose decisions are right exactly where ``correct_rows`` says."""
    probs = np.where(correct_rows, labels, 1 - labels).astype(np.float64) * 0.8 + 0.1
    return Predictions(source, [f"{i:08d}_{i}.jpg" for i in range(len(labels))], ["X", "Y"], probs, labels)


def test_paired_comparison_on_a_constructed_pair_with_known_p_values():
    n = 40
    labels = np.tile(np.array([[1, 0], [0, 1]]), (n // 2, 1))
    ca = np.ones((n, 2), bool)
    cb = np.ones((n, 2), bool)
    # X: only A right on image 0, only B right on images 1..6 -> b = 1, c = 6, p = 0.125.
    cb[0, 0] = False
    ca[1:7, 0] = False
    # Y: only B right on images 10..15 -> b = 0, c = 6, p = 0.03125.
    ca[10:16, 1] = False
    a, b = _pred("a.npz", ca, labels), _pred("b.npz", cb, labels)
    c = paired.compare_paired(a, b, "A", "B", correction="holm", resamples=1000, seed=0)
    x, y = c.attributes
    assert (x.only_a, x.only_b, x.p) == (1, 6, pytest.approx(0.125))
    assert (y.only_a, y.only_b, y.p) == (0, 6, pytest.approx(0.03125))
    # Holm over two tests: 0.03125 * 2 = 0.0625, then max(0.125, 0.0625) -> both noise at 5 %.
    assert (x.p_adjusted, y.p_adjusted) == (pytest.approx(0.125), pytest.approx(0.0625))
    assert c.real() == [] and c.noise() == ["X", "Y"]
    assert x.diff == pytest.approx(5 / 40) and y.diff == pytest.approx(6 / 40)
    # The mean difference (11 images of 80 decisions) is clear in the paired bootstrap.
    assert c.accuracy.diff == pytest.approx(11 / 80)
    assert c.accuracy.interval.lo > 0 and c.accuracy.real
    # One test alone is not corrected: Y is then real at 5 %.
    one = paired.compare_paired(a.columns(["Y"]), b.columns(["Y"]), "A", "B", resamples=200)
    assert one.real() == ["Y"]
    # A method against itself: no difference, and an interval of exactly 0.
    same = paired.compare_paired(a, a, "A", "A2", resamples=200)
    assert same.accuracy.interval == stats.Interval(0.0, 0.0) and not same.accuracy.real
    assert [x.p for x in same.attributes] == [1.0, 1.0]


def test_pairing_matches_images_by_key_and_refuses_mismatches():
    labels = np.tile(np.array([[1, 0], [0, 1]]), (5, 1))
    a = _pred("a.npz", np.ones((10, 2), bool), labels)
    order = np.arange(10)[::-1]
    b = Predictions("b.npz", [a.keys[i] for i in order], ["Y", "X"], a.probs[order][:, ::-1], labels[order][:, ::-1])
    c = paired.compare_paired(a, b, "A", "B", resamples=100)
    assert [x.only_a + x.only_b for x in c.attributes] == [0, 0]       # same decisions once matched
    fewer = a.rows(a.keys[:9])
    with pytest.raises(G2SError, match=r"not the same test images: 1 key\(s\) only in the first"):
        paired.compare_paired(a, fewer, "A", "B")
    with pytest.raises(G2SError, match=r"different attributes \(only in the first: Y"):
        paired.compare_paired(a, a.columns(["X"]), "A", "B")
    relabelled = Predictions("c.npz", a.keys, a.attributes, a.probs, 1 - a.labels)
    with pytest.raises(G2SError, match="different labels"):
        paired.compare_paired(a, relabelled, "A", "B")
