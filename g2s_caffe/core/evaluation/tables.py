"""How numbers with intervals are shown: one cell format for Markdown, aligned text and the
bar charts, shared by `g2s eval`, `g2s compare` and the demo."""
from __future__ import annotations

import numpy as np


def interval_text(value: float | None, interval=None, digits: int = 2, signed: bool = False) -> str:
    """'91.20 [90.81, 91.59]' ('+1.20 [...]' when ``signed``); just the value when there is no
    interval; '' for no value."""
    if value is None:
        return ""
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    if interval is None:
        return text
    return f"{text} [{interval.lo:.{digits}f}, {interval.hi:.{digits}f}]"


def error_bars(values, intervals) -> np.ndarray:
    """(2, K) distances below and above each value, as matplotlib's ``yerr`` wants them; 0
    where a value or its interval is missing."""
    lo, hi = [], []
    for v, i in zip(values, intervals):
        ok = v is not None and i is not None and np.isfinite(v)
        lo.append(max(0.0, v - i.lo) if ok else 0.0)
        hi.append(max(0.0, i.hi - v) if ok else 0.0)
    return np.array([lo, hi])


def cell(v) -> str:
    """A table cell: '' for None, a published number as printed, floats to 2 decimals."""
    if v is None:
        return ""
    if hasattr(v, "text"):
        return v.text
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def markdown(titles: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join(["---"] + ["---:"] * (len(titles) - 1)) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(cell(v) for v in r) + " |")
    return "\n".join(lines) + "\n"


def text_table(titles: list[str], rows: list[list]) -> str:
    cells = [titles] + [[cell(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(titles))]
    out = []
    for k, row in enumerate(cells):
        out.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"


def notes_text(notes: list[str], bullet: str) -> str:
    return "".join(f"{bullet}{n}\n" for n in notes)
