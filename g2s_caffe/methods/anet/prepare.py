"""An ANet run's nets and manifest: RUNS/<run>/ with its two `caffe train` jobs.

    RUNS/<run>/manifest.json        a g2s_caffe.core.runs.Run; its face source (faces.py) names
                                    the run and its method: "anet_prep_boxes", method "anet"
                                    (--faces prep, part 1), or "lnets_anet", method "lnets_anet"
                                    (--faces lnets: LNets' face windows, the system end to end)
    RUNS/<run>/nets/<dataset>/anet/ the generated nets and solvers (or --nets: a `g2s gen` tree)
    RUNS/<run>/faces/               --faces lnets: LNets' face window of every image
    RUNS/<run>/data/                the ANet data stage (data.py)
    RUNS/<run>/pretrain/            job anet/pretrain: identity pre-training (siamese)
    RUNS/<run>/finetune/            job anet/finetune: attribute fine-tuning; deploy.prototxt is
                                    the one-pass net, patch_deploy.prototxt the patch net
    RUNS/<run>/svm/                 features of the SVM split, the SVMs (features.py, svm.py)

Run copies (what `caffe train` reads) come from the generated files: every Data source is
re-rooted to RUNS/<run>/data (g2s_caffe.core.nets.data_layers.reroot_sources), the identity classifier gets
the train split's number of people (the generated files carry the paper's 8000), the config's
batch and iteration overrides are applied, and the solver's net / snapshot_prefix point into
the job's directory, solver_mode following --gpus.
"""
from __future__ import annotations

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
from g2s_caffe.core.runs import Job, Run, load_run
from g2s_caffe.methods.anet import nets as anet_nets
from g2s_caffe.methods.anet import params as hp
from g2s_caffe.methods.anet.config import ANetConfig
from g2s_caffe.methods.anet.data import DATA_DIR
from g2s_caffe.methods.anet.faces import PREP, anet_methods, source
from g2s_caffe.methods.anet.gen import FILES as NET_FILES, generate_anet_tree  # as `g2s gen` writes them
from g2s_caffe.methods.anet.job_hooks import FINETUNE, PRETRAIN, RANDOM

PATCH_DEPLOY = "patch_deploy.prototxt"
WEIGHTS_NOTE = ("no Model A: ANet is pre-trained from random init on face identities (paper §2.2), then "
                "fine-tuned on the attributes")
PLACEHOLDER_ROOT = "ANET_DATA"     # Data sources of the generated files, re-rooted in the run copies


@dataclass(frozen=True)
class Request(TrainingRequest):
    """Everything one `g2s anet` invocation asks for, resolved."""
    data: PreparedDataset
    attrs: AttributeList
    cfg: ANetConfig
    train_split: str
    monitor_split: str
    svm_split: str
    identities: int            # K: people in the train split (0 with anet_from)
    anet_from: Path | None     # an ANet run whose fine-tuned net this run uses (LFWA)
    faces: str = PREP          # where the face regions come from (faces.py): a face source's name
    lnets: Path | None = None  # --faces lnets: the LNets run (g2s lnets) that finds them
    images: Path | None = None  # --faces lnets: the raw images (None: the prepared manifest's)

    @property
    def run_name(self) -> str:
        return source(self.faces).run_name

    @property
    def method(self) -> str:
        return source(self.faces).method

    @property
    def root(self) -> Path:
        return (self.runs / self.run_name).resolve()


# ------------------------------------------------------------------ nets
def nets_folder(nets: Path, dataset: str) -> Path:
    """The folder holding NET_FILES: NETS, NETS/anet or NETS/<dataset>/anet of a `g2s gen` tree."""
    return runcopy.nets_folder(nets, dataset, "anet", NET_FILES, "ANet")


# ------------------------------------------------------------------ run copies
def copy_net(src: Path, req: Request, identities: int | None):
    """A train_val run copy: re-rooted, batches and (pre-training) the identity classifier set."""
    s = req.cfg.solver
    net = runcopy.rerooted_net(src, req.root / DATA_DIR, s.batch_size, s.test_batch_size)
    if identities is not None:
        heads = [l for l in net.layer if l.name == anet_nets.IDENTITY_HEAD]
        if len(heads) != 1:
            raise G2SError(f"{src}: no layer {anet_nets.IDENTITY_HEAD!r} (the identity classifier); "
                           "regenerate the nets with `g2s gen`")
        heads[0].inner_product_param.num_output = identities
    return net


def copy_solver(src: Path, req: Request, job_dir: Path, stem: str, stage: str, test_batch: int | None):
    s = req.cfg.solver
    over = {"max_iter": getattr(s, f"max_iter_{stage}"), "base_lr": getattr(s, f"base_lr_{stage}"),
            "snapshot": s.snapshot, "display": s.display, "random_seed": s.seed}
    if stage == "finetune":
        over["test_interval"] = s.test_interval
    solver = runcopy.solver_copy(src, over, job_dir, stem, req.gpus)
    if stage == "finetune":
        runcopy.set_test_iter(solver, s.test_iter, s.test_batch_size, req.data.count(req.monitor_split), test_batch)
    return solver


