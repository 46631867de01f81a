"""A run's nets and manifest: pick/generate the nets, write each job's run copies.

Run copies (never the committed files) are what `caffe train` reads: every Data source is
re-rooted to the prepared dataset (last two path components kept, see core.nets.data_layers.reroot_sources),
the solver's net/snapshot_prefix point into the job's directory, solver_mode follows
--gpus, and the config's test/demo scaling (iterations, batch) is applied through
caffe_pb2 messages.  The learning-rate policy is never touched.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from g2s_caffe.core.attributes import AttributeList
from g2s_caffe.core.config import merge, to_dict
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs.prepare import create_or_load as create_or_load_run, new_run, write_job
from g2s_caffe.core.jobs.request import TrainingRequest
from g2s_caffe.core.jobs.runner import SNAPSHOT_DIR
from g2s_caffe.core.layout import PreparedDataset
from g2s_caffe.core.nets.protofiles import read_text_proto
from g2s_caffe.core.paths import repo_root
from g2s_caffe.core.runs import Run, sha256_file
from g2s_caffe.methods.g2s import params as hp
from g2s_caffe.methods.g2s.method import ID as G2S
from g2s_caffe.methods.g2s.steps import run_name
from g2s_caffe.methods.g2s.train.config import TrainConfig
from g2s_caffe.methods.g2s.train.plan import JobSpec

VGG_FACE_HINT = ("Model A is the VGG-Face caffemodel (VGG_FACE.caffemodel, ~580 MB, from the Oxford "
                 "VGG-Face release: https://www.robots.ox.ac.uk/~vgg/software/vgg_face/, the Caffe "
                 "archive vgg_face_caffe.tar.gz). Put it at weights/VGG_FACE.caffemodel or pass "
                 "--weights-a PATH; `--weights-a none` trains from random init instead")
RANDOM_WARNING = ("Model A replaced by RANDOM INIT (--weights-a none): not the paper's setting; "
                  "accuracies from this run are not comparable to the paper's")


@dataclass(frozen=True)
class Request(TrainingRequest):
    """Everything one `g2s train` invocation asks for, resolved and checked for types."""
    data: PreparedDataset
    attrs: AttributeList
    cfg: TrainConfig
    steps: tuple[int, ...]
    weights_a: Path | None         # None = random init


def default_weights_a() -> Path:
    return repo_root() / "weights" / "VGG_FACE.caffemodel"


def resolve_weights_a(text: str | None) -> Path | None:
    if text is not None and text.lower() == "none":
        return None
    path = Path(text) if text else default_weights_a()
    return path.resolve()


def check_weights_a(path: Path | None) -> dict:
    """The manifest's weights_a entry; a missing file is a G2SError saying where to get it."""
    if path is None:
        return {"path": None, "sha256": None, "random_init": True, "WARNING": RANDOM_WARNING}
    if not path.is_file():
        raise G2SError(f"{path}: Model A not found. {VGG_FACE_HINT}")
    return {"path": str(path), "sha256": sha256_file(path)}


# ------------------------------------------------------------------ nets
def nets_folder(nets: Path, dataset: str) -> Path:
    """OUT/<dataset> of a generated tree (``nets`` may be OUT or OUT/<dataset>)."""
    for cand in (Path(nets) / dataset, Path(nets)):
        if (cand / "step1" / "solver.prototxt").is_file() or (cand / "step2").is_dir():
            return cand
    raise G2SError(f"--nets {nets}: no generated tree for {dataset!r} (expected {nets}/{dataset}/step1/"
                   "solver.prototxt; write one with `g2s gen`)")


def generated_settings(req: Request) -> tuple[hp.NetShape, hp.SolverSettings]:
    net, solver = hp.VARIANTS[req.cfg.net.variant]
    n = {k: v for k, v in to_dict(req.cfg.net).items() if k != "variant" and v is not None}
    n["image_size"] = req.data.image_size
    s = {k: getattr(req.cfg.solver, k) for k in ("batch_size", "iter_size", "test_batch_size", "seed")
         if getattr(req.cfg.solver, k) is not None}
    s["solver_mode"] = "GPU" if req.gpus else "CPU"
    return merge(net, n, "config net"), merge(solver, s, "config solver")


def ensure_nets(req: Request, run_root: Path, monitor: str) -> Path:
    """The OUT/<dataset> folder the run copies come from (generated into the run if needed)."""
    if req.nets is not None:
        return nets_folder(req.nets, req.dataset)
    from g2s_caffe.methods.g2s.gen import generate_tree

    out = run_root / "nets"
    net_cfg, solver_cfg = generated_settings(req)
    generate_tree(req.attrs, out, req.dataset, net_cfg, solver_cfg, str(req.data.root.resolve()),
                  f"g2s train (variant {req.cfg.net.variant}, generated for {req.data.root})",
                  monitor_size=req.data.count(monitor))
    return out / req.dataset


def source_folder(nets_dir: Path, spec: JobSpec) -> Path:
    return nets_dir / "step1" if spec.step == 1 else nets_dir / f"step{spec.step}" / spec.attribute


