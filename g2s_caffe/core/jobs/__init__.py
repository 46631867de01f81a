"""Caffe training jobs with manifests, shared by every method of the project (G2S's
``g2s_caffe.methods.g2s.train`` and the LNets+ANet baseline's ``g2s_caffe.methods.lnets_anet``).

A run is a directory with a manifest (``g2s_caffe.core.runs``: Run, Job, Init, Final) listing its
jobs; each job is one real `caffe train` on its own run copies of the nets.  What differs
between methods is only where a job's initial weights come from and what identifies a
training (``method.Method``); everything else is here:

method      the two hooks a method provides: init weights of a job, fingerprint of a job
protofiles  reading and writing Caffe text protos (prototxt), atomically
provenance  what a manifest records about the machine: time, git commit, Caffe build
runner      one `caffe train` process: resume, corrupt-snapshot fallback, divergence stop, final
schedule    jobs over CPU slots or GPUs in dependency order, with one progress bar over all jobs
reuse       a job already trained in a sibling run (same fingerprint) is adopted, not retrained
progress    Caffe log parsing and the live per-job lines
curves      a job's log -> curves.csv + curves.png
"""