def write_job(req: Request, nets_dir: Path, stage: str) -> Job:
    """One job's run copies and its manifest entry."""
    from caffe.proto import caffe_pb2

    jid = PRETRAIN if stage == "pretrain" else FINETUNE
    net = copy_net(nets_dir / f"{stage}_train_val.prototxt", req, req.identities if stage == "pretrain" else None)
    solver = copy_solver(nets_dir / f"{stage}_solver.prototxt", req, req.root / stage, jid.replace("/", "_"), stage,
                         runcopy.test_batch(net))
    files = {"train_val": net, "solver": solver}
    extra = {"stage": stage, "init_from": RANDOM if stage == "pretrain" else PRETRAIN,
             "depends": [] if stage == "pretrain" else [PRETRAIN]}
    if stage == "pretrain":
        files["deploy"] = anet_nets.patch_deploy(req.cfg.shape)
        extra["identities"] = req.identities
    else:
        read = lambda name: read_text_proto(nets_dir / name, caffe_pb2.NetParameter())
        files["deploy"] = read("onepass_deploy.prototxt")
        files[PATCH_DEPLOY.removesuffix(".prototxt")] = read("patch_deploy.prototxt")
        extra["patch_deploy"] = f"{stage}/{PATCH_DEPLOY}"
    return write_job_files(req.root, stage, jid, files, f"# run copy of {nets_dir} for job {jid} (written by g2s anet)\n",
                           solver.random_seed, extra, scheme=hp.ENLARGE_SCHEME)


def borrowed_jobs(req: Request) -> tuple[list[Job], dict]:
    """With --anet-from: the other run's two jobs, recorded as done with its weights (paths absolute)."""
    from g2s_caffe.core.runs import finished, sha256_file

    other = load_run(req.anet_from)
    if other.method not in anet_methods():
        raise G2SError(f"--anet-from {req.anet_from}: a {other.method!r} run, not an ANet run (`g2s anet`)")
    jobs = []
    for jid in (PRETRAIN, FINETUNE):
        j = other.job(jid)
        if not finished(j):
            raise G2SError(f"--anet-from {req.anet_from}: job {jid} is {j.status}; finish that run first "
                           "(rerun its `g2s anet` command)")
        for rel in (j.final.path, j.deploy, j.train_val):
            if not other.path(rel).is_file():
                raise G2SError(f"--anet-from: {other.path(rel)} is missing")
        if sha256_file(other.path(j.final.path)) != j.final.sha256:
            raise G2SError(f"{other.path(j.final.path)}: changed since {req.anet_from}/manifest.json recorded it")
        copy = Job.from_json(j.to_json())
        for name in ("dir", "solver", "train_val", "deploy", "log"):
            setattr(copy, name, str(other.path(getattr(j, name)).resolve()))
        copy.final.path = str(other.path(j.final.path).resolve())
        if copy.init and copy.init.path:
            copy.init.path = str(other.path(copy.init.path).resolve())
        if "patch_deploy" in copy.extra:
            copy.extra["patch_deploy"] = str(other.path(copy.extra["patch_deploy"]).resolve())
        copy.extra["shared_from"] = f"{other.root.resolve()}/{jid}"
        jobs.append(copy)
    return jobs, {"run": str(other.root.resolve()), "dataset": other.dataset, "shape": other.config.get("shape"),
                  "attributes": other.attribute_names, "faces": other.config.get("faces", PREP)}


# ------------------------------------------------------------------ the run
def identity(req: Request) -> dict:
    """What must not change between a run and its rerun (scheduling and SVM knobs may)."""
    return {"data": str(req.data.root.resolve()), "attributes": req.attrs.names, "variant": req.cfg.variant,
            "shape": asdict(req.cfg.shape), "solver": to_dict(req.cfg.solver),
            "nets": str(req.nets.resolve()) if req.nets else None, "gpus": bool(req.gpus),
            "anet_from": str(req.anet_from.resolve()) if req.anet_from else None, "faces": req.faces,
            "lnets": str(req.lnets.resolve()) if req.lnets else None,
            "lnets_weights": source(req.faces).identity(req)}


def create_or_load(req: Request) -> Run:
    """The run's manifest: created with its jobs and run copies on the first call; on a rerun,
    loaded and checked to be the same run (else a G2SError: use another --runs)."""
    ident = identity(req)

    def create() -> Run:
        config = to_dict(req.cfg)
        config.update(identity=ident, shape=asdict(req.cfg.shape), gpus=list(req.gpus),
                      train_split=req.train_split, monitor_split=req.monitor_split, faces=req.faces,
                      lnets=str(req.lnets.resolve()) if req.lnets else None,
                      images=str(req.images) if req.images else None)
        if req.anet_from:
            jobs, source = borrowed_jobs(req)
            if source["shape"] != asdict(req.cfg.shape):
                raise G2SError(f"--anet-from {req.anet_from}: its ANet is variant shape {source['shape']}, this run "
                               f"asks for {req.cfg.variant!r}; pass the same --variant")
            if source["faces"] != req.faces:
                raise G2SError(f"--anet-from {req.anet_from}: its ANet was trained on --faces {source['faces']} regions, "
                               f"this run asks for --faces {req.faces}; pass the same --faces")
            config["anet_from"] = source
        else:
            nets_dir = run_nets(req, generate_anet_tree, nets_folder, PLACEHOLDER_ROOT, "g2s anet")
            jobs = [write_job(req, nets_dir, "pretrain"), write_job(req, nets_dir, "finetune")]
            config["nets"] = str(nets_dir)
        return new_run(req.root, req.run_name, req.method, req.dataset, req.data.root,
                       [{"name": a.name, "crop": hp.ENLARGE_SCHEME} for a in req.attrs.attributes],
                       {"path": None, "sha256": None, "random_init": True, "note": WEIGHTS_NOTE}, config, jobs)

    return create_or_load_run(req.root, req.method, ident, create)
