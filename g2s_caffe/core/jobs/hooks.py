"""What a method tells the shared job machinery: where a job's weights start, what a job is.

The runner and the scheduler (``runner.JobProcess``, ``schedule.Scheduler``) know nothing of
Steps 1-3 or of ANet's stages; a method object answers the two questions that depend on it.
"""
from __future__ import annotations

from typing import Protocol

from g2s_caffe.core.runs import Init, Job, Run


class JobHooks(Protocol):
    def resolve_init(self, run: Run, job: Job) -> Init:
        """The job's initial weights, from the manifest only (a derived caffemodel is written
        into the job's directory when the method needs one).  Raise G2SError when a job it
        starts from is not finished or its weights changed since they were recorded."""

    def fingerprint(self, run: Run, job: Job) -> str | None:
        """A hash of everything that determines the job's training (solver, net, init), or
        None when it cannot be known (then the job is never shared with a sibling run)."""
