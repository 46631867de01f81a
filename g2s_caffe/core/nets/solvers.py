"""SGD solvers as caffe_pb2.SolverParameter (every method's), and the TEST iterations of a split."""
from __future__ import annotations

import math

from caffe.proto import caffe_pb2

from g2s_caffe.core.errors import G2SError



def test_iterations(monitor_size: int, test_batch: int) -> int:
    """TEST forwards that cover the whole monitor split (the last batch wraps around)."""
    return math.ceil(monitor_size / test_batch)


def sgd_solver(net: str, snapshot_prefix: str, base_lr: float, max_iter: int, *, lr_policy: str,
               gamma: float, power: float, momentum: float, weight_decay: float, display: int,
               snapshot: int, solver_mode: str, seed: int, iter_size: int = 1,
               solver_type: str = "SGD") -> caffe_pb2.SolverParameter:
    """An SGD SolverParameter (no TEST phase; add test_iter/test_interval for one)."""
    mode = solver_mode.upper()
    if mode not in ("CPU", "GPU"):
        raise G2SError(f"--solver-mode {solver_mode!r}: expected CPU or GPU")
    s = caffe_pb2.SolverParameter()
    s.net = net
    s.type = solver_type
    s.base_lr = base_lr
    s.lr_policy = lr_policy
    s.gamma = gamma
    s.power = power
    s.momentum = momentum
    s.weight_decay = weight_decay
    s.max_iter = max_iter
    s.iter_size = iter_size
    s.display = display
    s.snapshot = snapshot
    s.snapshot_prefix = snapshot_prefix
    s.solver_mode = getattr(caffe_pb2.SolverParameter, mode)
    s.random_seed = seed
    return s


