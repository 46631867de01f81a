"""``param`` specs of a layer with weights and a bias: how each blob learns.

The papers say nothing about biases.  Caffe's reference nets (CaffeNet, VGG's own fine-tuning
files) give a bias twice its weights' rate and no weight decay; every method here does the same.
"""
from __future__ import annotations

from dataclasses import dataclass

WEIGHT_DECAY_MULT = 1


@dataclass(frozen=True)
class BiasPolicy:
    """How a bias blob learns relative to its layer's weights."""
    lr_factor: float   # bias lr_mult = lr_factor * weight lr_mult
    decay_mult: float  # bias decay_mult


BIAS_POLICY = BiasPolicy(lr_factor=2.0, decay_mult=0.0)


def param_spec(lr_mult: float) -> list[dict]:
    """``param`` entries of a layer with weight + bias whose weights learn at ``lr_mult``."""
    return [dict(lr_mult=lr_mult, decay_mult=WEIGHT_DECAY_MULT),
            dict(lr_mult=BIAS_POLICY.lr_factor * lr_mult, decay_mult=BIAS_POLICY.decay_mult)]
