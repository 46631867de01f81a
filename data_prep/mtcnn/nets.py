"""P-Net, R-Net and O-Net of MTCNN (Zhang et al. 2016) as Caffe nets, built with NetSpec.

Layer names follow the original det1/det2/det3 prototxts.  The nets take an ordinary
NCHW RGB image (rows = image y), normalised as (pixel - 127.5) / 128; see weights.py for how
the Keras weights map onto these layers.
Caffe's MAX pooling rounds up, which equals TF/Keras "same" padding (extra row/column at the
end, never a padded value in the max) for these sizes and equals "valid" for the two
3x3/2 pools where Keras uses "valid" (checked numerically in tests/data_prep/test_mtcnn.py).

Each net comes in two LAYERS variants with the same layer names and parameters (one
.caffemodel): "caffe", Caffe's own layers throughout (what a GPU runs), and "numpy", where
PReLU and max pooling are the Python layers of layers.py (same numbers, 4-8x faster on CPU).
"""
from __future__ import annotations

import json

LAYERS = ("numpy", "caffe")
_PYTHON_LAYERS = "data_prep.mtcnn.layers"


def _prelu(bottom, layers: str):
    from caffe import layers as L
    if layers == "numpy":
        return L.Python(bottom, python_param=dict(module=_PYTHON_LAYERS, layer="PReLU"))
    return L.PReLU(bottom)


def _conv_prelu(n, bottom, name, num, k, layers):
    from caffe import layers as L
    conv = L.Convolution(bottom, num_output=num, kernel_size=k, stride=1)
    setattr(n, f"conv{name}", conv)
    out = _prelu(conv, layers)
    setattr(n, f"PReLU{name}", out)
    return out


def _pool(n, bottom, name, k, s, layers):
    from caffe import layers as L, params as P
    if layers == "numpy":
        pool = L.Python(bottom, python_param=dict(module=_PYTHON_LAYERS, layer="MaxPool",
                                                  param_str=json.dumps({"kernel": k, "stride": s})))
    else:
        pool = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=k, stride=s)
    setattr(n, f"pool{name}", pool)
    return pool


def pnet_spec(layers: str, h: int = 12, w: int = 12):
    """Fully convolutional proposal net: 12x12 windows at stride 2."""
    import caffe
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, h, w]))
    x = _conv_prelu(n, n.data, "1", 10, 3, layers)
    x = _pool(n, x, "1", 2, 2, layers)
    x = _conv_prelu(n, x, "2", 16, 3, layers)
    x = _conv_prelu(n, x, "3", 32, 3, layers)
    setattr(n, "conv4-1", L.Convolution(x, num_output=2, kernel_size=1))  # face / not face
    setattr(n, "conv4-2", L.Convolution(x, num_output=4, kernel_size=1))  # box regression
    n.prob1 = L.Softmax(getattr(n, "conv4-1"))
    return n


def rnet_spec(layers: str, batch: int = 1):
    """Refinement net on 24x24 crops."""
    import caffe
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, 24, 24]))
    x = _conv_prelu(n, n.data, "1", 28, 3, layers)
    x = _pool(n, x, "1", 3, 2, layers)
    x = _conv_prelu(n, x, "2", 48, 3, layers)
    x = _pool(n, x, "2", 3, 2, layers)
    x = _conv_prelu(n, x, "3", 64, 2, layers)
    n.conv4 = L.InnerProduct(x, num_output=128)
    n.prelu4 = _prelu(n.conv4, layers)
    setattr(n, "conv5-1", L.InnerProduct(n.prelu4, num_output=2))
    setattr(n, "conv5-2", L.InnerProduct(n.prelu4, num_output=4))
    n.prob1 = L.Softmax(getattr(n, "conv5-1"))
    return n


def onet_spec(layers: str, batch: int = 1):
    """Output net on 48x48 crops: score, box regression and 5 landmarks."""
    import caffe
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, 48, 48]))
    x = _conv_prelu(n, n.data, "1", 32, 3, layers)
    x = _pool(n, x, "1", 3, 2, layers)
    x = _conv_prelu(n, x, "2", 64, 3, layers)
    x = _pool(n, x, "2", 3, 2, layers)
    x = _conv_prelu(n, x, "3", 64, 3, layers)
    x = _pool(n, x, "3", 2, 2, layers)
    x = _conv_prelu(n, x, "4", 128, 2, layers)
    n.conv5 = L.InnerProduct(x, num_output=256)
    n.prelu5 = _prelu(n.conv5, layers)
    setattr(n, "conv6-1", L.InnerProduct(n.prelu5, num_output=2))
    setattr(n, "conv6-2", L.InnerProduct(n.prelu5, num_output=4))
    setattr(n, "conv6-3", L.InnerProduct(n.prelu5, num_output=10))
    n.prob1 = L.Softmax(getattr(n, "conv6-1"))
    return n


# Outputs read by the detector: prob1 (face probability), conv4-2/conv5-2/conv6-2 (box
# regression), conv6-3 (landmarks).
NETS = {"pnet": pnet_spec, "rnet": rnet_spec, "onet": onet_spec}


def prototxt(name: str, layers: str) -> str:
    """The deploy prototxt text of one net in one LAYERS variant (generated, never hand-written)."""
    return f'name: "{name}"\n' + str(NETS[name](layers).to_proto())
