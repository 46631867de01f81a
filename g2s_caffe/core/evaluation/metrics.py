"""Accuracy and balanced accuracy of binary attribute predictions.

Balanced accuracy is the mean of the true-positive rate and the true-negative rate (the
LFWA+ metric of the CelebA paper); it matters because most CelebA attributes are rare, so
always answering "no" already scores high plain accuracy.  When one class is absent from
the labels its rate is undefined: balanced accuracy is then the rate of the class that is
present (and reported with ``one_class=True``), never a silent 0 or NaN.

Intervals (g2s_caffe/core/evaluation/stats.py): a single accuracy gets the Wilson interval of its counts;
balanced accuracies and the means over attributes get percentile intervals of one bootstrap
over the test images (``summarize``), all from the same resamples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from g2s_caffe.core.evaluation import stats
from g2s_caffe.core.errors import G2SError


@dataclass(frozen=True)
class AttributeScore:
    name: str
    n: int
    positives: int          # labels == 1
    tp: int
    tn: int
    fp: int
    fn: int

    @property
    def correct(self) -> int:
        return self.tp + self.tn

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def accuracy_interval(self, confidence: float = stats.CONFIDENCE) -> stats.Interval:
        return stats.wilson_interval(self.correct, self.n, confidence)

    @property
    def tpr(self) -> float | None:
        return self.tp / self.positives if self.positives else None

    @property
    def tnr(self) -> float | None:
        neg = self.n - self.positives
        return self.tn / neg if neg else None

    @property
    def one_class(self) -> bool:
        return self.positives in (0, self.n)

    @property
    def balanced_accuracy(self) -> float:
        rates = [r for r in (self.tpr, self.tnr) if r is not None]
        return sum(rates) / len(rates)


def check_predictions(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probs, labels) as (N, T) float64 and int64 after checking shapes and values."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim == 1:
        probs = probs[:, None]
    if labels.ndim == 1:
        labels = labels[:, None]
    if probs.shape != labels.shape:
        raise G2SError(f"probabilities {probs.shape} and labels {labels.shape} differ in shape")
    if probs.shape[1] != len(names):
        raise G2SError(f"{probs.shape[1]} attribute columns but {len(names)} names")
    if probs.shape[0] == 0:
        raise G2SError("no images to score")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise G2SError("probabilities must be finite and in [0, 1]")
    if not np.all(np.isin(labels, (0, 1))):
        raise G2SError(f"labels must be 0/1, found {sorted(set(np.unique(labels).tolist()) - {0, 1})}")
    return probs, labels.astype(np.int64)


def decide(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Positive when P(attribute) >= threshold (argmax of the two-way softmax at 0.5)."""
    return (np.asarray(probs) >= threshold).astype(np.int64)


def score(probs, labels, names: list[str], threshold: float = 0.5) -> list[AttributeScore]:
    """Per-attribute counts from probabilities (N, T) of the positive class and labels (N, T)."""
    probs, labels = check_predictions(probs, labels, names)
    pred = decide(probs, threshold)
    out = []
    for t, name in enumerate(names):
        y, p = labels[:, t], pred[:, t]
        out.append(AttributeScore(
            name=name, n=len(y), positives=int(y.sum()),
            tp=int(((p == 1) & (y == 1)).sum()), tn=int(((p == 0) & (y == 0)).sum()),
            fp=int(((p == 1) & (y == 0)).sum()), fn=int(((p == 0) & (y == 1)).sum())))
    return out


def mean_accuracy(scores: list[AttributeScore]) -> float:
    """The paper's "average accuracy": the unweighted mean over attributes."""
    return float(np.mean([s.accuracy for s in scores]))


def mean_balanced_accuracy(scores: list[AttributeScore]) -> float:
    return float(np.mean([s.balanced_accuracy for s in scores]))


