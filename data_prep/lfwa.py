"""Read LFWA (the LFW images + the attribute release of Liu et al.) into ImageRecords.

ROOT holds ``lfw/`` (the LFW images, ``Name/Name_0001.jpg``), ``lfw_att_40.mat`` and
``indices_train_test.mat``.  Copies of these files circulate in two formats, and either is
read as it is (the format is told from the file, never from its name): MATLAB v7.3, i.e.
HDF5, read with h5py; and MATLAB v5 (and v4), read with ``scipy.io.loadmat``:

- ``lfw_att_40.mat``: ``name`` (cell of N image names with backslashes,
  'Aaron_Eckhart\\Aaron_Eckhart_0001.jpg'), ``label`` (N x 40, 0/1 or -1/1), ``AttrName``.
- ``indices_train_test.mat``: ``indices_img_train``, ``indices_img_test`` (1-based rows of
  ``name``/``label``).  LFWA has no validation split.

HDF5 stores MATLAB arrays transposed (column-major), and a cell of strings as an array of
object references, each to a uint16 array of character codes.  A v5 file holds arrays in
MATLAB's own shape, and a cell of strings as an object array of character arrays.
Identities: LFW's folder names (``Name/Name_0001.jpg`` is person ``Name``); each person's
number is the index of its name among the release's sorted folder names (every name of
``lfw_att_40.mat``, train and test alike).
LFW has no face box or landmarks: the reference face (for picking among several detections,
and the test-set fallback) is the centred square of 1/2.2 of the image side, since every LFW
image is the Viola-Jones face box enlarged 2.2 times.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from g2s_caffe.core.errors import G2SError

from data_prep.records import DatasetIndex, ImageRecord

LFW_ENLARGEMENT = 2.2


class _Hdf5Mat:
    """A MATLAB v7.3 file (HDF5)."""
    format = "MATLAB v7.3 (HDF5)"

    def __init__(self, path: Path):
        import h5py

        self.path = path
        try:
            self.f = h5py.File(path, "r")
        except OSError as e:
            raise G2SError(f"{path}: an HDF5 file that h5py cannot open ({e}); the file is damaged "
                           "or incomplete, fetch it again") from e

    def variables(self) -> list[str]:
        return [k for k in self.f.keys() if not k.startswith("#")]

    def numeric(self, var: str) -> np.ndarray:
        """In MATLAB's shape: HDF5 holds MATLAB's column-major arrays with the axes reversed."""
        return np.asarray(self.f[var][()]).T

    def strings(self, var: str) -> list[str]:
        """A MATLAB cell of strings (object references to uint16 char arrays), in order."""
        refs = np.asarray(self.f[var][()]).ravel(order="F")
        out = []
        for i, ref in enumerate(refs):
            try:
                obj = self.f[ref]
            except Exception as e:  # not a reference: the variable is not a cell of strings
                raise G2SError(f"{self.path}: {var}[{i + 1}] is not a string cell ({e})") from e
            if obj.attrs.get("MATLAB_empty", 0):   # MATLAB's '' is stored as a dummy array
                out.append("")
                continue
            out.append("".join(map(chr, np.asarray(obj[()]).ravel(order="F").astype(np.int64))))
        return out

    def close(self) -> None:
        self.f.close()


class _V5Mat:
    """A MATLAB v5 (or v4) file, read whole by scipy.io.loadmat (LFWA's files are small)."""
    format = "MATLAB v5"

    def __init__(self, path: Path):
        from scipy.io import loadmat

        self.path = path
        try:
            self.d = loadmat(str(path), squeeze_me=False, chars_as_strings=True)
        except Exception as e:  # scipy raises ValueError, TypeError, MatReadError ... on foreign files
            raise G2SError(f"{path}: neither a MATLAB v7.3 (HDF5) nor a MATLAB v5/v4 .mat file "
                           f"({type(e).__name__}: {e}); use the LFWA release's file") from e

    def variables(self) -> list[str]:
        return [k for k in self.d if not k.startswith("__")]

    def numeric(self, var: str) -> np.ndarray:
        a = np.asarray(self.d[var])
        if a.dtype.kind not in "biuf":
            raise G2SError(f"{self.path}: {var} is not numeric (MATLAB class {a.dtype})")
        return a

    def strings(self, var: str) -> list[str]:
        """A cell of strings (object array of char arrays) or a char matrix (one string per row)."""
        a = np.asarray(self.d[var])
        if a.dtype.kind == "U":
            return [str(v) for v in a.ravel(order="F")]
        if a.dtype != object:
            raise G2SError(f"{self.path}: {var} is not a cell of strings (MATLAB class {a.dtype})")
        out = []
        for i, item in enumerate(a.ravel(order="F")):
            item = np.asarray(item)
            if item.size == 0:
                out.append("")
            elif item.dtype.kind == "U":
                out.append("".join(str(v) for v in item.ravel()))
            else:
                raise G2SError(f"{self.path}: {var}[{i + 1}] is not a string (MATLAB class {item.dtype})")
        return out

    def close(self) -> None:
        pass


def open_mat(path: Path):
    """The .mat file at ``path`` through the reader of its format (HDF5 = v7.3, else v5/v4)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: not found; put the LFWA release file there or point at it with an option")
    return _Hdf5Mat(path) if h5py.is_hdf5(str(path)) else _V5Mat(path)


@contextmanager
def opened_mat(path: Path):
    mat = open_mat(path)
    try:
        yield mat
    finally:
        mat.close()


def _get(mat, *names: str) -> str:
    """The first of ``names`` that the file holds (a clear error listing what it does hold)."""
    found = mat.variables()
    for n in names:
        if n in found:
            return n
    raise G2SError(f"{mat.path}: no variable {' or '.join(map(repr, names))}; "
                   f"variables found: {', '.join(sorted(found)) or 'none'}")


def _matrix(a: np.ndarray, n_rows: int, path: Path, var: str) -> np.ndarray:
    """A MATLAB n_rows x K numeric matrix as (n_rows, K); a K x n_rows one (saved transposed)
    is turned round."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise G2SError(f"{path}: {var} has shape {a.shape}; expected a 2-D matrix")
    if a.shape[0] == n_rows:
        return a
    if a.shape[1] == n_rows:
        return a.T
    raise G2SError(f"{path}: {var} has shape {a.shape}, but there are {n_rows} names")


def _indices(mat, path: Path, n: int, *names: str) -> np.ndarray:
    var = _get(mat, *names)
    a = np.asarray(mat.numeric(var), dtype=np.float64).ravel()
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
    with opened_mat(attr_p) as mat:
        names = [s.replace("\\", "/") for s in mat.strings(_get(mat, "name"))]
        labels = _matrix(mat.numeric(_get(mat, "label")), len(names), attr_p, "label")
        has_names = "AttrName" in mat.variables()
        attr_names = (mat.strings("AttrName") if has_names else [f"attr_{i + 1}" for i in range(labels.shape[1])])
        mat_format = mat.format
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
    with opened_mat(idx_p) as mat:
        train = _indices(mat, idx_p, len(names), "indices_img_train")
        test = _indices(mat, idx_p, len(names), "indices_img_test")
        idx_format = mat.format
    both = np.intersect1d(train, test)
    if both.size:
        raise G2SError(f"{idx_p}: image {both[0] + 1} ({names[both[0]]}) is in both "
                       "indices_img_train and indices_img_test")
    people = {}
    for i, n in enumerate(names):
        person, sep, _ = n.rpartition("/")
        if not sep or not person:
            raise G2SError(f"{attr_p}: name[{i + 1}] {n!r} is not Person/Person_NNNN.jpg; LFW's identity is "
                           "the image's folder name (use the release's lfw_att_40.mat)")
        people[n] = person
    numbers = {p: k for k, p in enumerate(sorted(set(people.values())))}
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
                                       where=f"{attr_p}: name[{i + 1}]", on_disk=on_disk,
                                       identity=people[name], identity_number=numbers[people[name]]))
    sources = {"attr": str(attr_p), "indices": str(idx_p), "images": str(img_dir),
               "identities": f"the folder names of {attr_p}'s name (sorted; a person's number is its rank)",
               "attr_format": mat_format, "indices_format": idx_format,
               "attribute_names_in_file": ", ".join(attr_names) if has_names else "none (no AttrName)"}
    return DatasetIndex("lfwa", attr_names, records, sources, centre_box_fraction=1.0 / LFW_ENLARGEMENT)
