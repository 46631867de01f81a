"""The per-image prediction file every evaluated method writes, and pairing two of them.

One file per (method or run, split): a numpy ``.npz`` with four arrays, whatever produced it
(`g2s eval` for G2S runs, the LNets+ANet baseline, numbers from another tool)::

    keys        (N,)   str      one id per test image, unique.  Methods evaluated on the same
                                prepared split use its LMDB keys ``<index>_<image name>``
                                (g2s_caffe/core/layout.py), so their files pair image by image.
    attributes  (T,)   str      attribute names: the column order of probs and labels
    probs       (N, T) float    P(attribute present) in [0, 1] (float32 or float64); the
                                decision is probs >= 0.5 (metrics.decide)
    labels      (N, T) 0/1      the ground truth

``g2s compare`` bootstraps means and runs paired tests from these files alone (the results
CSV names each run's file in its ``predictions`` column).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.atomic import write_atomic

ARRAYS = ("keys", "attributes", "probs", "labels")


@dataclass(frozen=True)
class Predictions:
    source: str               # where it was read from (for messages)
    keys: list[str]
    attributes: list[str]
    probs: np.ndarray         # (N, T)
    labels: np.ndarray        # (N, T) int64 0/1

    def correct(self) -> np.ndarray:
        """(N, T) bool: the decision equals the label."""
        from g2s_caffe.core.evaluation.metrics import decide

        return decide(self.probs) == self.labels

    def columns(self, names: list[str]) -> "Predictions":
        """The same images, only the attributes ``names`` in that order."""
        missing = [n for n in names if n not in self.attributes]
        if missing:
            raise G2SError(f"{self.source}: no predictions for attribute(s) {', '.join(missing)} "
                           f"(it has {', '.join(self.attributes)})")
        cols = [self.attributes.index(n) for n in names]
        return Predictions(self.source, self.keys, list(names), self.probs[:, cols], self.labels[:, cols])

    def rows(self, keys: list[str]) -> "Predictions":
        """The same attributes, only the images ``keys`` in that order (all must be present)."""
        pos = {k: i for i, k in enumerate(self.keys)}
        idx = [pos[k] for k in keys]
        return Predictions(self.source, list(keys), self.attributes, self.probs[idx], self.labels[idx])


def checked(source: str, keys, attributes, probs, labels) -> Predictions:
    """A Predictions after checking shapes, ranges and unique keys (errors name ``source``)."""
    from g2s_caffe.core.evaluation.metrics import check_predictions

    keys = [str(k) for k in np.asarray(keys).ravel()]
    attributes = [str(a) for a in np.asarray(attributes).ravel()]
    try:
        p, y = check_predictions(probs, labels, attributes)
    except G2SError as e:
        raise G2SError(f"{source}: {e}") from None
    if len(keys) != p.shape[0]:
        raise G2SError(f"{source}: {len(keys)} keys for {p.shape[0]} rows of probabilities")
    if len(set(keys)) != len(keys):
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise G2SError(f"{source}: key {dup!r} appears more than once; keys must name one image each")
    if len(set(attributes)) != len(attributes):
        raise G2SError(f"{source}: an attribute name appears twice in 'attributes'")
    return Predictions(source, keys, attributes, p, y)


def save_predictions(path: Path, keys, attributes, probs, labels) -> Path:
    """Write the .npz atomically, after the same checks as reading it."""
    pred = checked(str(path), keys, attributes, probs, labels)
    # Stored as computed (Caffe's float32 stays float32): no decision moves across 0.5.
    probs = pred.probs.astype(np.float32 if np.asarray(probs).dtype == np.float32 else np.float64)
    buf = io.BytesIO()
    np.savez_compressed(buf, keys=np.asarray(pred.keys), attributes=np.asarray(pred.attributes),
                        probs=probs, labels=pred.labels.astype(np.uint8))
    return write_atomic(Path(path), buf.getvalue())


def load_predictions(path: Path) -> Predictions:
    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: no such prediction file (`g2s eval` writes RUNS/<run>/eval/<split>/probs.npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [a for a in ARRAYS if a not in z.files]
            if missing:
                raise G2SError(f"{path}: no array(s) {', '.join(missing)}; a prediction file holds "
                               f"{', '.join(ARRAYS)} (see g2s_caffe/core/evaluation/predictions.py)")
            arrays = {a: z[a] for a in ARRAYS}
    except (OSError, ValueError) as e:
        raise G2SError(f"{path}: not a readable .npz prediction file ({e})") from e
    return checked(str(path), **arrays)


def pair(a: Predictions, b: Predictions) -> tuple[Predictions, Predictions]:
    """A and B on the same images and attributes, B reordered to A's order; a clear error
    when the image keys, the attribute names or the labels of the same image differ."""
    if set(a.attributes) != set(b.attributes):
        only_a = [n for n in a.attributes if n not in b.attributes]
        only_b = [n for n in b.attributes if n not in a.attributes]
        raise G2SError(f"{a.source} and {b.source} predict different attributes (only in the first: "
                       f"{', '.join(only_a) or 'none'}; only in the second: {', '.join(only_b) or 'none'}); "
                       "a paired comparison needs the same attribute list")
    set_b = set(b.keys)
    only_a = [k for k in a.keys if k not in set_b]
    if only_a or len(a.keys) != len(b.keys):
        set_a = set(a.keys)
        only_b = [k for k in b.keys if k not in set_a]
        raise G2SError(f"{a.source} ({len(a.keys)} images) and {b.source} ({len(b.keys)} images) are not the "
                       f"same test images: {len(only_a)} key(s) only in the first (e.g. {only_a[:3]}), "
                       f"{len(only_b)} only in the second (e.g. {only_b[:3]}); evaluate both on the same "
                       "prepared split")
    b = b.rows(a.keys).columns(a.attributes)
    differ = np.argwhere(a.labels != b.labels)
    if differ.size:
        i, t = differ[0]
        raise G2SError(f"{a.source} and {b.source} give image {a.keys[i]} different labels for "
                       f"{a.attributes[t]} ({len(differ)} such); they were not evaluated on the same data")
    return a, b
