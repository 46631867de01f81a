"""Paired comparison of two methods (or runs) on the same test images: which differences are real.

Both methods' per-image prediction files (g2s_caffe/core/evaluation/predictions.py) are matched by image key
(the same images and attributes, or a clear error).  Per attribute, the exact McNemar test
on the images only one of the two gets right, its p-values adjusted over all attributes
(Holm by default, see stats.DEFAULT_CORRECTION); a difference is "real" when its adjusted
p-value is below stats.ALPHA.  For the means over attributes, a paired bootstrap over the
test images (both methods resampled with the same draws) gives the 95 % interval of the
difference B - A; it is "real" when that interval excludes 0.

`g2s compare RESULTS --paired A B` writes paired_<A>_vs_<B>.{md,csv,png}; the demo's Table 1
uses ``compare_paired`` for "Step 1 alone" vs "Steps 1+2+3".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from g2s_caffe.core.evaluation import metrics, stats
from g2s_caffe.core.evaluation.predictions import Predictions, pair
from g2s_caffe.core.evaluation.tables import error_bars, interval_text


@dataclass(frozen=True)
class PairedAttribute:
    name: str
    n: int
    accuracy_a: float                  # fractions
    accuracy_b: float
    interval_a: stats.Interval         # Wilson
    interval_b: stats.Interval
    only_a: int                        # images A gets right and B wrong
    only_b: int
    p: float                           # exact McNemar
    p_adjusted: float

    @property
    def diff(self) -> float:
        return self.accuracy_b - self.accuracy_a

    def real(self, alpha: float = stats.ALPHA) -> bool:
        return self.p_adjusted < alpha


@dataclass(frozen=True)
class MeanDifference:
    """Means over attributes of A and B with their intervals, and B - A with its paired interval."""
    a: float
    a_interval: stats.Interval
    b: float
    b_interval: stats.Interval
    interval: stats.Interval

    @property
    def diff(self) -> float:
        return self.b - self.a

    @property
    def real(self) -> bool:
        return not self.interval.contains(0.0)


@dataclass(frozen=True)
class PairedComparison:
    name_a: str
    name_b: str
    images: int
    attributes: list[PairedAttribute]
    accuracy: MeanDifference
    balanced: MeanDifference
    correction: str
    alpha: float
    resamples: int
    seed: int

    def real(self) -> list[str]:
        return [a.name for a in self.attributes if a.real(self.alpha)]

    def noise(self) -> list[str]:
        return [a.name for a in self.attributes if not a.real(self.alpha)]


def discordant(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per attribute: images only A gets right, images only B gets right."""
    return (correct_a & ~correct_b).sum(axis=0), (~correct_a & correct_b).sum(axis=0)


def _mean_difference(dist: np.ndarray, point: tuple[float, float]) -> MeanDifference:
    """From (2, T, B) bootstrap distributions of A's and B's per-attribute rates."""
    means = dist.mean(axis=1)                                           # (2, B)
    return MeanDifference(point[0], stats.percentile_interval(means[0]), point[1],
                          stats.percentile_interval(means[1]), stats.percentile_interval(means[1] - means[0]))


def compare_paired(a: Predictions, b: Predictions, name_a: str, name_b: str,
                   correction: str = stats.DEFAULT_CORRECTION, alpha: float = stats.ALPHA,
                   resamples: int = stats.RESAMPLES, seed: int = stats.SEED) -> PairedComparison:
    a, b = pair(a, b)
    ca, cb = a.correct(), b.correct()
    sa = metrics.score(a.probs, a.labels, a.attributes)
    sb = metrics.score(b.probs, b.labels, b.attributes)
    only_a, only_b = discordant(ca, cb)
    p = [stats.mcnemar_exact(x, y) for x, y in zip(only_a, only_b)]
    p_adj = stats.adjust(p, correction)
    attrs = [PairedAttribute(x.name, x.n, x.accuracy, y.accuracy, x.accuracy_interval(), y.accuracy_interval(),
                             int(oa), int(ob), float(pv), float(pa))
             for x, y, oa, ob, pv, pa in zip(sa, sb, only_a, only_b, p, p_adj)]
    acc, bal = metrics.bootstrap_rates([ca, cb], a.labels, resamples, seed)
    return PairedComparison(
        name_a, name_b, len(a.keys), attrs,
        _mean_difference(acc, (metrics.mean_accuracy(sa), metrics.mean_accuracy(sb))),
        _mean_difference(bal, (metrics.mean_balanced_accuracy(sa), metrics.mean_balanced_accuracy(sb))),
        correction, alpha, resamples, seed)


# ------------------------------------------------------------------ output
CSV_COLUMNS = ["attribute", "n", "accuracy_a", "accuracy_a_lo", "accuracy_a_hi", "accuracy_b", "accuracy_b_lo",
               "accuracy_b_hi", "diff", "diff_lo", "diff_hi", "only_a_right", "only_b_right", "p_mcnemar",
               "p_adjusted", "real"]


def _pct(v: float) -> str:
    return f"{100 * v:.4f}"


