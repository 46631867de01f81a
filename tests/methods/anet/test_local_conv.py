"""The locally shared convolution (stock Caffe layers) against a direct numpy definition,
forward and backward (input, weight and bias gradients), in the real Caffe."""
from __future__ import annotations

import itertools
import tempfile

import numpy as np
import pytest

pytestmark = pytest.mark.caffe


def local_conv_np(x, weights, biases, grid: int, pad: int):
    """The definition: cell (i, j) of x (N, C, g*h, g*w), zero-padded by ``pad`` on its own,
    cross-correlated with weights[i][j] (K, C, k, k) plus biases[i][j] (K,), put back in place."""
    n, c, height, width = x.shape
    h, w = height // grid, width // grid
    k = weights[0][0].shape[-1]
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    out = np.zeros((n, weights[0][0].shape[0], grid * oh, grid * ow))
    for i, j in itertools.product(range(grid), range(grid)):
        cell = np.pad(x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w], ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        wij = weights[i][j]
        res = np.zeros((n, wij.shape[0], oh, ow))
        for u, v in itertools.product(range(oh), range(ow)):
            res[:, :, u, v] = np.einsum("ncab,kcab->nk", cell[:, :, u:u + k, v:v + k], wij)
        out[:, :, i * oh:(i + 1) * oh, j * ow:(j + 1) * ow] = res + biases[i][j][None, :, None, None]
    return out


def gradient_by_linearity(f, x):
    """d sum(G * f(x)) / dx for f affine in x, exactly: f(x + e_k) - f(x) needs no small step."""
    base = f(x)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = x.copy()
        e[idx] += 1.0
        grad[idx] = f(e) - base
    return grad


def build(shape, grid, nout, kernel, pad):
    import caffe
    from caffe import layers as L

    from g2s_caffe.methods.anet.local_conv import locally_shared_conv

    n = caffe.NetSpec()
    n.x = L.Input(shape=dict(dim=list(shape)))
    locally_shared_conv(n, n.x, "lc", grid, shape[2] // grid, shape[3] // grid, nout, kernel, pad,
                        lambda layer: [dict(lr_mult=1), dict(lr_mult=2)], dict(type="gaussian", std=1.0),
                        dict(type="gaussian", std=1.0), relu=False)
    proto = n.to_proto()
    proto.force_backward = True
    f = tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False)
    f.write(str(proto))
    f.close()
    return caffe.Net(f.name, caffe.TRAIN)


@pytest.mark.parametrize("grid,kernel,pad", [(3, 3, 0), (2, 3, 1), (2, 2, 0)])
def test_locally_shared_conv_matches_numpy_forward_and_backward(grid, kernel, pad):
    import caffe

    caffe.set_mode_cpu()
    rng = np.random.default_rng(grid * 10 + kernel + pad)
    shape = (2, 2, 4 * grid, 4 * grid)
    net = build(shape, grid, 3, kernel, pad)
    cells = list(itertools.product(range(grid), range(grid)))
    assert sorted(net.params) == sorted(f"lc_{i}_{j}" for i, j in cells)   # own filters per cell
    W = [[net.params[f"lc_{i}_{j}"][0].data.astype(np.float64) for j in range(grid)] for i in range(grid)]
    B = [[net.params[f"lc_{i}_{j}"][1].data.astype(np.float64) for j in range(grid)] for i in range(grid)]
    assert not np.allclose(W[0][0], W[-1][-1])
    x = rng.normal(size=shape)
    net.blobs["x"].data[...] = x
    got = net.forward()["lc"].astype(np.float64)
    want = local_conv_np(x, W, B, grid, pad)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())

    # backward: top diff G, so the loss is sum(G * out)
    G = rng.normal(size=want.shape)
    net.blobs["lc"].diff[...] = G
    for blobs in net.params.values():
        for b in blobs:
            b.diff[...] = 0
    net.backward(start=net._layer_names[-1])   # from the last layer down, with the diff set above
    loss = lambda out: float((G * out).sum())
    dx = gradient_by_linearity(lambda z: loss(local_conv_np(z, W, B, grid, pad)), x)
    np.testing.assert_allclose(net.blobs["x"].diff, dx, rtol=1e-4, atol=1e-4 * np.abs(dx).max())
    for i, j in cells:
        def with_w(wij, i=i, j=j):
            Wc = [[w.copy() for w in row] for row in W]
            Wc[i][j] = wij
            return loss(local_conv_np(x, Wc, B, grid, pad))

        def with_b(bij, i=i, j=j):
            Bc = [[b.copy() for b in row] for row in B]
            Bc[i][j] = bij
            return loss(local_conv_np(x, W, Bc, grid, pad))

        dw, db = gradient_by_linearity(with_w, W[i][j]), gradient_by_linearity(with_b, B[i][j])
        np.testing.assert_allclose(net.params[f"lc_{i}_{j}"][0].diff, dw, rtol=1e-4, atol=1e-4 * np.abs(dw).max())
        np.testing.assert_allclose(net.params[f"lc_{i}_{j}"][1].diff, db, rtol=1e-4, atol=1e-4 * np.abs(db).max())


def test_a_cell_never_sees_its_neighbours():
    """Changing one input cell changes that cell's output and nothing else."""
    import caffe

    caffe.set_mode_cpu()
    grid, shape = 3, (1, 1, 9, 9)
    net = build(shape, grid, 2, 3, 1)
    x = np.random.default_rng(0).normal(size=shape)
    net.blobs["x"].data[...] = x
    a = net.forward()["lc"].copy()
    x2 = x.copy()
    x2[:, :, 3:6, 3:6] += 5.0          # the centre cell
    net.blobs["x"].data[...] = x2
    b = net.forward()["lc"].copy()
    changed = np.abs(b - a).max(axis=(0, 1)) > 1e-6
    assert changed[3:6, 3:6].all() and changed.sum() == 9
