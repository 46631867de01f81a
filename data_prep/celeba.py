"""Read CelebA's release files into ImageRecords, checking everything they say.

Raw ("in the wild") layout under ROOT (the files of the official release, Anno/ and Eval/
may be flattened or not: each file is looked for in ROOT, ROOT/Anno and ROOT/Eval)::

    img_celeba/000001.jpg ...
    list_attr_celeba.txt         count line, 40 names line, then "name v1 .. v40" (-1/1)
    list_eval_partition.txt      "name 0|1|2" (train/val/test)
    list_bbox_celeba.txt         count line, header line, "name x_1 y_1 width height"
    list_landmarks_celeba.txt    count line, header line, "name lx ly rx ry nx ny lmx lmy rmx rmy"
    identity_CelebA.txt          "name identity" (no count, no header), optional: only the
                                 LNets+ANet baseline needs it; without it the prepared
                                 manifest says so and `g2s anet` asks for it

Aligned variant (``aligned=True``): ``img_align_celeba/`` and
``list_landmarks_align_celeba.txt``; that release has no box file, so the reference box is
derived from the 5 landmarks (``align.box_from_landmarks``, see there).

Columns are right-aligned with runs of spaces: every line is split on any white space.
"""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core import layout
from g2s_caffe.core.errors import G2SError

from data_prep.records import DatasetIndex, ImageRecord

SPLIT_CODES = {"0": "train", "1": "val", "2": "test"}
IDENTITY_FILE = layout.CELEBA_IDENTITY_FILE
N_LANDMARK_VALUES = 10


def search_dirs(root: Path) -> tuple[Path, ...]:
    return (root, root / "Anno", root / "Eval")


def find_file(root: Path, name: str, override: Path | None = None) -> Path:
    if override is not None:
        if not Path(override).is_file():
            raise G2SError(f"{override}: no such file (given for {name})")
        return Path(override)
    for d in search_dirs(root):
        if (d / name).is_file():
            return d / name
    raise G2SError(f"{root}: {name} not found (looked in {root}, {root / 'Anno'}, {root / 'Eval'}); "
                   f"download CelebA's annotation files or point at the file with an option")


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-blank lines."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise G2SError(f"{path}: not a text file ({e})") from e
    return [(i, ln.split()) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]


def _count(path: Path, lines, n_rows: int) -> None:
    if not lines:
        raise G2SError(f"{path}: empty file")
    ln, fields = lines[0]
    if len(fields) != 1 or not fields[0].isdigit():
        raise G2SError(f"{path}:{ln}: expected the image count on the first line, got {' '.join(fields)!r}")
    if int(fields[0]) != n_rows:
        raise G2SError(f"{path}:{ln}: says {fields[0]} images but {n_rows} image lines follow; "
                       "the file is truncated or edited")


def _rows(path: Path, lines, n_values: int) -> dict[str, tuple[int, list[str]]]:
    """name -> (line, values); checks the value count and duplicates."""
    out: dict[str, tuple[int, list[str]]] = {}
    for ln, fields in lines:
        if len(fields) != n_values + 1:
            raise G2SError(f"{path}:{ln}: expected an image name and {n_values} value"
                           f"{'s' if n_values != 1 else ''}, got {len(fields) - 1}")
        name = fields[0]
        if name in out:
            raise G2SError(f"{path}:{ln}: image {name} is listed twice (first at line {out[name][0]})")
        out[name] = (ln, fields[1:])
    return out


def _numbers(path: Path, ln: int, values: list[str]) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise G2SError(f"{path}:{ln}: expected numbers, got {' '.join(values)!r}") from None


def read_attributes(path: Path) -> tuple[list[str], dict[str, tuple[int, tuple[int, ...]]]]:
    """(attribute names, name -> (line, 0/1 labels)) of list_attr_celeba.txt."""
    lines = _lines(path)
    if len(lines) < 2:
        raise G2SError(f"{path}: expected a count line and an attribute-names line")
    names = lines[1][1]
    rows = lines[2:]
    _count(path, lines, len(rows))
    table = _rows(path, rows, len(names))
    out = {}
    for name, (ln, values) in table.items():
        bad = [v for v in values if v not in ("-1", "1")]
        if bad:
            raise G2SError(f"{path}:{ln}: attribute value {bad[0]!r} for {name}; values must be -1 or 1")
        out[name] = (ln, tuple(1 if v == "1" else 0 for v in values))
    return names, out


