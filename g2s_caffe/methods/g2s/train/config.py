"""The training configuration: one dataclass, loaded from YAML (--config) and --set."""
from __future__ import annotations

from dataclasses import dataclass, field

from g2s_caffe.methods.g2s import params as hp
from g2s_caffe.core.jobs.schedule import SchedulerSettings
from g2s_caffe.methods.g2s.surgery import DEFAULT_MODE


@dataclass(frozen=True)
class NetConfig:
    """Which generated nets a run uses when --nets is not given (g2s gen's variants).
    None = the variant's value; image_size always follows the prepared data."""
    variant: str = "full"
    width_mult: float | None = None
    fc_dim: int | None = None
    crop_size: int | None = None


@dataclass(frozen=True)
class SolverConfig:
    """Run-copy overrides of the generated solvers (demo/test scaling).  None keeps the
    generated value; the learning-rate policy is always the paper's."""
    batch_size: int | None = None        # effective batch (forward batch x iter_size x GPUs)
    iter_size: int | None = None
    test_batch_size: int | None = None
    max_iter_step1: int | None = None
    max_iter_step23: int | None = None
    test_interval: int | None = None
    test_iter: int | None = None
    snapshot: int | None = None
    display: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    net: NetConfig = field(default_factory=NetConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    keep_snapshots: int = 2              # last K snapshot pairs kept per job
    head_init: str = DEFAULT_MODE        # copy | random (surgery.MODES)
    jobs: int = 1                        # concurrent CPU jobs (without --gpus)
    jobs_per_gpu: int = 1
    poll_seconds: float = 1.0            # how often the scheduler looks at its jobs
    progress_seconds: float = 15.0       # how often the per-job lines are printed
    effective_batch: int | None = None   # None = the variant's (paper: 128)
    share_jobs: bool = True              # a job already trained in a sibling run is reused (share.py)

    def scheduler(self) -> SchedulerSettings:
        return SchedulerSettings(jobs=self.jobs, jobs_per_gpu=self.jobs_per_gpu,
                                 keep_snapshots=self.keep_snapshots, poll_seconds=self.poll_seconds,
                                 progress_seconds=self.progress_seconds, share_jobs=self.share_jobs)


def default_effective_batch(cfg: TrainConfig) -> int:
    if cfg.effective_batch is not None:
        return cfg.effective_batch
    if cfg.solver.batch_size is not None:
        return cfg.solver.batch_size
    return hp.VARIANTS[cfg.net.variant][1].batch_size
