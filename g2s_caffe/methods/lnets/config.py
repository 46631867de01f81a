"""`g2s lnets`'s configuration: one frozen dataclass, loaded from YAML (--config) and --set.

Strict like ANetConfig (config.py here) and G2S's TrainConfig: an unknown key or a value of
the wrong type is an error naming the dotted key.  None keeps the variant's value from
params.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs.schedule import SchedulerSettings
from g2s_caffe.methods.lnets import params as hp


@dataclass(frozen=True)
class LNetsSolverConfig:
    """Run-copy overrides of the generated nets and solvers (tests, the demo); both nets."""
    batch_size: int | None = None          # TRAIN batch
    test_batch_size: int | None = None     # the monitor split's TEST batch
    max_iter_lnet_o: int | None = None
    max_iter_lnet_s: int | None = None
    base_lr: float | None = None
    stepsize: int | None = None
    test_interval: int | None = None
    test_iter: int | None = None           # None: the whole monitor split
    snapshot: int | None = None
    display: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ThresholdConfig:
    """The face threshold stage (Fig. 3(b)): face images vs background images."""
    split: str | None = None               # None: val when prepared (images LNets were not trained on), else train
    face_images: int = hp.PAPER_THRESHOLD_IMAGES       # at most this many, spread evenly over the split
    background_crops: int = hp.PAPER_THRESHOLD_IMAGES  # crops away from the faces, at most this many
    registry_photos: bool = True           # plus the face-free photos of backgrounds.registry_backgrounds


@dataclass(frozen=True)
class LNetsConfig:
    variant: str = "full"                  # params.LNET_VARIANTS
    solver: LNetsSolverConfig = field(default_factory=LNetsSolverConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    keep_snapshots: int = 2                # last K snapshot pairs kept per job
    poll_seconds: float = 1.0
    progress_seconds: float = 15.0
    share_jobs: bool = True                # a job already trained in a sibling run is reused

    def scheduler(self) -> SchedulerSettings:
        # One job at a time: LNet_s trains on LNet_o's windows.
        return SchedulerSettings(jobs=1, keep_snapshots=self.keep_snapshots, poll_seconds=self.poll_seconds,
                                 progress_seconds=self.progress_seconds, share_jobs=self.share_jobs)

    @property
    def shape(self) -> hp.LNetShape:
        return hp.LNET_VARIANTS[self.variant][0]

    def check(self) -> "LNetsConfig":
        if self.variant not in hp.LNET_VARIANTS:
            raise G2SError(f"variant {self.variant!r}: expected one of {', '.join(hp.LNET_VARIANTS)}")
        if self.keep_snapshots < 1:
            raise G2SError("keep_snapshots must be >= 1")
        for k in ("batch_size", "test_batch_size", "max_iter_lnet_o", "max_iter_lnet_s", "stepsize",
                  "test_interval", "test_iter", "snapshot", "display"):
            v = getattr(self.solver, k)
            if v is not None and v < 1:
                raise G2SError(f"solver.{k} {v}: must be >= 1")
        if self.solver.base_lr is not None and not self.solver.base_lr > 0:
            raise G2SError(f"solver.base_lr {self.solver.base_lr}: must be > 0")
        if self.threshold.face_images < 1 or self.threshold.background_crops < 0:
            raise G2SError("threshold.face_images must be >= 1 and threshold.background_crops >= 0")
        return self

    def solver_settings(self, which: str | None = None) -> hp.LNetSolverSettings:
        """The variant's solver settings with this config's overrides (``which``: the net whose
        max_iter applies; None = the variant's)."""
        base = hp.LNET_VARIANTS[self.variant][1]
        over = {k: v for k, v in dataclasses.asdict(self.solver).items()
                if v is not None and hasattr(base, k)}
        if which is not None and getattr(self.solver, f"max_iter_{which}") is not None:
            over["max_iter"] = getattr(self.solver, f"max_iter_{which}")
        return dataclasses.replace(base, **over)
