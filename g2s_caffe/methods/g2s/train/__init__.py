"""G2S's three-stage training driver (Fig. 1): Model A -> Step 1 (B) -> Step 2 (C_i) -> Step 3.

plan      which jobs a run has and where each job's init weights come from (ablations)
prepare   the run copies of the generated nets/solvers and the run manifest
validate  pre-flight checks (data, nets, solvers, Model A) before any job starts
method    G2S's init weights (Model A, head surgery from B / C_i) for the shared runner
share     G2S's job fingerprints: which trainings of Table 1's runs are the same
cluster   the whole chain as one Slurm submission (or three Kubernetes Jobs)
cli       `g2s train`

The method-independent machinery (one `caffe train` process with resume and divergence
handling, the scheduler, progress, curves, reuse of a sibling run's job) is
``g2s_caffe.core.jobs``, shared with the LNets+ANet baseline.
"""
