"""P-Net, R-Net and O-Net of MTCNN (Zhang et al. 2016) as Caffe nets, built with NetSpec.

Layer names follow the original det1/det2/det3 prototxts.  The nets take an ordinary
NCHW RGB image (rows = image y), normalised as (pixel - 127.5) / 128; see weights.py for how
the Keras weights map onto these layers.
Caffe's MAX pooling rounds up, which equals TF/Keras "same" padding (extra row/column at the
end, never a padded value in the max) for these sizes and equals "valid" for the two
3x3/2 pools where Keras uses "valid" (checked numerically in tests/data_prep/test_mtcnn.py).

PReLU and max pooling are Caffe's own layers on CPU and GPU alike: Caffe's CPU code for both was
a scalar loop slower than the convolutions on these small maps, and patch 0011
(tools/caffe/patches) made it several times faster with the same numbers.

Convolutions run on Caffe's own engine (im2col + BLAS) on the GPU too (CONV_ENGINE).
"""
from __future__ import annotations

# MTCNN's maps are so small that cuDNN's fixed cost per call dominates: GPU kit check 8 on an
# H200 (2026-12-04, docs/gpu-kit.md), the three nets for one 500x400 photo in 8.9-9.0 ms with
# Caffe's convolutions vs 56.5-82.7 ms with cuDNN's (three runs; P-Net 0.2-0.4 ms per scale vs 4.4-9.4).
# On the CPU Caffe's engine is the only one, so this changes nothing there.
CONV_ENGINE = "CAFFE"


def _conv(bottom, num, k):
    from caffe import layers as L, params as P
    return L.Convolution(bottom, num_output=num, kernel_size=k, stride=1,
                         engine=getattr(P.Convolution, CONV_ENGINE))


def _conv_prelu(n, bottom, name, num, k):
    from caffe import layers as L
    conv = _conv(bottom, num, k)
    setattr(n, f"conv{name}", conv)
    out = L.PReLU(conv)
    setattr(n, f"PReLU{name}", out)
    return out


def _pool(n, bottom, name, k, s):
    from caffe import layers as L, params as P
    pool = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=k, stride=s)
    setattr(n, f"pool{name}", pool)
    return pool


def pnet_spec(h: int = 12, w: int = 12):
    """Fully convolutional proposal net: 12x12 windows at stride 2."""
    import caffe
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, h, w]))
    x = _conv_prelu(n, n.data, "1", 10, 3)
    x = _pool(n, x, "1", 2, 2)
    x = _conv_prelu(n, x, "2", 16, 3)
    x = _conv_prelu(n, x, "3", 32, 3)
    setattr(n, "conv4-1", _conv(x, 2, 1))  # face / not face
    setattr(n, "conv4-2", _conv(x, 4, 1))  # box regression
    n.prob1 = L.Softmax(getattr(n, "conv4-1"))
    return n


def rnet_spec(batch: int = 1):
    """Refinement net on 24x24 crops."""
    import caffe
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, 24, 24]))
    x = _conv_prelu(n, n.data, "1", 28, 3)
    x = _pool(n, x, "1", 3, 2)
    x = _conv_prelu(n, x, "2", 48, 3)
    x = _pool(n, x, "2", 3, 2)
    x = _conv_prelu(n, x, "3", 64, 2)
    n.conv4 = L.InnerProduct(x, num_output=128)
    n.prelu4 = L.PReLU(n.conv4)
    setattr(n, "conv5-1", L.InnerProduct(n.prelu4, num_output=2))
    setattr(n, "conv5-2", L.InnerProduct(n.prelu4, num_output=4))
    n.prob1 = L.Softmax(getattr(n, "conv5-1"))
    return n


def onet_spec(batch: int = 1):
    """Output net on 48x48 crops: score, box regression and 5 landmarks."""
    import caffe
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, 48, 48]))
    x = _conv_prelu(n, n.data, "1", 32, 3)
    x = _pool(n, x, "1", 3, 2)
    x = _conv_prelu(n, x, "2", 64, 3)
    x = _pool(n, x, "2", 3, 2)
    x = _conv_prelu(n, x, "3", 64, 3)
    x = _pool(n, x, "3", 2, 2)
    x = _conv_prelu(n, x, "4", 128, 2)
    n.conv5 = L.InnerProduct(x, num_output=256)
    n.prelu5 = L.PReLU(n.conv5)
    setattr(n, "conv6-1", L.InnerProduct(n.prelu5, num_output=2))
    setattr(n, "conv6-2", L.InnerProduct(n.prelu5, num_output=4))
    setattr(n, "conv6-3", L.InnerProduct(n.prelu5, num_output=10))
    n.prob1 = L.Softmax(getattr(n, "conv6-1"))
    return n


# Outputs read by the detector: prob1 (face probability), conv4-2/conv5-2/conv6-2 (box
# regression), conv6-3 (landmarks).
NETS = {"pnet": pnet_spec, "rnet": rnet_spec, "onet": onet_spec}


def prototxt(name: str) -> str:
    """The deploy prototxt text of one net (generated, never hand-written)."""
    return f'name: "{name}"\n' + str(NETS[name]().to_proto())
