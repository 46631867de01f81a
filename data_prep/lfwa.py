"""Read LFWA (the LFW images + the attribute release of Liu et al.) into ImageRecords.

ROOT holds ``lfw/`` (the LFW images, ``Name/Name_0001.jpg``), ``lfw_att_40.mat`` and
``indices_train_test.mat``.  Both .mat files are MATLAB v7.3, i.e. HDF5, read with h5py:

- ``lfw_att_40.mat``: ``name`` (cell of N image names with backslashes,
  'Aaron_Eckhart\\Aaron_Eckhart_0001.jpg'), ``label`` (N x 40, 0/1 or -1/1), ``AttrName``.
- ``indices_train_test.mat``: ``indices_img_train``, ``indices_img_test`` (1-based rows of
  ``name``/``label``).  LFWA has no validation split.

HDF5 stores MATLAB arrays transposed (column-major), and a cell of strings as an array of
object references, each to a uint16 array of character codes.
LFW has no face box or landmarks: the reference face (for picking among several detections,
and the test-set fallback) is the centred square of 1/2.2 of the image side, since every LFW
image is the Viola-Jones face box enlarged 2.2 times.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from g2s_caffe.errors import G2SError

from .records import DatasetIndex, ImageRecord

LFW_ENLARGEMENT = 2.2


def _open(path: Path):
    import h5py

    if not Path(path).is_file():
        raise G2SError(f"{path}: not found; put the LFWA release file there or point at it with an option")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise G2SError(f"{path}: not a MATLAB v7.3 (HDF5) file ({e}); re-save it with `save -v7.3` "
                       "or use the original release file") from e


def _get(f, path: Path, *names: str):
    for n in names:
        if n in f:
            return f[n]
    raise G2SError(f"{path}: no variable {' or '.join(map(repr, names))}; "
                   f"variables found: {', '.join(k for k in f.keys() if not k.startswith('#')) or 'none'}")


def _strings(f, ds, path: Path, var: str) -> list[str]:
    """A MATLAB cell of strings (object references to uint16 char arrays), in order."""
    refs = np.asarray(ds[()]).ravel(order="F")
    out = []
    for i, ref in enumerate(refs):
        try:
            obj = f[ref]
        except Exception as e:  # not a reference: the variable is not a cell of strings
            raise G2SError(f"{path}: {var}[{i + 1}] is not a string cell ({e})") from e
        if obj.attrs.get("MATLAB_empty", 0):   # MATLAB's '' is stored as a dummy array
            out.append("")
            continue
        out.append("".join(map(chr, np.asarray(obj[()]).ravel(order="F").astype(np.int64))))
    return out


def _matrix(ds, n_rows: int, path: Path, var: str) -> np.ndarray:
    """A MATLAB n_rows x K numeric matrix as (n_rows, K), whichever way HDF5 holds it."""
    a = np.asarray(ds[()])
    if a.ndim != 2:
        raise G2SError(f"{path}: {var} has shape {a.shape}; expected a 2-D matrix")
    if a.shape[1] == n_rows:   # MATLAB N x K stored transposed
        return a.T
    if a.shape[0] == n_rows:
        return a
    raise G2SError(f"{path}: {var} has shape {a.shape}, but there are {n_rows} names")


def _indices(f, path: Path, n: int, *names: str) -> np.ndarray:
    ds = _get(f, path, *names)
    a = np.asarray(ds[()], dtype=np.float64).ravel()
    var = ds.name.lstrip("/")
    if a.size and (np.any(a != np.round(a)) or a.min() < 1 or a.max() > n):
        bad = a[(a != np.round(a)) | (a < 1) | (a > n)][0]
        raise G2SError(f"{path}: {var} holds {bad:g}; indices must be whole numbers in 1..{n} (MATLAB 1-based)")
    idx = a.astype(np.int64) - 1
    uniq, counts = np.unique(idx, return_counts=True)
    if np.any(counts > 1):
        raise G2SError(f"{path}: {var} lists image {uniq[counts > 1][0] + 1} twice")
    return idx


def read_lfwa(root: Path, missing: str = "error", files: dict[str, Path] | None = None) -> DatasetIndex:
    """All LFWA images of the train and test splits, in (split, index-file) order.

    ``files`` may override "images", "attr" (lfw_att_40.mat), "indices" (indices_train_test.mat).
    """
    root = Path(root)
    files = files or {}
    img_dir = Path(files.get("images") or root / "lfw")
    attr_p = Path(files.get("attr") or root / "lfw_att_40.mat")
    idx_p = Path(files.get("indices") or root / "indices_train_test.mat")
    if not img_dir.is_dir():
        raise G2SError(f"{img_dir}: LFW image directory not found; unpack lfw.tgz there or pass --images")
    with _open(attr_p) as f:
        names = [s.replace("\\", "/") for s in _strings(f, _get(f, attr_p, "name"), attr_p, "name")]
        labels = _matrix(_get(f, attr_p, "label"), len(names), attr_p, "label")
        attr_names = (_strings(f, f["AttrName"], attr_p, "AttrName") if "AttrName" in f
                      else [f"attr_{i + 1}" for i in range(labels.shape[1])])
    if len(attr_names) != labels.shape[1]:
        raise G2SError(f"{attr_p}: {len(attr_names)} AttrName entries but label has {labels.shape[1]} columns")
    values = {float(v) for v in np.unique(labels)}
    if not (values <= {0, 1} or values <= {-1, 1}):
        raise G2SError(f"{attr_p}: label holds the values {', '.join(f'{v:g}' for v in sorted(values))}; expected 0/1 or -1/1")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise G2SError(f"{attr_p}: name[{i + 1}] {n} is listed twice (first at name[{seen[n] + 1}])")
        seen[n] = i
    with _open(idx_p) as f:
        train = _indices(f, idx_p, len(names), "indices_img_train")
        test = _indices(f, idx_p, len(names), "indices_img_test")
    both = np.intersect1d(train, test)
    if both.size:
        raise G2SError(f"{idx_p}: image {both[0] + 1} ({names[both[0]]}) is in both "
                       "indices_img_train and indices_img_test")
    records = []
    for split, idx in (("train", train), ("test", test)):
        for i in idx:
            name = names[i]
            path = img_dir / name
            on_disk = path.is_file()
            if not on_disk and missing == "error":
                raise G2SError(f"{attr_p}: name[{i + 1}] {name} is listed but {path} does not exist; "
                               "fix the image directory, or pass --missing report to record it and go on")
            records.append(ImageRecord(name=name, path=path, split=split,
                                       labels=tuple(int(v > 0) for v in labels[i]),
                                       where=f"{attr_p}: name[{i + 1}]", on_disk=on_disk))
    return DatasetIndex("lfwa", attr_names, records,
                        {"attr": str(attr_p), "indices": str(idx_p), "images": str(img_dir)},
                        centre_box_fraction=1.0 / LFW_ENLARGEMENT)