# ------------------------------------------------------------------ run copies
def _train_batch_layers(net):
    import caffe

    out = []
    for layer in net.layer:
        phases = {r.phase for r in layer.include if r.HasField("phase")}
        if layer.type == "Data":
            out.append((layer, caffe.TEST not in phases or caffe.TRAIN in phases))
    return out


def run_copies(req: Request, spec: JobSpec, nets_dir: Path, job_dir: Path) -> dict:
    """The job's train_val / deploy / solver run copies (messages), for ``job_dir``."""
    from caffe.proto import caffe_pb2

    from g2s_caffe.core.nets.data_layers import reroot_sources

    src = source_folder(nets_dir, spec)
    net = read_text_proto(src / "train_val.prototxt", caffe_pb2.NetParameter())
    solver = read_text_proto(src / "solver.prototxt", caffe_pb2.SolverParameter())
    deploy = read_text_proto(src / "deploy.prototxt", caffe_pb2.NetParameter())
    net = reroot_sources(net, str(req.data.root.resolve()))
    s = req.cfg.solver
    generated_iter_size = solver.iter_size
    if s.iter_size is not None:
        solver.iter_size = s.iter_size
    # Multi-GPU Step 1 (Caffe's NCCL): every GPU runs the net's batch, so the per-GPU batch
    # shrinks to keep the effective batch (paper: 128).
    n_gpu = len(req.gpus) if (spec.step == 1 and len(req.gpus) > 1) else 1
    for layer, train in _train_batch_layers(net):
        if train:
            total = s.batch_size if s.batch_size is not None else \
                layer.data_param.batch_size * generated_iter_size
            per = total // (solver.iter_size * n_gpu)
            if per < 1 or per * solver.iter_size * n_gpu != total:
                raise G2SError(f"effective batch {total} is not divisible by iter_size "
                               f"{solver.iter_size} x {n_gpu} GPU(s); pick solver.iter_size so it is")
            layer.data_param.batch_size = per
        elif s.test_batch_size is not None:
            layer.data_param.batch_size = s.test_batch_size
    solver.max_iter = ((s.max_iter_step1 if spec.step == 1 else s.max_iter_step23) or solver.max_iter)
    for field, value in (("test_interval", s.test_interval), ("snapshot", s.snapshot),
                         ("display", s.display), ("random_seed", s.seed)):
        if value is not None:
            setattr(solver, field, value)
    if s.test_iter is not None:
        del solver.test_iter[:]
        solver.test_iter.append(s.test_iter)
    solver.net = str((job_dir / "train_val.prototxt").resolve())
    solver.snapshot_prefix = str((job_dir / SNAPSHOT_DIR / spec.id.replace("/", "_")).resolve())
    solver.solver_mode = caffe_pb2.SolverParameter.GPU if req.gpus else caffe_pb2.SolverParameter.CPU
    return {"train_val": net, "deploy": deploy, "solver": solver}


# ------------------------------------------------------------------ the run
def identity(req: Request, weights_a: dict) -> dict:
    """What must not change between a run and its rerun (scheduling knobs may)."""
    c = to_dict(req.cfg)
    return {"data": str(req.data.root.resolve()), "attributes": [a.name for a in req.attrs.attributes],
            "net": c["net"], "solver": c["solver"], "head_init": c["head_init"],
            "effective_batch": c["effective_batch"], "weights_a": weights_a.get("sha256"),
            "nets": str(req.nets.resolve()) if req.nets else None, "gpus": len(req.gpus) > 1}


def create_or_load(req: Request, specs: list[JobSpec], weights_a: dict, monitor: str) -> Run:
    """The run's manifest: created with all its jobs and run copies on the first call; on a
    rerun, loaded and checked to be the same run (else a G2SError: use another --runs)."""
    name = run_name(req.steps)
    root = (req.runs / name).resolve()
    ident = identity(req, weights_a)

    def create() -> Run:
        nets_dir = ensure_nets(req, root, monitor)
        jobs = []
        for spec in specs:
            src = source_folder(nets_dir, spec)
            messages = run_copies(req, spec, nets_dir, root / spec.id)
            jobs.append(write_job(root, spec.id, spec.id, messages,
                                  f"# run copy of {src} for job {spec.id} (written by g2s train)\n",
                                  messages["solver"].random_seed,
                                  {"init_from": spec.init_from, "depends": list(spec.depends),
                                   # Step 1 is one net trained over every GPU given (NCCL)
                                   "all_gpus": spec.step == 1},
                                  step=spec.step, attribute=spec.attribute, attr_index=spec.attr_index,
                                  scheme=spec.scheme))
        config = to_dict(req.cfg)
        config.update(identity=ident, nets=str(nets_dir), gpus=list(req.gpus), steps=list(req.steps))
        return new_run(root, name, G2S, req.dataset, req.data.root,
                       [{"name": a.name, "crop": a.crop} for a in req.attrs.attributes], weights_a, config, jobs)

    return create_or_load_run(root, G2S, ident, create)
