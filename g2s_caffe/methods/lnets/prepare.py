"""An LNets run's nets and manifest: RUNS/lnets/ with its two `caffe train` jobs.

    RUNS/lnets/manifest.json         a g2s_caffe.core.runs.Run, method "lnets", run "lnets"
    RUNS/lnets/nets/<dataset>/lnets/ the generated nets and solvers (or --nets: a `g2s gen` tree)
    RUNS/lnets/data/                 the LNets data stages (data.py)
    RUNS/lnets/lnet_o/               job lnets/lnet_o: LNet_o fine-tuned on whole images
    RUNS/lnets/lnet_s/               job lnets/lnet_s: LNet_s fine-tuned on LNet_o's windows
    RUNS/lnets/threshold/            the face threshold: scores, threshold.json, threshold.png

Run copies (what `caffe train` reads) come from the generated files: every Data source is
re-rooted to RUNS/lnets/data (g2s_caffe.core.nets.data_layers.reroot_sources), the config's batch and iteration
overrides are applied, the solver's net / snapshot_prefix point into the job's directory and
solver_mode follows --gpus.  ``Run.pretrained`` records the ImageNet pre-training: BVLC
AlexNet's path and sha256, or random init (``--weights-alexnet none``, said loudly).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from g2s_caffe.core.attributes import AttributeList
from g2s_caffe.core.config import to_dict
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs import runcopy
from g2s_caffe.core.jobs.prepare import create_or_load as create_or_load_run, new_run, write_job as write_job_files
from g2s_caffe.core.jobs.request import TrainingRequest
from g2s_caffe.core.jobs.runcopy import run_nets
from g2s_caffe.core.layout import PreparedDataset
from g2s_caffe.core.nets.protofiles import read_text_proto
from g2s_caffe.core.runs import Job, Run
from g2s_caffe.methods.lnets import nets as lnet_nets
from g2s_caffe.methods.lnets import params as hp
from g2s_caffe.methods.lnets.config import LNetsConfig
from g2s_caffe.methods.lnets.data import DATA_DIR
from g2s_caffe.methods.lnets.gen import LNETS_FILES, generate_lnets_tree
from g2s_caffe.methods.lnets.job_hooks import LNET_O, LNET_S, METHOD, RUN

PLACEHOLDER_ROOT = "LNETS_DATA"     # Data sources of the generated files, re-rooted in the run copies
JOBS = {"lnet_o": LNET_O, "lnet_s": LNET_S}
IMAGES = {"lnet_o": lnet_nets.WHOLE, "lnet_s": lnet_nets.HEAD_SHOULDER}


@dataclass(frozen=True)
class Request(TrainingRequest):
    """Everything one `g2s lnets` invocation asks for, resolved."""
    data: PreparedDataset
    attrs: AttributeList
    cfg: LNetsConfig
    alexnet: Path | None         # None: random init
    images: Path | None          # --images: where the raw images are (None: the manifest's)
    train_split: str
    monitor_split: str
    threshold_split: str

    @property
    def root(self) -> Path:
        return (self.runs / RUN).resolve()


def weights_entry(alexnet: Path | None) -> dict:
    """Run.pretrained: the ImageNet pre-training both nets start from."""
    from g2s_caffe.core.runs import sha256_file

    if alexnet is None:
        return {"path": None, "sha256": None, "random_init": True, "WARNING": hp.ALEXNET_RANDOM_WARNING,
                "note": "LNet_o and LNet_s start from their fillers (--weights-alexnet none)"}
    if not alexnet.is_file():
        raise G2SError(f"{alexnet}: BVLC AlexNet not found. {hp.ALEXNET_HINT}")
    return {"path": str(alexnet), "sha256": sha256_file(alexnet), "random_init": False,
            "note": "BVLC AlexNet (ImageNet's 1,000 classes, §2.1's pre-training): conv1..conv5 by name"}


def nets_folder(nets: Path, dataset: str) -> Path:
    """The folder holding the LNets files: NETS, NETS/lnets or NETS/<dataset>/lnets of a `g2s gen` tree."""
    return runcopy.nets_folder(nets, dataset, "lnets", LNETS_FILES, "LNets")


def copy_net(src: Path, req: Request):
    s = req.cfg.solver
    return runcopy.rerooted_net(src, req.root / DATA_DIR, s.batch_size, s.test_batch_size)


def copy_solver(src: Path, req: Request, job_dir: Path, which: str, stem: str, test_batch: int | None):
    s = req.cfg.solver
    over = {"max_iter": getattr(s, f"max_iter_{which}"), "base_lr": s.base_lr, "stepsize": s.stepsize,
            "test_interval": s.test_interval, "snapshot": s.snapshot, "display": s.display, "random_seed": s.seed}
    solver = runcopy.solver_copy(src, over, job_dir, stem, req.gpus)
    runcopy.set_test_iter(solver, s.test_iter, s.test_batch_size, req.data.count(req.monitor_split), test_batch)
    return solver


def write_job(req: Request, nets_dir: Path, which: str) -> Job:
    """One job's run copies and its manifest entry."""
    from caffe.proto import caffe_pb2

    jid = JOBS[which]
    net = copy_net(nets_dir / f"{which}_train_val.prototxt", req)
    solver = copy_solver(nets_dir / f"{which}_solver.prototxt", req, req.root / which, which, jid.replace("/", "_"),
                         runcopy.test_batch(net))
    deploy = read_text_proto(nets_dir / f"{which}_deploy.prototxt", caffe_pb2.NetParameter())
    return write_job_files(req.root, which, jid, {"train_val": net, "solver": solver, "deploy": deploy},
                           f"# run copy of {nets_dir} for job {jid} (written by g2s lnets)\n", solver.random_seed,
                           {"net": which, "images": IMAGES[which], "depends": []}, scheme=IMAGES[which])


def identity(req: Request, weights: dict) -> dict:
    """What must not change between a run and its rerun (scheduling and threshold knobs may);
    as it reads back from JSON (tuples as lists)."""
    return json.loads(json.dumps({"data": str(req.data.root.resolve()), "attributes": req.attrs.names, "variant": req.cfg.variant,
            "shape": asdict(req.cfg.shape), "solver": to_dict(req.cfg.solver),
            "nets": str(req.nets.resolve()) if req.nets else None, "gpus": bool(req.gpus),
            "alexnet": {"path": weights["path"], "sha256": weights["sha256"]}}))


def create_or_load(req: Request) -> Run:
    """The run's manifest: created with its jobs and run copies on the first call; on a rerun,
    loaded and checked to be the same run (else a G2SError: use another --runs)."""
    weights = weights_entry(req.alexnet)

    def create() -> Run:
        nets_dir = run_nets(req, generate_lnets_tree, nets_folder, PLACEHOLDER_ROOT, "g2s lnets")
        jobs = [write_job(req, nets_dir, "lnet_o"), write_job(req, nets_dir, "lnet_s")]
        config = to_dict(req.cfg)
        config.update(identity=identity(req, weights), shape=asdict(req.cfg.shape), gpus=list(req.gpus),
                      nets=str(nets_dir), train_split=req.train_split, monitor_split=req.monitor_split,
                      images=str(req.images) if req.images else None)
        return new_run(req.root, RUN, METHOD, req.dataset, req.data.root,
                       [{"name": a.name, "crop": None} for a in req.attrs.attributes], weights, config, jobs)

    return create_or_load_run(req.root, METHOD, identity(req, weights), create)


def shape_of(run: Run) -> hp.LNetShape:
    d = dict(run.config["shape"])
    d["widths"] = tuple(d["widths"])
    return hp.LNetShape(**d)
