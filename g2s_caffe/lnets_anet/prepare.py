"""An ANet run's nets and manifest: RUNS/anet/ with its two `caffe train` jobs.

    RUNS/anet/manifest.json        a g2s_caffe.runs.Run, method "lnets_anet", run "anet"
    RUNS/anet/nets/<dataset>/anet/ the generated nets and solvers (or --nets: a `g2s gen` tree)
    RUNS/anet/data/                the ANet data stage (data.py)
    RUNS/anet/pretrain/            job anet/pretrain: identity pre-training (siamese)
    RUNS/anet/finetune/            job anet/finetune: attribute fine-tuning; deploy.prototxt is
                                   the one-pass net, patch_deploy.prototxt the patch net
    RUNS/anet/svm/                 features of the SVM split, the SVMs (features.py, svm.py)

Run copies (what `caffe train` reads) come from the generated files: every Data source is
re-rooted to RUNS/anet/data (g2s_caffe.nets.reroot_sources), the identity classifier gets
the train split's number of people (the generated files carry the paper's 8000), the config's
batch and iteration overrides are applied, and the solver's net / snapshot_prefix point into
the job's directory, solver_mode following --gpus.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ..attributes import AttributeList
from ..config import to_dict
from ..errors import G2SError
from ..jobs.protofiles import read_text_proto, write_text_proto
from ..jobs.provenance import caffe_info, git_commit, now
from ..jobs.runner import LOG, SNAPSHOT_DIR
from ..layout import PreparedDataset
from ..runs import MANIFEST, Job, Run, load_run, locked, save_run
from . import nets as anet_nets
from . import params as hp
from .config import ANetConfig
from .data import DATA_DIR
from .gen import FILES as NET_FILES      # as `g2s gen` writes them under OUT/<dataset>/anet/
from .method import FINETUNE, METHOD, PRETRAIN, RANDOM

RUN = "anet"
NETS_DIR = "nets"
PATCH_DEPLOY = "patch_deploy.prototxt"
WEIGHTS_NOTE = ("no Model A: ANet is pre-trained from random init on face identities (paper §2.2), then "
                "fine-tuned on the attributes")
PLACEHOLDER_ROOT = "ANET_DATA"     # Data sources of the generated files, re-rooted in the run copies


@dataclass(frozen=True)
class Request:
    """Everything one `g2s anet` invocation asks for, resolved."""
    dataset: str
    data: PreparedDataset
    attrs: AttributeList
    runs: Path
    cfg: ANetConfig
    gpus: tuple[int, ...]
    nets: Path | None
    train_split: str
    monitor_split: str
    svm_split: str
    identities: int            # K: people in the train split (0 with anet_from)
    anet_from: Path | None     # an ANet run whose fine-tuned net this run uses (LFWA)

    @property
    def root(self) -> Path:
        return (self.runs / RUN).resolve()


# ------------------------------------------------------------------ nets
def nets_folder(nets: Path, dataset: str) -> Path:
    """The folder holding NET_FILES: NETS, NETS/anet or NETS/<dataset>/anet of a `g2s gen` tree."""
    for cand in (Path(nets), Path(nets) / "anet", Path(nets) / dataset / "anet"):
        if all((cand / f"{f}.prototxt").is_file() for f in NET_FILES):
            return cand
    raise G2SError(f"--nets {nets}: no ANet nets for {dataset!r} (expected {nets}/{dataset}/anet/"
                   f"{{{','.join(NET_FILES)}}}.prototxt; write them with `g2s gen`)")


# ------------------------------------------------------------------ run copies
def phase_of(layer) -> str:
    import caffe

    phases = {r.phase for r in layer.include if r.HasField("phase")}
    return "test" if phases == {caffe.TEST} else "train"


def copy_net(src: Path, req: Request, identities: int | None):
    """A train_val run copy: re-rooted, batches and (pre-training) the identity classifier set."""
    from caffe.proto import caffe_pb2

    from ..nets import reroot_sources

    net = reroot_sources(read_text_proto(src, caffe_pb2.NetParameter()), str(req.root / DATA_DIR))
    s = req.cfg.solver
    for layer in net.layer:
        if layer.type == "Data":
            batch = s.batch_size if phase_of(layer) == "train" else s.test_batch_size
            if batch is not None:
                layer.data_param.batch_size = batch
    if identities is not None:
        heads = [l for l in net.layer if l.name == anet_nets.IDENTITY_HEAD]
        if len(heads) != 1:
            raise G2SError(f"{src}: no layer {anet_nets.IDENTITY_HEAD!r} (the identity classifier); "
                           "regenerate the nets with `g2s gen`")
        heads[0].inner_product_param.num_output = identities
    return net


def copy_solver(src: Path, req: Request, job_dir: Path, stem: str, stage: str, test_batch: int | None):
    from caffe.proto import caffe_pb2

    solver = read_text_proto(src, caffe_pb2.SolverParameter())
    s = req.cfg.solver
    for field, value in (("max_iter", getattr(s, f"max_iter_{stage}")), ("base_lr", getattr(s, f"base_lr_{stage}")),
                         ("snapshot", s.snapshot), ("display", s.display), ("random_seed", s.seed)):
        if value is not None:
            setattr(solver, field, value)
    if stage == "finetune":
        if s.test_interval is not None:
            solver.test_interval = s.test_interval
        if s.test_iter is not None or s.test_batch_size is not None:
            del solver.test_iter[:]
            solver.test_iter.append(s.test_iter or math.ceil(req.data.count(req.monitor_split) / test_batch))
    solver.net = str((job_dir / "train_val.prototxt").resolve())
    solver.snapshot_prefix = str((job_dir / SNAPSHOT_DIR / stem).resolve())
    solver.solver_mode = caffe_pb2.SolverParameter.GPU if req.gpus else caffe_pb2.SolverParameter.CPU
    if solver.max_iter < 1 or solver.snapshot < 1:
        raise G2SError(f"{src}: max_iter {solver.max_iter} and snapshot {solver.snapshot} must be >= 1")
    return solver


def _test_batch(net) -> int | None:
    for layer in net.layer:
        if layer.type == "Data" and phase_of(layer) == "test":
            return layer.data_param.batch_size
    return None


def write_job(req: Request, nets_dir: Path, stage: str) -> Job:
    """One job's run copies and its manifest entry."""
    from caffe.proto import caffe_pb2

    jid = PRETRAIN if stage == "pretrain" else FINETUNE
    rel = stage
    job_dir = req.root / rel
    (job_dir / SNAPSHOT_DIR).mkdir(parents=True, exist_ok=True)
    net = copy_net(nets_dir / f"{stage}_train_val.prototxt", req, req.identities if stage == "pretrain" else None)
    solver = copy_solver(nets_dir / f"{stage}_solver.prototxt", req, job_dir, jid.replace("/", "_"), stage,
                         _test_batch(net))
    head = f"# run copy of {nets_dir} for job {jid} (written by g2s anet)\n"
    write_text_proto(job_dir / "train_val.prototxt", net, head)
    write_text_proto(job_dir / "solver.prototxt", solver, head)
    if stage == "pretrain":
        write_text_proto(job_dir / "deploy.prototxt", anet_nets.patch_deploy(req.cfg.shape), head)
    else:
        write_text_proto(job_dir / "deploy.prototxt",
                         read_text_proto(nets_dir / "onepass_deploy.prototxt", caffe_pb2.NetParameter()), head)
        write_text_proto(job_dir / PATCH_DEPLOY,
                         read_text_proto(nets_dir / "patch_deploy.prototxt", caffe_pb2.NetParameter()), head)
    extra = {"stage": stage, "init_from": RANDOM if stage == "pretrain" else PRETRAIN,
             "depends": [] if stage == "pretrain" else [PRETRAIN]}
    if stage == "finetune":
        extra["patch_deploy"] = f"{rel}/{PATCH_DEPLOY}"
    else:
        extra["identities"] = req.identities
    return Job(id=jid, step=0, attribute=None, attr_index=None, scheme=hp.ENLARGE_SCHEME, dir=rel,
               solver=f"{rel}/solver.prototxt", train_val=f"{rel}/train_val.prototxt", deploy=f"{rel}/deploy.prototxt",
               log=f"{rel}/{LOG}", seed=int(solver.random_seed), extra=extra)


