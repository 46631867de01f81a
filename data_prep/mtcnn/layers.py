"""PReLU and max pooling for the MTCNN nets on CPU: Caffe Python layers that give exactly the
numbers of Caffe's own PReLU and Pooling (MAX, no padding, the output size rounded up: a
window cut by the map's right or bottom edge takes the maximum of what is inside), in
vectorised numpy.

Why: Caffe's CPU code for both is a scalar loop (PReLU: an integer division per value and, in
place, a copy kept for backward; pooling: a data-dependent branch per input value).  On
MTCNN's small maps they took more time than the convolutions; the numpy forms are 4-8x
faster (measured layer by layer: docs/benchmarks.md).  A PReLU layer here holds its slopes as
Caffe's does (one blob of C values), so one .caffemodel serves these nets and the all-Caffe
ones (nets.py: LAYERS), which a GPU runs.
"""
from __future__ import annotations

import json

import caffe
import numpy as np

PRELU_BLOCK = 1 << 16    # values per block: x, a*x and out of a block fit in a 2 MB L2 cache


def pooled_size(n: int, kernel: int, stride: int) -> int:
    """Caffe's output size of an unpadded pooling: ceil((n - kernel) / stride) + 1."""
    return -(-(n - kernel) // stride) + 1


def max_pool(x: np.ndarray, kernel: int, stride: int, out: np.ndarray) -> None:
    """out (N, C, PH, PW) = Caffe's MAX pooling of x (N, C, H, W): the maximum over the window's
    rows first (whole rows at a time, contiguous), then over its columns."""
    rows = np.empty(x.shape[:2] + (out.shape[2], x.shape[3]), x.dtype)
    _max_along(x, kernel, stride, rows, axis=2)
    _max_along(rows, kernel, stride, out, axis=3)


def _max_along(x: np.ndarray, kernel: int, stride: int, out: np.ndarray, axis: int) -> None:
    """out = the maximum over windows of ``kernel`` at ``stride`` along one axis of x."""
    n, pooled = x.shape[axis], out.shape[axis]

    def take(a, start, count, step):
        index = [slice(None)] * a.ndim
        index[axis] = slice(start, start + (count - 1) * step + 1, step)
        return a[tuple(index)]

    # Every window starts inside the map, so offset 0 reaches all outputs; a later offset
    # reaches the outputs whose window still holds it (the last ones may be cut by the edge).
    np.copyto(out, take(x, 0, pooled, stride))
    for d in range(1, kernel):
        count = min(pooled, (n - 1 - d) // stride + 1)
        target = take(out, 0, count, 1)
        np.maximum(target, take(x, d, count, stride), out=target)


def prelu(x: np.ndarray, slopes: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
    """out = Caffe's PReLU of x (N, C, ...): max(x, 0) + a * min(x, 0) per channel, bit for bit.
    For a <= 1 that is max(x, a * x), for a > 1 min(x, a * x): two passes instead of four, over
    blocks of PRELU_BLOCK values (or one (n, c) plane if larger) that stay in the cache between
    them.  scratch: at least that many values."""
    planes = x.shape[0] * x.shape[1]
    x2, out2 = x.reshape(planes, -1), out.reshape(planes, -1)
    a = np.tile(slopes, x.shape[0])[:, None]          # the slope of each (n, c) plane
    step = max(1, PRELU_BLOCK // x2.shape[1])
    for p0 in range(0, planes, step):
        p1 = min(planes, p0 + step)
        ax = scratch[:(p1 - p0) * x2.shape[1]].reshape(p1 - p0, -1)
        np.multiply(x2[p0:p1], a[p0:p1], out=ax)
        np.maximum(x2[p0:p1], ax, out=out2[p0:p1])
    for p in np.flatnonzero(a[:, 0] > 1):
        np.minimum(x2[p], a[p, 0] * x2[p], out=out2[p])


class MaxPool(caffe.Layer):
    """param_str: {"kernel": k, "stride": s}.  Inference only (no backward)."""

    def setup(self, bottom, top):
        p = json.loads(self.param_str)
        self.kernel, self.stride = int(p["kernel"]), int(p["stride"])

    def reshape(self, bottom, top):
        n, c, h, w = bottom[0].data.shape
        top[0].reshape(n, c, pooled_size(h, self.kernel, self.stride), pooled_size(w, self.kernel, self.stride))

    def forward(self, bottom, top):
        max_pool(bottom[0].data, self.kernel, self.stride, top[0].data)


class PReLU(caffe.Layer):
    """Channel-wise PReLU; its blob 0 holds the C slopes (filled from the .caffemodel).
    Inference only (no backward)."""

    def setup(self, bottom, top):
        self.blobs.add_blob(bottom[0].data.shape[1])
        self.scratch = np.empty(0, np.float32)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
        need = max(PRELU_BLOCK, bottom[0].data[0, 0].size)   # a block, or one plane if larger
        if self.scratch.size < need:
            self.scratch = np.empty(need, np.float32)

    def forward(self, bottom, top):
        prelu(bottom[0].data, self.blobs[0].data, top[0].data, self.scratch)
