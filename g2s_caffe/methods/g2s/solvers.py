"""The paper's SGD solver (§3.1) for the G2S nets, as a caffe_pb2.SolverParameter."""
from __future__ import annotations

from caffe.proto import caffe_pb2

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.nets.solvers import sgd_solver, test_iterations
from g2s_caffe.methods.g2s import params as hp


def forward_batch(settings: hp.SolverSettings) -> int:
    """Per-forward batch: ``iter_size`` forwards accumulate one effective batch."""
    if settings.iter_size < 1 or settings.batch_size % settings.iter_size:
        raise G2SError(f"--iter-size {settings.iter_size} must be >= 1 and divide --batch-size "
                       f"{settings.batch_size} (the effective batch is kept; pick a divisor)")
    return settings.batch_size // settings.iter_size


def solver(net: str, snapshot_prefix: str, max_iter: int, monitor_size: int,
           settings: hp.SolverSettings) -> caffe_pb2.SolverParameter:
    """The paper's solver (§3.1) for one G2S net, with its TEST phase over the monitor split."""
    s = sgd_solver(net, snapshot_prefix, settings.base_lr, max_iter, lr_policy=hp.LR_POLICY, gamma=hp.GAMMA,
                   power=hp.POWER, momentum=hp.MOMENTUM, weight_decay=hp.WEIGHT_DECAY, display=hp.DISPLAY,
                   snapshot=settings.snapshot, solver_mode=settings.solver_mode, seed=settings.seed,
                   iter_size=settings.iter_size, solver_type=hp.SOLVER_TYPE)
    s.test_iter.append(test_iterations(monitor_size, settings.test_batch_size))
    s.test_interval = settings.test_interval
    return s
