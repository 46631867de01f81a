"""The LNets+ANet SVM stage (g2s_caffe/methods/anet/svm.py) on features with a known answer:
every attribute is a known linear rule of the patch features, so a correct stage recovers it;
the held-out part is whole identities; p >= 0.5 is exactly the SVM's sign; the one-class rule."""
from __future__ import annotations

import numpy as np
import pytest

from g2s_caffe.core.evaluation import metrics
from g2s_caffe.methods.anet import params as hp
from g2s_caffe.methods.anet import svm

D, P = 12, 9
SETTINGS = svm.SVMSettings(c_grid=hp.SVM_C_GRID, held_out_fraction=hp.SVM_HELD_OUT_FRACTION, seed=3)


def known_answer(n: int, rng, w: np.ndarray, b: np.ndarray, people: int = 20):
    """Features (n, P, D): per image a vector, each patch a noisy copy (small misalignments);
    attribute t = [w_t . image vector + b_t > 0], with a margin (images too near the plane are
    moved off it)."""
    base = rng.normal(size=(n, D)) * 2 + 5            # not centred: the standardisation matters
    s = (base - 5) @ w.T + b
    base += 0.6 * np.sign(s[:, :1]) * w[0] / np.linalg.norm(w[0])   # a margin for attribute 0
    s = (base - 5) @ w.T + b
    labels = (s > 0).astype(np.int64)
    feats = base[:, None, :] + rng.normal(scale=0.3, size=(n, P, D))
    groups = np.arange(n) % people + 1000
    return feats.astype(np.float32), labels, groups


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, D))
    b = np.array([0.0, 1.5, -0.5])
    feats, labels, groups = known_answer(400, rng, w, b)
    bank, facts = svm.train_bank(feats, labels, ["A", "B", "C"], groups, SETTINGS, show=False)
    test = known_answer(400, np.random.default_rng(1), w, b)
    return bank, facts, (feats, labels, groups), test, w


def test_svms_recover_a_known_linear_rule(trained):
    bank, facts, _, (tf, ty, _), w = trained
    pred = metrics.decide(bank.probs(tf))
    acc = (pred == ty).mean(axis=0)
    assert acc[0] >= 0.97 and acc.min() >= 0.9, acc
    # the recovered direction is the rule's (in the raw feature space: coef / scale)
    direction = bank.svms[0].coef / bank.scaler.scale
    cos = direction @ w[0] / np.linalg.norm(direction) / np.linalg.norm(w[0])
    assert cos > 0.95, cos
    for s in bank.svms:
        assert s.C in hp.SVM_C_GRID and s.constant == svm.NO_CONSTANT and s.converged
        assert set(s.search) == set(hp.SVM_C_GRID) and s.held_out_accuracy == max(s.search.values())
        assert s.held_out_accuracy >= 0.85
    assert facts["held_out_by"] == "identity" and facts["patches"] == P


def test_the_held_out_part_is_whole_identities_and_reproducible():
    groups = np.repeat(np.arange(30), 7)
    mask, by = svm.held_out_mask(len(groups), groups, 0.2, seed=5)
    assert by == "identity"
    for g in np.unique(groups):
        assert len(set(mask[groups == g])) == 1          # no person on both sides
    assert 0.15 <= mask.mean() <= 0.3
    again, _ = svm.held_out_mask(len(groups), groups, 0.2, seed=5)
    assert np.array_equal(mask, again)
    img, by2 = svm.held_out_mask(50, None, 0.2, seed=5)
    assert by2 == "image" and img.sum() == 10
    one, by3 = svm.held_out_mask(10, np.zeros(10), 0.2, seed=5)       # a single person: by image
    assert by3 == "image" and 0 < one.sum() < 10


def test_prediction_is_the_mean_patch_score_and_p_half_is_the_sign(trained):
    bank, _, (feats, _, _), _, _ = trained
    x = bank.scaler(feats)
    by_hand = np.stack([(x @ s.coef + s.intercept).mean(axis=1) for s in bank.svms], axis=1)
    assert np.allclose(bank.scores(feats), by_hand)
    scores = np.array([-3.0, -1e-300, 0.0, 1e-300, 2.0, -1e-17, 1e-17])
    p = svm.score_to_prob(scores)
    assert np.array_equal(metrics.decide(p), (scores > 0).astype(int))     # LinearSVC's rule: > 0
    assert np.all((p >= 0) & (p <= 1))


def test_one_class_attribute_predicts_its_class_and_is_flagged():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(60, P, D)).astype(np.float32)
    labels = np.stack([(feats[:, 0, 0] > 0).astype(int), np.ones(60, int), np.zeros(60, int)], axis=1)
    bank, _ = svm.train_bank(feats, labels, ["A", "Always", "Never"], None, SETTINGS, show=False)
    assert bank.one_class == {"Always": 1, "Never": 0}
    always, never = bank.svms[1], bank.svms[2]
    assert always.C is None and "one class only" in always.note and never.constant == 0
    p = bank.probs(rng.normal(size=(30, P, D)))
    assert np.all(metrics.decide(p[:, 1]) == 1) and np.all(metrics.decide(p[:, 2]) == 0)


def test_a_rare_attribute_whose_fit_part_has_one_class_falls_back_to_the_default_c():
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(50, P, D)).astype(np.float32)
    groups = np.repeat(np.arange(10), 5)
    held, _ = svm.held_out_mask(50, groups, SETTINGS.held_out_fraction, SETTINGS.seed)
    y = np.zeros(50, int)
    y[np.flatnonzero(held)[:2]] = 1            # the only positives are in the held-out part
    bank, _ = svm.train_bank(feats, y[:, None], ["Rare"], groups, SETTINGS, show=False)
    s = bank.svms[0]
    assert s.C == svm.FALLBACK_C and s.held_out_accuracy is None and "not searched" in s.note
    assert s.constant == svm.NO_CONSTANT      # an SVM is still trained on the whole split


def test_saved_without_pickle_and_loaded_back_identically(trained, tmp_path):
    bank, _, (feats, _, _), _, _ = trained
    path = tmp_path / "svm.npz"
    path.write_bytes(bank.to_bytes())
    with np.load(path, allow_pickle=False) as z:           # no object arrays
        assert {"coef", "intercept", "mean", "scale", "C", "held_out_accuracy", "constant"} <= set(z.files)
    back = svm.load_bank(path)
    assert back.attributes == bank.attributes
    assert np.array_equal(back.scores(feats), bank.scores(feats))
    one = tmp_path / "one.npz"
    one.write_bytes(svm.attribute_to_bytes(bank.svms[1]))
    again = svm.attribute_from_file(one)
    assert again.C == bank.svms[1].C and np.array_equal(again.coef, bank.svms[1].coef)
    assert again.search == bank.svms[1].search
