"""Metrics on hand-made predictions whose answers are worked out by hand."""
from __future__ import annotations

import re

import numpy as np
import pytest

from g2s_caffe.core.evaluation import metrics
from g2s_caffe.core.errors import G2SError


def test_accuracy_and_balanced_accuracy_by_hand():
    # attribute A: labels 1 1 1 0 0 0 0 0 0 0 (3 pos, 7 neg)
    #   preds      1 0 0 0 0 0 0 0 0 1  -> tp=1 fn=2 tn=6 fp=1; acc 7/10, TPR 1/3, TNR 6/7
    # attribute B: all predictions right -> acc 1, bal 1
    labels = np.array([[1, 0], [1, 1], [1, 0], [0, 1], [0, 0], [0, 1], [0, 0], [0, 0], [0, 1], [0, 0]])
    probs_a = np.array([0.9, 0.2, 0.49, 0.1, 0.3, 0.0, 0.4, 0.2, 0.1, 0.5])   # 0.5 counts as positive
    probs_b = np.where(labels[:, 1] == 1, 0.8, 0.3)
    s = metrics.score(np.stack([probs_a, probs_b], 1), labels, ["A", "B"])
    a, b = s
    assert (a.tp, a.fn, a.tn, a.fp, a.positives, a.n) == (1, 2, 6, 1, 3, 10)
    assert a.accuracy == pytest.approx(0.7)
    assert a.tpr == pytest.approx(1 / 3) and a.tnr == pytest.approx(6 / 7)
    assert a.balanced_accuracy == pytest.approx((1 / 3 + 6 / 7) / 2)
    assert b.accuracy == 1.0 and b.balanced_accuracy == 1.0
    assert metrics.mean_accuracy(s) == pytest.approx(0.85)
    assert metrics.mean_balanced_accuracy(s) == pytest.approx(((1 / 3 + 6 / 7) / 2 + 1) / 2)


def test_majority_vote_scores_high_accuracy_but_half_balanced_accuracy():
    labels = np.array([1] + [0] * 19)
    s, = metrics.score(np.zeros(20), labels, ["Bald"])
    assert s.accuracy == pytest.approx(0.95)
    assert s.balanced_accuracy == pytest.approx(0.5)


def test_absent_class_uses_the_present_class_rate():
    s, = metrics.score(np.array([0.9, 0.9, 0.1, 0.2]), np.zeros(4, int), ["Never"])
    assert s.one_class and s.tpr is None
    assert s.tnr == 0.5 and s.balanced_accuracy == 0.5 and s.accuracy == 0.5
    s, = metrics.score(np.array([0.9, 0.6, 0.7]), np.ones(3, int), ["Always"])
    assert s.one_class and s.tnr is None and s.balanced_accuracy == 1.0


@pytest.mark.parametrize("probs,labels,names,msg", [
    (np.zeros((3, 2)), np.zeros((3, 1)), ["a", "b"], "differ in shape"),
    (np.zeros((3, 2)), np.zeros((3, 2)), ["a"], "2 attribute columns but 1 names"),
    (np.full((2, 1), 1.5), np.zeros((2, 1)), ["a"], "in [0, 1]"),
    (np.full((2, 1), np.nan), np.zeros((2, 1)), ["a"], "finite"),
    (np.zeros((2, 1)), np.array([[0], [-1]]), ["a"], "0/1"),
    (np.zeros((0, 1)), np.zeros((0, 1)), ["a"], "no images"),
])
def test_bad_inputs_are_clear_errors(probs, labels, names, msg):
    with pytest.raises(G2SError, match=re.escape(msg)):
        metrics.score(probs, labels, names)
