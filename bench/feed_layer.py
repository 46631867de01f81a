"""A Caffe Python layer that serves pre-made batches from memory: the baseline of
bench_train.py.  It gives the net the very values the Data layers produce (captured from
them beforehand), so that value-dependent costs (ReLU and max-pool branches, caches) are the
same in both runs and only reading, decoding and transforming differ.  Its own cost per
forward is one numpy copy of the batch."""
from __future__ import annotations

import json

import caffe
import numpy as np


class InMemoryFeed(caffe.Layer):
    """param_str: {"files": [one .npy per top, each (batches, batch, ...)]}; cycles through the
    batches in order."""

    def setup(self, bottom, top):
        files = json.loads(self.param_str)["files"]
        if len(files) != len(top):
            raise ValueError(f"InMemoryFeed: {len(files)} files for {len(top)} tops")
        self.arrays = [np.load(f) for f in files]
        self.next = 0

    def reshape(self, bottom, top):
        for i, a in enumerate(self.arrays):     # top is indexable, not iterable
            top[i].reshape(*a.shape[1:])

    def forward(self, bottom, top):
        for i, a in enumerate(self.arrays):
            top[i].data[...] = a[self.next]
        self.next = (self.next + 1) % len(self.arrays[0])

    def backward(self, top, propagate_down, bottom):
        pass
