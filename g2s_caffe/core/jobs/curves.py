"""A job's training curves from its Caffe log: curves.csv (long format) and curves.png.

CSV columns: phase (train|test), iteration, name (loss, lr, a Train/Test net output such as
accuracy_Smiling), value.  The PNG has three panels: training loss, learning rate and the
mean of the TEST accuracies.  Both are written atomically.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.jobs.progress import LogRecord, parse_log


def rows(rec: LogRecord) -> list[tuple[str, int, str, float]]:
    out = []
    for phase, table in (("train", rec.train), ("test", rec.test)):
        for it in sorted(table):
            for name, value in sorted(table[it].items()):
                out.append((phase, it, name, value))
    return out


def write_curves(log: Path, out_dir: Path, title: str) -> tuple[Path, Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = parse_log(Path(log).read_text(errors="replace"))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["phase", "iteration", "name", "value"])
    w.writerows(rows(rec))
    csv_path, png_path = Path(out_dir) / "curves.csv", Path(out_dir) / "curves.png"
    write_atomic(csv_path, buf.getvalue().encode())

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, label in ((axes[0], "loss", "training loss (smoothed)"), (axes[1], "lr", "learning rate")):
        pts = sorted((it, r[key]) for it, r in rec.train.items() if key in r)
        if pts:
            ax.plot(*zip(*pts))
        ax.set_title(label)
        ax.set_xlabel("iteration")
    acc = sorted((it, sum(v for k, v in r.items() if k.startswith("accuracy")) /
                  max(1, sum(1 for k in r if k.startswith("accuracy"))))
                 for it, r in rec.test.items() if any(k.startswith("accuracy") for k in r))
    if acc:
        axes[2].plot(*zip(*acc), marker="o")
    axes[2].set_title("TEST accuracy (mean over outputs)")
    axes[2].set_xlabel("iteration")
    fig.suptitle(title)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    plt.close(fig)
    write_atomic(png_path, png.getvalue())
    return csv_path, png_path