def borrowed_jobs(req: Request) -> tuple[list[Job], dict]:
    """With --anet-from: the other run's two jobs, recorded as done with its weights (paths absolute)."""
    from ..runs import finished, sha256_file

    other = load_run(req.anet_from)
    if other.method != METHOD:
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
                  "attributes": other.attribute_names}


# ------------------------------------------------------------------ the run
def identity(req: Request) -> dict:
    """What must not change between a run and its rerun (scheduling and SVM knobs may)."""
    return {"data": str(req.data.root.resolve()), "attributes": req.attrs.names, "variant": req.cfg.variant,
            "shape": asdict(req.cfg.shape), "solver": to_dict(req.cfg.solver),
            "nets": str(req.nets.resolve()) if req.nets else None, "gpus": bool(req.gpus),
            "anet_from": str(req.anet_from.resolve()) if req.anet_from else None}


def create_or_load(req: Request) -> Run:
    """The run's manifest: created with its jobs and run copies on the first call; on a rerun,
    loaded and checked to be the same run (else a G2SError: use another --runs)."""
    root = req.root
    ident = identity(req)
    with locked(root):
        if (root / MANIFEST).is_file():
            run = load_run(root)
            old = run.config.get("identity")
            if run.method != METHOD or old != ident:
                diff = sorted(k for k in ident if (old or {}).get(k) != ident[k])
                raise G2SError(f"{root / MANIFEST}: this run was started with different settings "
                               f"({', '.join(diff) or 'another method'}); rerun with the original arguments, "
                               "or use another --runs directory")
            return run
        config = to_dict(req.cfg)
        config.update(identity=ident, shape=asdict(req.cfg.shape), gpus=list(req.gpus),
                      train_split=req.train_split, monitor_split=req.monitor_split)
        if req.anet_from:
            jobs, source = borrowed_jobs(req)
            if source["shape"] != asdict(req.cfg.shape):
                raise G2SError(f"--anet-from {req.anet_from}: its ANet is variant shape {source['shape']}, this run "
                               f"asks for {req.cfg.variant!r}; pass the same --variant")
            config["anet_from"] = source
            nets_dir = None
        else:
            if req.nets is not None:
                nets_dir = nets_folder(req.nets, req.dataset)
            else:                                   # the same files as `g2s gen`, sized by --variant
                from .gen import generate_anet_tree

                written = generate_anet_tree(req.attrs, root / NETS_DIR, req.dataset, req.cfg.shape,
                                             req.cfg.solver_settings(), PLACEHOLDER_ROOT,
                                             f"g2s anet (variant {req.cfg.variant}, generated for {req.data.root})",
                                             req.data.count(req.monitor_split), req.monitor_split)
                nets_dir = written[0].parent
            jobs = [write_job(req, nets_dir, "pretrain"), write_job(req, nets_dir, "finetune")]
            config["nets"] = str(nets_dir)
        run = Run(root=root, run=RUN, dataset=req.dataset, data=str(req.data.root.resolve()),
                  attributes=[{"name": a.name, "crop": hp.ENLARGE_SCHEME} for a in req.attrs.attributes],
                  steps=[], weights_a={"path": None, "sha256": None, "random_init": True, "note": WEIGHTS_NOTE},
                  config=config, caffe=caffe_info(), git_commit=git_commit(), created=now(), jobs=jobs,
                  method=METHOD)
        save_run(run)
        return run