# ------------------------------------------------------------------ bootstrap intervals
class WeightedRates:
    """Accuracy and balanced accuracy per attribute of S prediction sets on the same N images,
    for any weighting of the images (a bootstrap resample = how often each image was drawn)."""

    def __init__(self, correct: list[np.ndarray], labels: np.ndarray):
        y = np.asarray(labels, bool)
        c = np.stack([np.asarray(x, bool) for x in correct])          # (S, N, T)
        self.sets, self.n, self.t = c.shape
        per_image = lambda m: m.transpose(1, 0, 2).reshape(self.n, -1)
        # Per image: right, right & positive, right & negative (for each set), positive.
        self.columns = np.concatenate([per_image(c), per_image(c & y), per_image(c & ~y), y],
                                      axis=1).astype(np.float32)

    def rates(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(accuracy, balanced accuracy), each (S, T, b), for counts (b, N) of each image."""
        counts = np.atleast_2d(counts)
        sums = (counts.astype(np.float32) @ self.columns).T.astype(np.float64)   # (K, b): exact below 2^24
        k, s, t = self.sets * self.t, self.sets, self.t
        right, tp, tn = (sums[i * k:(i + 1) * k].reshape(s, t, -1) for i in range(3))
        pos = sums[3 * k:].reshape(1, t, -1)
        total = counts.sum(axis=1).reshape(1, 1, -1)
        neg = total - pos
        tpr, tnr = tp / np.maximum(pos, 1), tn / np.maximum(neg, 1)
        # One class absent from a resample: the rate of the class present (see AttributeScore).
        balanced = np.where(pos == 0, tnr, np.where(neg == 0, tpr, (tpr + tnr) / 2))
        return right / total, balanced


def bootstrap_rates(correct: list[np.ndarray], labels: np.ndarray, resamples: int = stats.RESAMPLES,
                    seed: int = stats.SEED) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap distributions (S, T, B) of per-attribute accuracy and balanced accuracy of S
    prediction sets on the same N images (``correct``: S arrays (N, T) of right/wrong), every
    set resampled with the same image draws (so differences between sets are paired)."""
    w = WeightedRates(correct, labels)

    def statistic(counts: np.ndarray) -> np.ndarray:
        acc, bal = w.rates(counts)
        return np.concatenate([acc, bal]).reshape(-1, counts.shape[0])

    dist = stats.bootstrap_distribution(statistic, w.n, resamples, seed)
    both = dist.reshape(2 * w.sets, w.t, -1)
    return both[:w.sets], both[w.sets:]


@dataclass(frozen=True)
class Summary:
    """Per-attribute scores of one prediction set with their intervals, and the means."""
    scores: list[AttributeScore]
    accuracy_intervals: list[stats.Interval]        # Wilson
    balanced_intervals: list[stats.Interval]        # bootstrap percentile
    mean_accuracy: float
    mean_accuracy_interval: stats.Interval          # bootstrap percentile
    mean_balanced_accuracy: float
    mean_balanced_interval: stats.Interval
    resamples: int
    seed: int

    def to_json(self) -> dict:
        pct = lambda v: round(100 * v, 4)
        span = lambda i: [pct(i.lo), pct(i.hi)]
        return {"mean_accuracy": pct(self.mean_accuracy), "mean_accuracy_ci": span(self.mean_accuracy_interval),
                "mean_balanced_accuracy": pct(self.mean_balanced_accuracy),
                "mean_balanced_accuracy_ci": span(self.mean_balanced_interval),
                "confidence": stats.CONFIDENCE, "accuracy_interval": "Wilson score",
                "balanced_and_mean_interval": "bootstrap over test images, percentile",
                "bootstrap_resamples": self.resamples, "bootstrap_seed": self.seed}


def summarize(probs, labels, names: list[str], resamples: int = stats.RESAMPLES,
              seed: int = stats.SEED) -> Summary:
    """Scores, Wilson intervals and the bootstrap intervals of one prediction set."""
    probs, labels = check_predictions(probs, labels, names)
    scores = score(probs, labels, names)
    acc, bal = bootstrap_rates([decide(probs) == labels], labels, resamples, seed)
    return Summary(scores, [s.accuracy_interval() for s in scores],
                   [stats.percentile_interval(b) for b in bal[0]],
                   mean_accuracy(scores), stats.percentile_interval(acc[0].mean(axis=0)),
                   mean_balanced_accuracy(scores), stats.percentile_interval(bal[0].mean(axis=0)),
                   resamples, seed)
