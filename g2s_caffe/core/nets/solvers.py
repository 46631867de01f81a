"""The paper's SGD solver (§3.1) as a caffe_pb2.SolverParameter."""
from __future__ import annotations

import math

from caffe.proto import caffe_pb2

from g2s_caffe.methods.g2s import params as hp
from g2s_caffe.core.errors import G2SError


def forward_batch(settings: hp.SolverSettings) -> int:
    """Per-forward batch: ``iter_size`` forwards accumulate one effective batch."""
    if settings.iter_size < 1 or settings.batch_size % settings.iter_size:
        raise G2SError(f"--iter-size {settings.iter_size} must be >= 1 and divide --batch-size "
                       f"{settings.batch_size} (the effective batch is kept; pick a divisor)")
    return settings.batch_size // settings.iter_size


def test_iterations(monitor_size: int, test_batch: int) -> int:
    """TEST forwards that cover the whole monitor split (the last batch wraps around)."""
    return math.ceil(monitor_size / test_batch)


def sgd_solver(net: str, snapshot_prefix: str, base_lr: float, max_iter: int, *, lr_policy: str,
               gamma: float, power: float, momentum: float, weight_decay: float, display: int,
               snapshot: int, solver_mode: str, seed: int, iter_size: int = 1) -> caffe_pb2.SolverParameter:
    """An SGD SolverParameter (no TEST phase; add test_iter/test_interval for one)."""
    mode = solver_mode.upper()
    if mode not in ("CPU", "GPU"):
        raise G2SError(f"--solver-mode {solver_mode!r}: expected CPU or GPU")
    s = caffe_pb2.SolverParameter()
    s.net = net
    s.type = hp.SOLVER_TYPE
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


def solver(net: str, snapshot_prefix: str, max_iter: int, monitor_size: int,
           settings: hp.SolverSettings) -> caffe_pb2.SolverParameter:
    """The paper's solver (§3.1) for one G2S net, with its TEST phase over the monitor split."""
    s = sgd_solver(net, snapshot_prefix, settings.base_lr, max_iter, lr_policy=hp.LR_POLICY, gamma=hp.GAMMA,
                   power=hp.POWER, momentum=hp.MOMENTUM, weight_decay=hp.WEIGHT_DECAY, display=hp.DISPLAY,
                   snapshot=settings.snapshot, solver_mode=settings.solver_mode, seed=settings.seed,
                   iter_size=settings.iter_size)
    s.test_iter.append(test_iterations(monitor_size, settings.test_batch_size))
    s.test_interval = settings.test_interval
    return s
