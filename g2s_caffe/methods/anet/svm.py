"""The SVM stage (§2.2, Fig. 2(d)): one linear SVM per attribute on ANet's patch features.

Training, per attribute, on the SVM split's features (N images x P patches x D, features.py):

* every patch is a sample with its image's label (the paper: "each feature vector is adopted
  to train SVM classifier"); the features are standardised with the mean and standard
  deviation of the SVM split (one scaler for every attribute);
* scikit-learn's ``LinearSVC`` (LIBLINEAR, which the paper cites), L2-regularised squared
  hinge loss, solved in the primal (``dual=False``: far more samples than dimensions);
* C from ``c_grid`` by the image-level accuracy (the prediction rule below) on a held-out
  part of the split — whole identities when the split's identities are known, so no person
  is on both sides, else images — drawn with a fixed seed; ties go to the smaller C (the
  stronger regularisation).  The chosen C is then refit on the whole split.

Prediction: the mean of the SVM's decision values over the image's patches (the paper:
"averaging the SVM scores over all the patches"), and p = sigmoid(mean score), so that
``metrics.decide``'s p >= 0.5 is exactly LinearSVC's own rule "score > 0 -> positive" (a
score of 0 or a negative score too close to 0 for float64 maps just below 0.5).  p is NOT a
calibrated probability; it only carries the decision and its margin.

One class only.  An attribute whose SVM-split labels are all 0 (or all 1) cannot train an SVM.
Rule (docs/choices.md, ANet): it predicts that class for every image, with the constant decision value -1
(or +1, the margin of a class in LIBLINEAR's scaling), and it is flagged: ``constant`` in the
.npz, the run manifest's ``stages["svm"]["one_class"]``, evaluation's lnets_anet.json and a
printed message.  When the whole split has both classes but the part left for fitting during
the C search has one (a very rare attribute), C is not searched: FALLBACK_C, flagged as such.

Saved as .npz (no pickle): attributes, mean, scale, coef (T, D), intercept, C, held-out
accuracy, constant (-1 = a trained SVM, else the class), converged, notes.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from g2s_caffe.core.errors import G2SError

LOSS = "squared_hinge"      # LIBLINEAR's L2-loss SVM (LinearSVC's default)
PENALTY = "l2"
DUAL = False                # primal: n_samples (images x patches) >> n_features (D)
TOL = 1e-4
FALLBACK_C = 1.0            # LIBLINEAR's own default, when C cannot be searched (see the docstring)
CONSTANT_SCORE = 1.0        # |decision value| of a one-class attribute's constant prediction
NO_CONSTANT = -1


@dataclass(frozen=True)
class SVMSettings:
    c_grid: tuple[float, ...]
    held_out_fraction: float
    max_iter: int = 5000
    seed: int = 1701

    def to_json(self) -> dict:
        return {"c_grid": list(self.c_grid), "held_out_fraction": self.held_out_fraction,
                "max_iter": self.max_iter, "seed": self.seed, "loss": LOSS, "penalty": PENALTY,
                "dual": DUAL, "tol": TOL, "fallback_c": FALLBACK_C, "constant_score": CONSTANT_SCORE}


@dataclass
class AttributeSVM:
    name: str
    coef: np.ndarray                 # (D,) on standardised features
    intercept: float
    C: float | None                  # None for a one-class attribute
    held_out_accuracy: float | None  # of the chosen C; None when not searched
    constant: int = NO_CONSTANT      # the class predicted for every image, or NO_CONSTANT
    converged: bool = True
    note: str = ""
    search: dict = field(default_factory=dict)   # C -> held-out accuracy


# ------------------------------------------------------------------ held-out part
def held_out_mask(n: int, groups: np.ndarray | None, fraction: float, seed: int) -> tuple[np.ndarray, str]:
    """(bool mask of the held-out images, "identity" | "image"): whole groups (identities) in a
    seeded random order until ``fraction`` of the images, else a seeded random image subset."""
    rng = np.random.default_rng(seed)
    want = max(1, int(round(fraction * n)))
    if groups is not None:
        people = np.unique(groups)
        if len(people) >= 2:
            mask = np.zeros(n, bool)
            for p in rng.permutation(people):
                if mask.sum() >= want or mask.sum() + np.sum(groups == p) >= n:
                    break
                mask |= groups == p
            if 0 < mask.sum() < n:
                return mask, "identity"
    mask = np.zeros(n, bool)
    mask[rng.permutation(n)[:min(want, n - 1)]] = True
    return mask, "image"


# ------------------------------------------------------------------ fitting
class Standardizer:
    """Mean and standard deviation per dimension (a zero deviation counts as 1)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray):
        self.mean, self.scale = np.asarray(mean, np.float64), np.asarray(scale, np.float64)

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        x = x.reshape(-1, x.shape[-1]).astype(np.float64)
        sd = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(sd > 0, sd, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mean) / self.scale


