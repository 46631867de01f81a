"""The paper's published numbers (Tables 1-3), read from package data.

The CSVs under ``g2s_caffe/data/published/`` keep every cell as printed text, so the printed
precision of each number is known ("94" has 0 decimals, "94.8" has 1); that precision
decides whether a printed average "agrees" with the mean of its column.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from g2s_caffe.core.errors import G2SError

# Method column id -> how the paper labels it (with its reference number in the paper).
METHOD_LABELS: dict[str, str] = {
    "facetracer": "FaceTracer [9]",
    "panda": "PANDA [23]",
    "lnets_anet": "LNets+ANet [13]",
    "moon": "MOON [16]",
    "walk_and_learn": "Walk-and-Learn [19]",
    "affact": "AFFACT [4]",
    "kalayeh": "Kalayeh et al. [6]",
    "ours": "Sun & Yu (paper)",
}
PAPER = "ours"  # the column this project reproduces


def column_of_method(method: str | None) -> str:
    """The published column a run of ``method`` (Run.method) stands next to: the method's own
    (core/registry.py, Method.published_column); numbers of no named method stand next to
    the paper's own column."""
    from g2s_caffe.core import registry

    if not method:
        return PAPER
    columns = {m.id: m.published_column for m in registry.methods() if m.published_column}
    if method not in columns:
        raise G2SError(f"method {method!r}: no published column (known: {', '.join(columns)})")
    return columns[method]
TABLE_FILES = {"celeba": "table2_celeba.csv", "lfwa": "table3_lfwa.csv"}
TABLE_NAMES = {"celeba": "Table 2", "lfwa": "Table 3"}
STEPS_FILE = "table1_steps.csv"
AVERAGE = "Average"


def data_dir() -> Path:
    return Path(str(resources.files("g2s_caffe") / "data" / "published"))


@dataclass(frozen=True)
class Cell:
    """One printed number: its text as printed, its value, its number of decimals."""
    text: str

    @property
    def value(self) -> float:
        return float(self.text)

    @property
    def decimals(self) -> int:
        return len(self.text.split(".", 1)[1]) if "." in self.text else 0


def _cell(text: str, where: str) -> Cell:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise G2SError(f"{where}: {text!r} is not a number") from None
    if not (0 <= d <= 100):
        raise G2SError(f"{where}: {text} is not a percentage in [0, 100]")
    return Cell(text)


@dataclass(frozen=True)
class PublishedTable:
    """Table 2 (CelebA) or Table 3 (LFWA): methods x 40 attributes + printed averages."""
    dataset: str
    source: str
    methods: tuple[str, ...]
    attributes: tuple[str, ...]
    paper_labels: dict[str, str]            # attribute -> row label as printed
    cells: dict[str, dict[str, Cell]]       # method -> attribute -> cell
    averages: dict[str, Cell]               # method -> printed average

    def value(self, method: str, attribute: str) -> float:
        return self.cells[method][attribute].value

    def column_mean(self, method: str) -> float:
        col = self.cells[method]
        return sum(Decimal(col[a].text) for a in self.attributes).__float__() / len(self.attributes)

    def average_disagreements(self) -> list[tuple[str, str, float]]:
        """(method, printed average, mean of the printed column) where the printed average
        is not the column mean to the average's printed precision (half a unit of its last
        digit, inclusive, so either rounding of an exact tie counts as agreeing)."""
        out = []
        for m in self.methods:
            avg = self.averages[m]
            col = self.cells[m]
            mean = sum(Decimal(col[a].text) for a in self.attributes) / len(self.attributes)
            half = Decimal(1).scaleb(-avg.decimals) / 2
            if abs(mean - Decimal(avg.text)) > half:
                out.append((m, avg.text, float(mean)))
        return out


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise G2SError(f"{path}: published table missing from the package; reinstall g2s-caffe")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = []
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise G2SError(f"{path}:{reader.line_num}: wrong number of columns")
            rows.append((reader.line_num, row))
    return rows


def load_table(dataset: str) -> PublishedTable:
    if dataset not in TABLE_FILES:
        raise G2SError(f"no published table for dataset {dataset!r} (known: {', '.join(TABLE_FILES)})")
    path = data_dir() / TABLE_FILES[dataset]
    rows = _read_csv(path)
    header = list(rows[0][1]) if rows else []
    if header[:2] != ["attribute", "paper_label"]:
        raise G2SError(f"{path}:1: header must start with attribute,paper_label")
    methods = tuple(header[2:])
    unknown = [m for m in methods if m not in METHOD_LABELS]
    if unknown:
        raise G2SError(f"{path}:1: unknown method column(s) {unknown}")
    attrs, labels = [], {}
    cells: dict[str, dict[str, Cell]] = {m: {} for m in methods}
    averages: dict[str, Cell] = {}
    for line, row in rows:
        name = row["attribute"]
        if name == AVERAGE:
            averages = {m: _cell(row[m], f"{path}:{line}: {m}") for m in methods}
            continue
        if name in labels:
            raise G2SError(f"{path}:{line}: duplicate attribute {name!r}")
        attrs.append(name)
        labels[name] = row["paper_label"]
        for m in methods:
            cells[m][name] = _cell(row[m], f"{path}:{line}: {m}")
    if not averages:
        raise G2SError(f"{path}: no {AVERAGE} row")
    return PublishedTable(dataset, str(path), methods, tuple(attrs), labels, cells, averages)


@dataclass(frozen=True)
class StepsRow:
    """One row of Table 1: which steps were combined, and the average accuracy per dataset."""
    steps: tuple[int, ...]
    paper_label: str
    accuracy: dict[str, Cell]   # dataset -> printed average accuracy (%)

    @property
    def run_name(self) -> str:
        """The run directory name `g2s train` uses for this combination."""
        return "steps_" + "_".join(str(s) for s in self.steps)


def load_steps() -> list[StepsRow]:
    path = data_dir() / STEPS_FILE
    out = []
    for line, row in _read_csv(path):
        try:
            steps = tuple(int(s) for s in row["steps"].split("+"))
        except ValueError:
            raise G2SError(f"{path}:{line}: steps {row['steps']!r} must look like 1+2+3") from None
        acc = {ds: _cell(row[ds], f"{path}:{line}: {ds}") for ds in TABLE_FILES}
        out.append(StepsRow(steps, row["paper_label"], acc))
    return out


def steps_of_run(run_name: str) -> tuple[int, ...] | None:
    """``steps_1_3`` -> (1, 3); None for a name that is not a step combination."""
    if not run_name.startswith("steps_"):
        return None
    try:
        steps = tuple(int(s) for s in run_name[len("steps_"):].split("_"))
    except ValueError:
        return None
    return steps if steps and all(s in (1, 2, 3) for s in steps) else None