def read_partition(path: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for name, (ln, (code,)) in _rows(path, _lines(path), 1).items():
        if code not in SPLIT_CODES:
            raise G2SError(f"{path}:{ln}: partition {code!r} for {name}; must be 0 (train), 1 (val) or 2 (test)")
        out[name] = (ln, SPLIT_CODES[code])
    return out


def read_table(path: Path, n_values: int) -> dict[str, tuple[int, tuple[float, ...]]]:
    """A count + header + rows file (bbox, landmarks): name -> (line, numbers)."""
    lines = _lines(path)
    if len(lines) < 2:
        raise G2SError(f"{path}: expected a count line and a header line")
    rows = lines[2:]
    _count(path, lines, len(rows))
    return {name: (ln, _numbers(path, ln, vals)) for name, (ln, vals) in _rows(path, rows, n_values).items()}


def read_identities(path: Path) -> dict[str, tuple[int, int]]:
    """name -> (line, identity number) of identity_CelebA.txt ("000001.jpg 2880" per line)."""
    out = {}
    for name, (ln, (value,)) in _rows(path, _lines(path), 1).items():
        if not value.isdigit() or int(value) >= layout.MAX_IDENTITY:
            raise G2SError(f"{path}:{ln}: identity {value!r} of {name} is not a whole number in 0 .. "
                           f"{layout.MAX_IDENTITY - 1}; each line is an image name and its identity number "
                           "(000001.jpg 2880)")
        out[name] = (ln, int(value))
    if not out:
        raise G2SError(f"{path}: empty file; expected one line per image: name and identity number")
    return out


def _same_images(ref_path: Path, ref: dict, path: Path, other: dict) -> None:
    extra = [n for n in other if n not in ref]
    if extra:
        raise G2SError(f"{path}:{other[extra[0]][0]}: image {extra[0]} is not in {ref_path} "
                       f"({len(extra)} such); the annotation files are from different releases")
    lacking = [n for n in ref if n not in other]
    if lacking:
        raise G2SError(f"{ref_path}:{ref[lacking[0]][0]}: image {lacking[0]} has no entry in {path} "
                       f"({len(lacking)} such); the annotation files are from different releases")


def read_celeba(root: Path, aligned: bool = False, missing: str = "error",
                files: dict[str, Path] | None = None) -> DatasetIndex:
    """All CelebA images with labels, split, box and landmarks, in list_attr order.

    ``files`` may override the location of "images", "attr", "partition", "bbox", "landmarks",
    "identities".  The identity file is optional: when it is not found the records have no
    identity and ``sources["identity_note"]`` says where it was looked for.
    ``missing``: "error" (an image listed but not on disk stops the run, naming it) or
    "report" (the record is kept with on_disk=False and ends in the report as "missing").
    """
    from data_prep.align import box_from_landmarks

    root = Path(root)
    files = files or {}
    if not root.is_dir():
        raise G2SError(f"{root}: CelebA root directory not found")
    img_dir = Path(files.get("images") or root / ("img_align_celeba" if aligned else "img_celeba"))
    if not img_dir.is_dir():
        raise G2SError(f"{img_dir}: image directory not found; unpack CelebA's "
                       f"{'img_align_celeba' if aligned else 'img_celeba'} there or pass --images")
    attr_p = find_file(root, "list_attr_celeba.txt", files.get("attr"))
    part_p = find_file(root, "list_eval_partition.txt", files.get("partition"))
    lm_name = "list_landmarks_align_celeba.txt" if aligned else "list_landmarks_celeba.txt"
    lm_p = find_file(root, lm_name, files.get("landmarks"))
    names, attrs = read_attributes(attr_p)
    parts = read_partition(part_p)
    lms = read_table(lm_p, N_LANDMARK_VALUES)
    _same_images(attr_p, attrs, part_p, parts)
    _same_images(attr_p, attrs, lm_p, lms)
    sources = {"attr": str(attr_p), "partition": str(part_p), "landmarks": str(lm_p), "images": str(img_dir)}
    boxes = None
    if not aligned:
        box_p = find_file(root, "list_bbox_celeba.txt", files.get("bbox"))
        boxes = read_table(box_p, 4)
        _same_images(attr_p, attrs, box_p, boxes)
        sources["bbox"] = str(box_p)
        for name, (ln, (_, _, w, h)) in boxes.items():
            if w <= 0 or h <= 0:
                raise G2SError(f"{box_p}:{ln}: box of {name} has width {w:g} and height {h:g}; both must be > 0")

    ids = None
    if files.get("identities") is not None:
        id_p = find_file(root, IDENTITY_FILE, files["identities"])
    else:
        id_p = next((d / IDENTITY_FILE for d in search_dirs(root) if (d / IDENTITY_FILE).is_file()), None)
    if id_p is not None:
        ids = read_identities(id_p)
        _same_images(attr_p, attrs, id_p, ids)
        sources["identities"] = str(id_p)
    else:
        sources["identity_note"] = f"no {IDENTITY_FILE} in {', '.join(str(d) for d in search_dirs(root))}"

    records = []
    for name, (ln, labels) in attrs.items():
        pts = lms[name][1]
        landmarks = tuple((pts[2 * i], pts[2 * i + 1]) for i in range(5))
        box = boxes[name][1] if boxes is not None else box_from_landmarks(landmarks)
        path = img_dir / name
        on_disk = path.is_file()
        if not on_disk and missing == "error":
            raise G2SError(f"{attr_p}:{ln}: image {name} is listed but {path} does not exist; "
                           "fix the image directory, or pass --missing report to record it and go on")
        records.append(ImageRecord(name=name, path=path, split=parts[name][1], labels=labels,
                                   where=f"{attr_p}:{ln}", box=tuple(box), landmarks=landmarks,
                                   on_disk=on_disk, identity=str(ids[name][1]) if ids else None,
                                   identity_number=ids[name][1] if ids else None))
    return DatasetIndex("celeba", list(names), records, sources)