def csv_rows(c: PairedComparison) -> list[list]:
    """One row per attribute (no per-attribute difference interval: the test is McNemar's), then
    the means with the paired bootstrap interval of the difference."""
    rows = [[x.name, x.n, _pct(x.accuracy_a), _pct(x.interval_a.lo), _pct(x.interval_a.hi), _pct(x.accuracy_b),
             _pct(x.interval_b.lo), _pct(x.interval_b.hi), _pct(x.diff), "", "", x.only_a, x.only_b,
             f"{x.p:.6g}", f"{x.p_adjusted:.6g}", x.real(c.alpha)] for x in c.attributes]
    for label, m in (("mean accuracy", c.accuracy), ("mean balanced accuracy", c.balanced)):
        rows.append([label, c.images, _pct(m.a), _pct(m.a_interval.lo), _pct(m.a_interval.hi), _pct(m.b),
                     _pct(m.b_interval.lo), _pct(m.b_interval.hi), _pct(m.diff), _pct(m.interval.lo),
                     _pct(m.interval.hi), "", "", "", "", m.real])
    return rows


def summary_lines(c: PairedComparison) -> list[str]:
    real, noise = c.real(), c.noise()
    pct = lambda m: interval_text(100 * m.diff, m.interval.scaled(100), signed=True)
    return [
        f"{len(c.attributes)} attributes on {c.images} test images; B = {c.name_b}, A = {c.name_a}; "
        f"per attribute: exact McNemar test, p adjusted by {stats.CORRECTION_LABELS[c.correction]}, real when "
        f"p_adjusted < {c.alpha:g}; means: paired bootstrap over the test images ({c.resamples} resamples, "
        f"seed {c.seed}), real when the {stats.LEVEL} interval of B - A excludes 0.",
        f"real at {100 * c.alpha:g} %: {len(real)} of {len(c.attributes)}"
        + (f" ({', '.join(real)})" if real else "") + "; noise: " + (", ".join(noise) or "none") + ".",
        f"mean accuracy B - A: {pct(c.accuracy)} points ({'real' if c.accuracy.real else 'noise'}); "
        f"mean balanced accuracy B - A: {pct(c.balanced)} points ({'real' if c.balanced.real else 'noise'}).",
    ]


def display_rows(c: PairedComparison) -> tuple[list[str], list[list]]:
    """Titles and rows for Markdown / text: values with their intervals in one cell."""
    titles = ["attribute", f"A: {c.name_a} [{stats.LEVEL} CI]", f"B: {c.name_b} [{stats.LEVEL} CI]", "B - A",
              "only A right", "only B right", "p (McNemar)", f"p ({c.correction})", f"real at {100 * c.alpha:g} %"]
    rows = [[x.name, interval_text(100 * x.accuracy_a, x.interval_a.scaled(100)),
             interval_text(100 * x.accuracy_b, x.interval_b.scaled(100)), f"{100 * x.diff:+.2f}",
             x.only_a, x.only_b, f"{x.p:.3g}", f"{x.p_adjusted:.3g}", "real" if x.real(c.alpha) else "noise"]
            for x in c.attributes]
    for label, m in (("**mean accuracy**", c.accuracy), ("**mean balanced accuracy**", c.balanced)):
        rows.append([label, interval_text(100 * m.a, m.a_interval.scaled(100)),
                     interval_text(100 * m.b, m.b_interval.scaled(100)),
                     interval_text(100 * m.diff, m.interval.scaled(100), signed=True), "", "", "", "",
                     "real" if m.real else "noise"])
    return titles, rows


def plot_paired(c: PairedComparison, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from g2s_caffe.core.atomic import save_figure_atomic

    names = [x.name for x in c.attributes]
    x = np.arange(len(names))
    a = [100 * v.accuracy_a for v in c.attributes]
    b = [100 * v.accuracy_b for v in c.attributes]
    fig, ax = plt.subplots(figsize=(max(7, 0.45 * len(names) + 2), 4.5))
    bar = dict(capsize=2, error_kw={"elinewidth": 0.8, "ecolor": "black"})
    ax.bar(x - 0.2, a, 0.4, yerr=error_bars(a, [v.interval_a.scaled(100) for v in c.attributes]), **bar,
           label=f"A: {c.name_a}")
    ax.bar(x + 0.2, b, 0.4, yerr=error_bars(b, [v.interval_b.scaled(100) for v in c.attributes]), **bar,
           label=f"B: {c.name_b}")
    for i, v in enumerate(c.attributes):
        if v.real(c.alpha):
            ax.text(i, 100 * max(v.interval_a.hi, v.interval_b.hi) + 0.3, "*", ha="center", fontsize=14)
    lo = min(100 * min(v.interval_a.lo, v.interval_b.lo) for v in c.attributes)
    ax.set_ylim(max(0, lo - 5), 104)
    ax.set_xticks(x, names, rotation=35 if len(names) <= 12 else 90, ha="right" if len(names) <= 12 else "center",
                  fontsize=8)
    ax.set_ylabel("accuracy (%)")
    m = c.accuracy
    ax.set_title(f"B - A, mean accuracy: {interval_text(100 * m.diff, m.interval.scaled(100), signed=True)} points; "
                 f"* = real at {100 * c.alpha:g} % (McNemar, {c.correction}); error bars: {stats.LEVEL} Wilson",
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)
