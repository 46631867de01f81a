"""The three-stage training driver (Fig. 1): Model A -> Step 1 (B) -> Step 2 (C_i) -> Step 3.

plan      which jobs a run has and where each job's init weights come from (ablations)
prepare   the run copies of the generated nets/solvers and the run manifest
validate  pre-flight checks (data, nets, solvers, Model A) before any job starts
runner    one `caffe train` process: resume, corrupt-snapshot fallback, divergence stop, retention, final
share     a job already trained in a sibling run (same fingerprint) is reused, not retrained
schedule  jobs over CPU slots or GPUs (several per GPU), in dependency order
progress  Caffe log parsing and the live per-job lines
curves    a job's log -> curves.csv + curves.png
cluster   the Step-2/3 jobs as a Slurm array and a Kubernetes Indexed Job
cli       `g2s train`
"""
