"""`g2s anet`'s configuration: one frozen dataclass, loaded from YAML (--config) and --set.

Strict like G2S's TrainConfig (g2s_caffe/core/config.py): an unknown key or a value of the wrong
type is an error naming the dotted key.  None keeps the variant's value from params.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs.schedule import SchedulerSettings
from g2s_caffe.methods.anet import params as hp


@dataclass(frozen=True)
class ANetSolverConfig:
    """Run-copy overrides of the generated nets and solvers (tests, the demo)."""
    batch_size: int | None = None          # TRAIN batch of both stages
    test_batch_size: int | None = None     # fine-tuning's TEST batch
    max_iter_pretrain: int | None = None
    max_iter_finetune: int | None = None
    base_lr_pretrain: float | None = None
    base_lr_finetune: float | None = None
    test_interval: int | None = None
    test_iter: int | None = None           # None: the whole monitor split
    snapshot: int | None = None
    display: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class SVMConfig:
    """The SVM stage (svm.py).  None = params.py's SVM_C_GRID / SVM_HELD_OUT_FRACTION."""
    c_grid: tuple[float, ...] | None = None
    held_out_fraction: float | None = None
    max_iter: int = 5000                   # LIBLINEAR iterations per fit (non-convergence is recorded)
    seed: int = 1701                       # the held-out draw and LIBLINEAR's own


@dataclass(frozen=True)
class ANetConfig:
    variant: str = "full"                  # params.ANET_VARIANTS
    solver: ANetSolverConfig = field(default_factory=ANetSolverConfig)
    svm: SVMConfig = field(default_factory=SVMConfig)
    feature_batch: int = 32                # images per one-pass forward
    feature_chunk: int = 1024              # images per resumable features file
    keep_snapshots: int = 2                # last K snapshot pairs kept per job
    poll_seconds: float = 1.0
    progress_seconds: float = 15.0
    share_jobs: bool = True                # a job already trained in a sibling run is reused

    def scheduler(self) -> SchedulerSettings:
        # One job at a time: fine-tuning starts from pre-training's final weights.
        return SchedulerSettings(jobs=1, keep_snapshots=self.keep_snapshots, poll_seconds=self.poll_seconds,
                                 progress_seconds=self.progress_seconds, share_jobs=self.share_jobs)

    @property
    def shape(self) -> hp.ANetShape:
        return hp.ANET_VARIANTS[self.variant][0]

    @property
    def c_grid(self) -> tuple[float, ...]:
        return tuple(self.svm.c_grid) if self.svm.c_grid is not None else hp.SVM_C_GRID

    @property
    def held_out_fraction(self) -> float:
        f = self.svm.held_out_fraction
        return hp.SVM_HELD_OUT_FRACTION if f is None else f

    def check(self) -> "ANetConfig":
        if self.variant not in hp.ANET_VARIANTS:
            raise G2SError(f"variant {self.variant!r}: expected one of {', '.join(hp.ANET_VARIANTS)}")
        if min(self.feature_batch, self.feature_chunk, self.keep_snapshots, self.svm.max_iter) < 1:
            raise G2SError("feature_batch, feature_chunk, keep_snapshots and svm.max_iter must be >= 1")
        if not self.c_grid or any(c <= 0 for c in self.c_grid):
            raise G2SError(f"svm.c_grid {list(self.c_grid)}: expected one or more values > 0")
        if not 0 < self.held_out_fraction < 1:
            raise G2SError(f"svm.held_out_fraction {self.held_out_fraction}: expected a fraction in (0, 1)")
        for k in ("batch_size", "test_batch_size", "max_iter_pretrain", "max_iter_finetune", "test_interval",
                  "test_iter", "snapshot", "display"):
            v = getattr(self.solver, k)
            if v is not None and v < 1:
                raise G2SError(f"solver.{k} {v}: must be >= 1")
        return self

    def solver_settings(self) -> hp.ANetSolverSettings:
        """The variant's solver settings with this config's overrides applied."""
        import dataclasses

        base = hp.ANET_VARIANTS[self.variant][1]
        over = {k: v for k, v in dataclasses.asdict(self.solver).items()
                if v is not None and k != "test_iter" and hasattr(base, k)}
        return dataclasses.replace(base, **over)
