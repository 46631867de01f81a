"""Caffe training jobs with manifests, shared by every method (no method is named here).

A run is a directory with a manifest (``g2s_caffe.core.runs``: Run, Job, Init, Final) listing its
jobs; each job is one real `caffe train` on its own run copies of the nets.  What differs
between methods is only where a job's initial weights come from and what identifies a
training (``hooks.JobHooks``); everything else is here:

hooks       the two hooks a method provides: init weights of a job, fingerprint of a job
prepare     a run's manifest and its jobs' run copies: created once, checked on rerun
runcopy     run copies of generated nets and solvers (re-rooted data, overrides, job paths)
request     the training commands' shared arguments, request resolution and pre-flight checks
provenance  what a manifest records about the machine: time, git commit, Caffe build
runner      one `caffe train` process: resume, corrupt-snapshot fallback, divergence stop, final
schedule    jobs over CPU slots or GPUs in dependency order, with one progress bar over all jobs
reuse       a job already trained in a sibling run (same fingerprint) is adopted, not retrained
stages      a run's non-Caffe stages: kept when their inputs and outputs are unchanged
chunks      resumable per-item work (per-image results in tagged chunk files)
progress    Caffe log parsing and the live per-job lines
curves      a job's log -> curves.csv + curves.png
"""
