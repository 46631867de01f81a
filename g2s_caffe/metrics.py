"""Accuracy and balanced accuracy of binary attribute predictions.

Balanced accuracy is the mean of the true-positive rate and the true-negative rate (the
LFWA+ metric of the CelebA paper); it matters because most CelebA attributes are rare, so
always answering "no" already scores high plain accuracy.  When one class is absent from
the labels its rate is undefined: balanced accuracy is then the rate of the class that is
present (and reported with ``one_class=True``), never a silent 0 or NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import G2SError


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
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n

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


def _check(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
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
    probs, labels = _check(probs, labels, names)
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
