"""Confidence intervals and tests for accuracies measured on a finite test set.

All of it is about one question: which differences could the test images alone explain?

* ``wilson_interval``: the Wilson score interval of a proportion (one attribute's accuracy,
  k of n images right).  Unlike the normal approximation it stays inside [0, 1] and keeps
  its coverage at 99 % accuracy on a few hundred images.  scipy's ``binomtest``.
* ``bootstrap_distribution`` / ``percentile_interval``: the nonparametric bootstrap over test
  images (resample the N images with replacement, recompute the statistic), percentile
  intervals.  Used where no closed form fits: balanced accuracy, and means over attributes
  (the attributes of one image are correlated, so their errors do not average out like
  independent ones).  A paired statistic (two methods on the same images) is resampled with
  the same image draws for both.  scipy's ``bootstrap`` draws the resamples.
* ``mcnemar_exact``: the exact McNemar test of two methods' paired decisions on the same
  images: under "equally accurate", the images only one of them gets right split 50/50.
* ``holm`` / ``benjamini_hochberg``: p-values adjusted for testing every attribute at once.

Constants below; ``RESAMPLES`` and ``SEED`` are the defaults of ``g2s eval`` and
``g2s compare`` (both take ``--resamples`` and ``--seed``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from g2s_caffe.core.errors import G2SError

CONFIDENCE = 0.95             # of every interval
ALPHA = 0.05                  # of every test: 1 - CONFIDENCE, so "real at 5 %" matches the intervals
LEVEL = f"{100 * CONFIDENCE:g} %"     # "95 %", as the tables print it
# 2,000 resamples: the percentile picked as the 2.5 % bound then lies within 2.5 +- 0.35 %
# of the bootstrap distribution (one Monte-Carlo standard error, sqrt(.025 * .975 / 2000)),
# and CelebA's 19,962 x 40 test predictions take about a second.
RESAMPLES = 2000
# Any fixed value: fixed so that the same predictions always give the same intervals.
SEED = 2018
# Holm by default: it bounds the chance of calling even one of the 40 attribute differences
# "real" when it is not (family-wise error) under any dependence between the tests; the
# attributes of one image are strongly dependent (Male / Beard / Makeup), and Benjamini-
# Hochberg's false-discovery bound assumes positive dependence.  BH is the option for
# screening many attributes, where a few false leads are acceptable.
CORRECTIONS = ("holm", "bh")
DEFAULT_CORRECTION = "holm"
# Resamples per call of the vectorised statistic: the counts matrix holds at most this many floats.
BOOTSTRAP_BATCH_VALUES = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A confidence interval [lo, hi] (same unit as the value it belongs to)."""
    lo: float
    hi: float

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def scaled(self, factor: float) -> "Interval":
        return Interval(self.lo * factor, self.hi * factor)

    def shifted(self, offset: float) -> "Interval":
        return Interval(self.lo + offset, self.hi + offset)


# ------------------------------------------------------------------ one proportion
def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of successes / n (fractions)."""
    from scipy.stats import binomtest

    if n < 1:
        raise G2SError("an interval needs at least one image")
    if not 0 <= successes <= n:
        raise G2SError(f"{successes} successes out of {n} is not a count")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(float(ci.low), float(ci.high))


# ------------------------------------------------------------------ bootstrap over images
def bootstrap_distribution(statistic, n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(K, resamples): ``statistic(counts)`` of each bootstrap resample of n images.

    ``statistic`` gets ``counts`` of shape (b, n): how many times each image was drawn in
    each of b resamples (a multinomial weight, the same as indexing the images, but one
    matrix product instead of copying b x n rows), and returns (K, b)."""
    from scipy.stats import bootstrap

    if n < 2:
        raise G2SError(f"the bootstrap needs at least 2 test images, got {n}")
    if resamples < 1:
        raise G2SError(f"--resamples must be >= 1, got {resamples}")

    def on_indices(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.atleast_2d(idx)
        b = idx.shape[0]
        flat = (idx + n * np.arange(b)[:, None]).ravel()
        counts = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float32)
        return statistic(counts)

    batch = max(1, BOOTSTRAP_BATCH_VALUES // n)
    res = bootstrap((np.arange(n),), on_indices, n_resamples=resamples, vectorized=True, batch=batch,
                    method="percentile", random_state=np.random.default_rng(seed))
    return np.atleast_2d(res.bootstrap_distribution)


def percentile_interval(distribution: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """The central ``confidence`` part of a 1-D bootstrap distribution."""
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(np.asarray(distribution, np.float64), [tail, 100 - tail])
    return Interval(float(lo), float(hi))


# ------------------------------------------------------------------ paired tests
def mcnemar_exact(only_a_right: int, only_b_right: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: images only A gets right
    (b) and images only B gets right (c).  Under H0 (equal accuracy) b ~ Binomial(b + c, 1/2).
    No discordant image: nothing to test, p = 1."""
    from scipy.stats import binomtest

    b, c = int(only_a_right), int(only_b_right)
    if b < 0 or c < 0:
        raise G2SError(f"discordant counts must be >= 0, got {b} and {c}")
    if b + c == 0:
        return 1.0
    return float(binomtest(b, b + c, 0.5).pvalue)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error, any dependence)."""
    p = np.asarray(p_values, np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false-discovery rate); scipy's implementation."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, np.float64)
    return np.asarray(false_discovery_control(p, method="bh")) if p.size else p


def adjust(p_values, method: str = DEFAULT_CORRECTION) -> np.ndarray:
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise G2SError(f"correction {method!r}: expected one of {', '.join(CORRECTIONS)}")


CORRECTION_LABELS = {"holm": "Holm (family-wise error)", "bh": "Benjamini-Hochberg (false-discovery rate)"}
