"""The project's Caffe patches that change what a net computes or how it runs, on the Caffe built
by `make setup`:

- 0011: the CPU forward of PReLU and MAX pooling against their definitions, written here in
  numpy loop by loop (bit for bit: the patch keeps Caffe's arithmetic), with the pooling mask
  (the first maximum in the window's row-major order wins ties, as before) and the backward
  that reads it;
- 0010: Net.forward releases the GIL (another thread sees a forward's output being written),
  and Python layers and callbacks still run when nets compute in several threads."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import threading

import numpy as np
import pytest

from support import ROOT

pytestmark = pytest.mark.caffe


def _net(layers: str, *inputs: tuple[str, tuple]) -> "object":
    """A TEST-phase net from prototxt text: Input layers for ``inputs`` (name, shape), then ``layers``."""
    import caffe
    head = "".join(f'layer {{ name: "{n}" type: "Input" top: "{n}" input_param {{ shape {{ '
                   + " ".join(f"dim: {d}" for d in shape) + " } } }\n" for n, shape in inputs)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt") as f:
        f.write(head + layers)
        f.flush()
        return caffe.Net(f.name, caffe.TEST)


# ---- 0011: PReLU --------------------------------------------------------------------------

def prelu_definition(x: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """max(x, 0) + a_c * min(x, 0), channel c = axis 1, in float32 as Caffe computes it."""
    a = slopes.reshape((1, -1) + (1,) * (x.ndim - 2)).astype(np.float32)
    return np.maximum(x, np.float32(0)) + a * np.minimum(x, np.float32(0))


@pytest.mark.parametrize("shape,shared,in_place", [
    ((2, 3, 5, 7), False, False), ((3, 4), False, False),      # a 2-D blob: an InnerProduct's output
    ((2, 3, 5, 7), True, False), ((2, 5, 4, 3), False, True), ((1, 1, 1, 1), False, False)])
def test_prelu_forward_equals_its_definition(shape, shared, in_place):
    top = "x" if in_place else "y"
    net = _net(f'layer {{ name: "prelu" type: "PReLU" bottom: "x" top: "{top}" '
               f'prelu_param {{ channel_shared: {str(shared).lower()} }} }}\n', ("x", shape))
    rng = np.random.default_rng(11)
    slopes = rng.choice(np.float32([-0.5, 0.0, 0.25, 1.0, 1.7]), 1 if shared else shape[1])
    net.params["prelu"][0].data[...] = slopes
    x = rng.standard_normal(shape).astype(np.float32)
    net.blobs["x"].data[...] = x
    out = net.forward()[top]
    want = prelu_definition(x, np.repeat(slopes, shape[1]) if shared else slopes)
    np.testing.assert_array_equal(out, want)


# ---- 0011: MAX pooling ---------------------------------------------------------------------

def max_pool_definition(x: np.ndarray, kernel: int, stride: int, pad: int):
    """Caffe's MAX pooling, window by window: output size ceil((n + 2 pad - k) / s) + 1 (less one
    if the last window would start in the padding), windows clipped to the map; per window the
    maximum and the index h * W + w of its first occurrence in row-major order."""
    n, c, h, w = x.shape

    def pooled(size):
        p = -(-(size + 2 * pad - kernel) // stride) + 1
        return p - 1 if pad and (p - 1) * stride >= size + pad else p

    ph, pw = pooled(h), pooled(w)
    top, mask = np.empty((n, c, ph, pw), np.float32), np.empty((n, c, ph, pw), np.float32)
    for i, j, r, q in np.ndindex(n, c, ph, pw):
        r0, q0 = r * stride - pad, q * stride - pad
        rows = range(max(r0, 0), min(r0 + kernel, h))
        cols = range(max(q0, 0), min(q0 + kernel, w))
        best, where = -np.finfo(np.float32).max, -1
        for y in rows:
            for z in cols:
                if x[i, j, y, z] > best:
                    best, where = x[i, j, y, z], y * w + z
        top[i, j, r, q], mask[i, j, r, q] = best, where
    return top, mask


@pytest.mark.parametrize("shape,kernel,stride,pad", [
    ((2, 3, 7, 9), 2, 2, 0),      # odd sizes: the last windows are cut by the edge
    ((1, 2, 11, 8), 3, 2, 0),
    ((2, 2, 6, 7), 3, 2, 1),      # padding
    ((1, 1, 5, 5), 3, 1, 0)])
def test_max_pooling_forward_and_backward_equal_their_definition(shape, kernel, stride, pad):
    net = _net(f'layer {{ name: "pool" type: "Pooling" bottom: "x" top: "y" top: "mask" '
               f'pooling_param {{ pool: MAX kernel_size: {kernel} stride: {stride} pad: {pad} }} }}\n',
               ("x", shape))
    net2 = _net(f'layer {{ name: "pool" type: "Pooling" bottom: "x" top: "y" '    # the mask kept inside
                f'pooling_param {{ pool: MAX kernel_size: {kernel} stride: {stride} pad: {pad} }} }}\n'
                'force_backward: true\n', ("x", shape))
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, shape).astype(np.float32)   # few values: windows with ties
    want, want_mask = max_pool_definition(x, kernel, stride, pad)
    assert (want_mask >= 0).all()
    for n in (net, net2):
        n.blobs["x"].data[...] = x
        out = n.forward()
        np.testing.assert_array_equal(out["y"], want)
    np.testing.assert_array_equal(net.blobs["mask"].data, want_mask)
    # The backward routes each output's gradient to the input its mask names.
    g = rng.standard_normal(want.shape).astype(np.float32)
    net2.blobs["y"].diff[...] = g
    net2.backward()
    grad = np.zeros(shape, np.float32).reshape(shape[0], shape[1], -1)
    flat_mask = want_mask.reshape(shape[0], shape[1], -1).astype(int)
    for i, j in np.ndindex(shape[0], shape[1]):
        np.add.at(grad[i, j], flat_mask[i, j], g[i, j].reshape(-1))
    np.testing.assert_array_equal(net2.blobs["x"].diff, grad.reshape(shape))


# ---- 0010: the GIL ---------------------------------------------------------------------------

def test_net_forward_lets_other_threads_run():
    """While one thread runs a convolution over a batch, this one watches its output fill image
    by image.  Holding the GIL through the C++ forward (Caffe without patch 0010) would let
    this thread look only before the forward began (nothing written) or after it ended (every
    image written), never in between."""
    batch = 48
    net = _net('layer { name: "conv" type: "Convolution" bottom: "x" top: "y" '
               'convolution_param { num_output: 48 kernel_size: 5 } }\n', ("x", (batch, 16, 32, 32)))
    net.params["conv"][0].data[...] = 0.01
    net.blobs["x"].data[...] = 1.0
    net.blobs["y"].data[...] = np.nan
    written = net.blobs["y"].data[:, 0, 0, 0]
    forward = threading.Thread(target=net.forward)
    seen = set()
    forward.start()
    while forward.is_alive():
        seen.add(int(np.isfinite(written).sum()))
    forward.join()
    assert np.isfinite(written).all()
    assert any(0 < k < batch for k in seen), f"images written as seen from another thread: {sorted(seen)}"


PYTHON_LAYER_MODULE = '''
import caffe

class Double(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data
'''

THREADS_SCRIPT = '''
import sys, tempfile, threading
import numpy as np
import caffe
sys.path.insert(0, sys.argv[1])
proto = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 8 dim: 32 dim: 32 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 8 kernel_size: 3 } }
layer { name: "double" type: "Python" bottom: "c" top: "y" python_param { module: "double_layer" layer: "Double" } }
"""
with tempfile.NamedTemporaryFile("w", suffix=".prototxt") as f:
    f.write(proto); f.flush()
    nets = [caffe.Net(f.name, caffe.TEST) for _ in range(3)]
rng = np.random.default_rng(1)
w = rng.standard_normal(nets[0].params["conv"][0].data.shape).astype(np.float32)
calls = [[] for _ in nets]
for k, net in enumerate(nets):
    net.params["conv"][0].data[...] = w
    net.after_forward(calls[k].append)          # a Python callback after every layer
x = rng.standard_normal((4, 8, 32, 32)).astype(np.float32)
nets[0].blobs["x"].data[...] = x
want = nets[0].forward()["y"].copy()
failures = []
def run(net):
    for _ in range(30):
        net.blobs["x"].data[...] = x
        if not np.array_equal(net.forward()["y"], want):
            failures.append("different output")
threads = [threading.Thread(target=run, args=(n,)) for n in nets[1:]]
for t in threads: t.start()
for t in threads: t.join()
print(len(failures), [len(c) for c in calls])
'''


def test_python_layers_and_callbacks_run_in_threads(tmp_path):
    """Nets with a Python layer and a Python callback, run by two threads at once: the same
    outputs as one thread gives, every callback made.  (In a child process: Python code run
    without the GIL would crash it.)"""
    (tmp_path / "double_layer.py").write_text(PYTHON_LAYER_MODULE)
    r = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[0] == "0 [3, 90, 90]", r.stdout