def _fit(x: np.ndarray, y: np.ndarray, C: float, s: SVMSettings) -> tuple[np.ndarray, float, bool]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=C, loss=LOSS, penalty=PENALTY, dual=DUAL, tol=TOL, max_iter=s.max_iter,
                    random_state=s.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svm.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    # classes_ are [0, 1]: decision > 0 means class 1
    return svm.coef_[0].astype(np.float64), float(svm.intercept_[0]), converged


def image_scores(x: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """Mean decision value over the patches: x (N, P, D) standardised -> (N,)."""
    return (x @ coef + intercept).mean(axis=1)


def train_attribute(name: str, x: np.ndarray, y: np.ndarray, held: np.ndarray, s: SVMSettings) -> AttributeSVM:
    """One attribute's SVM: x (N, P, D) standardised features, y (N,) 0/1 image labels."""
    n, p, d = x.shape
    classes = np.unique(y)
    if len(classes) == 1:
        c = int(classes[0])
        return AttributeSVM(name, np.zeros(d), CONSTANT_SCORE if c else -CONSTANT_SCORE, None, None, constant=c,
                            note=f"one class only in the SVM split (all {n} images are {c}): predicts {c} for "
                                 "every image (constant decision value), no SVM trained")
    flat = lambda mask: (x[mask].reshape(-1, d), np.repeat(y[mask], p))
    fit_part = ~held
    search, converged, note = {}, True, ""
    if len(np.unique(y[fit_part])) == 2:
        xf, yf = flat(fit_part)
        for C in s.c_grid:
            coef, b, ok = _fit(xf, yf, C, s)
            converged &= ok
            search[float(C)] = float(np.mean((image_scores(x[held], coef, b) > 0) == (y[held] == 1)))
        best = max(search.values())
        C = min(c for c, a in search.items() if a == best)     # ties: the stronger regularisation
        held_acc = search[C]
    else:
        C, held_acc = FALLBACK_C, None
        note = (f"the images left for fitting in the C search hold one class only: C = {FALLBACK_C} "
                "(LIBLINEAR's default), not searched")
    xa, ya = flat(np.ones(n, bool))
    coef, b, ok = _fit(xa, ya, C, s)
    converged &= ok
    if not converged:
        note = (note + "; " if note else "") + f"LIBLINEAR did not converge in {s.max_iter} iterations (svm.max_iter)"
    return AttributeSVM(name, coef, b, float(C), held_acc, converged=converged, note=note, search=search)


# ------------------------------------------------------------------ the bank of T SVMs
@dataclass
class SVMBank:
    attributes: list[str]
    scaler: Standardizer
    svms: list[AttributeSVM]

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(N, T) mean decision value over the patches of features (N, P, D)."""
        x = self.scaler(features)
        coef = np.stack([s.coef for s in self.svms], axis=1)          # (D, T)
        b = np.array([s.intercept for s in self.svms])
        return (x @ coef + b).mean(axis=1)

    def probs(self, features: np.ndarray) -> np.ndarray:
        """(N, T) sigmoid of the mean score, >= 0.5 exactly when the score is > 0."""
        return score_to_prob(self.scores(features))

    @property
    def one_class(self) -> dict[str, int]:
        return {s.name: s.constant for s in self.svms if s.constant != NO_CONSTANT}

    def summary(self) -> dict:
        return {s.name: {"C": s.C, "held_out_accuracy": s.held_out_accuracy, "constant": s.constant
                         if s.constant != NO_CONSTANT else None, "converged": s.converged, "note": s.note,
                         "search": {str(c): a for c, a in s.search.items()}} for s in self.svms}

    def to_bytes(self) -> bytes:
        nan = lambda v: np.nan if v is None else v
        buf = io.BytesIO()
        np.savez_compressed(buf, attributes=np.asarray(self.attributes), mean=self.scaler.mean,
                            scale=self.scaler.scale, coef=np.stack([s.coef for s in self.svms]),
                            intercept=np.array([s.intercept for s in self.svms]),
                            C=np.array([nan(s.C) for s in self.svms], np.float64),
                            held_out_accuracy=np.array([nan(s.held_out_accuracy) for s in self.svms], np.float64),
                            constant=np.array([s.constant for s in self.svms], np.int64),
                            converged=np.array([s.converged for s in self.svms]),
                            notes=np.asarray([s.note for s in self.svms]))
        return buf.getvalue()


def score_to_prob(scores: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    scores = np.asarray(scores, np.float64)
    p = expit(scores)
    below = np.nextafter(0.5, 0.0)
    return np.where((scores <= 0) & (p >= 0.5), below, p)


def load_bank(path: Path) -> SVMBank:
    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: no SVM file; run `g2s anet` (its SVM stage writes it)")
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise G2SError(f"{path}: not a readable SVM .npz ({e}); rerun `g2s anet`") from e
    need = ("attributes", "mean", "scale", "coef", "intercept", "C", "held_out_accuracy", "constant",
            "converged", "notes")
    missing = [k for k in need if k not in a]
    if missing:
        raise G2SError(f"{path}: no array(s) {', '.join(missing)}; rerun `g2s anet`")
    val = lambda v: None if np.isnan(v) else float(v)
    svms = [AttributeSVM(str(n), a["coef"][t].astype(np.float64), float(a["intercept"][t]), val(a["C"][t]),
                         val(a["held_out_accuracy"][t]), int(a["constant"][t]), bool(a["converged"][t]),
                         str(a["notes"][t])) for t, n in enumerate(a["attributes"])]
    return SVMBank([str(n) for n in a["attributes"]], Standardizer(a["mean"], a["scale"]), svms)


def train_bank(features: np.ndarray, labels: np.ndarray, names: list[str], groups: np.ndarray | None,
               s: SVMSettings, done: dict[str, AttributeSVM] | None = None, on_done=None,
               show: bool = True) -> tuple[SVMBank, dict]:
    """Every attribute's SVM; ``done`` holds ones already trained (a resumed stage), ``on_done(svm)``
    is called after each new one (to save it).  Returns (bank, facts about the held-out part)."""
    from tqdm import tqdm

    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 3 or labels.shape != (features.shape[0], len(names)):
        raise G2SError(f"SVM stage: features {features.shape} and labels {labels.shape} do not fit "
                       f"{len(names)} attributes")
    scaler = Standardizer.fit(features)
    x = scaler(features)
    held, by = held_out_mask(len(x), groups, s.held_out_fraction, s.seed)
    done = dict(done or {})
    svms = []
    for t, name in enumerate(tqdm(names, desc="SVMs", unit="attr", disable=not show)):
        if name not in done:
            done[name] = train_attribute(name, x, labels[:, t], held, s)
            if on_done:
                on_done(done[name])
        svms.append(done[name])
    return SVMBank(list(names), scaler, svms), {"held_out_by": by, "held_out_images": int(held.sum()),
                                                 "images": int(len(x)), "patches": int(x.shape[1])}


def attribute_to_bytes(a: AttributeSVM) -> bytes:
    import json

    buf = io.BytesIO()
    np.savez(buf, coef=a.coef, meta=np.asarray(json.dumps({
        "name": a.name, "intercept": a.intercept, "C": a.C, "held_out_accuracy": a.held_out_accuracy,
        "constant": a.constant, "converged": a.converged, "note": a.note,
        "search": {str(c): v for c, v in a.search.items()}})))
    return buf.getvalue()


def attribute_from_file(path: Path) -> AttributeSVM:
    import json

    with np.load(path, allow_pickle=False) as z:
        m = json.loads(str(z["meta"]))
        return AttributeSVM(m["name"], z["coef"].astype(np.float64), m["intercept"], m["C"], m["held_out_accuracy"],
                            m["constant"], m["converged"], m["note"], {float(c): v for c, v in m["search"].items()})
