"""ANet's nets and solvers for an attribute list: OUT/<dataset>/anet/*.prototxt (`g2s gen`).

  pretrain_train_val  pretrain_solver    identity pre-training (siamese, softmax + similarity)
  finetune_train_val  finetune_solver    attribute fine-tuning (T sigmoid cross-entropies)
  patch_deploy                           one patch -> FC and P(attribute)
  onepass_deploy                         the region -> FC of every test patch, one pass

and LNets' (``generate_lnets_tree``): OUT/<dataset>/lnets/{lnet_o,lnet_s}_{train_val,solver,deploy}
(attribute fine-tuning of LNet_o / LNet_s, and the net giving the averaged C5 response map).

The committed tree (`g2s gen --all`) has CelebA's: LFWA uses the CelebA-trained ANet (the
paper's protocol), so only its SVMs are trained on LFWA.  The pre-training head has
PAPER_IDENTITIES outputs; a run copy sets the number of identities its train split has.
"""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.attributes import AttributeList
from g2s_caffe.methods.anet import params as hp

FOLDER = "anet"
FILES = ("pretrain_train_val", "pretrain_solver", "finetune_train_val", "finetune_solver",
         "patch_deploy", "onepass_deploy")


def data_root_for(dataset_root: str) -> str:
    """Where the committed nets say the ANet data stage's LMDBs are (re-rooted by a run)."""
    return f"{dataset_root}/{FOLDER}"


def generate_anet_tree(attrs: AttributeList, out: Path, dataset: str, shape: hp.ANetShape,
                       solver: hp.ANetSolverSettings, data_root: str, command: str, monitor_size: int,
                       monitor_split: str = "val", identities: int = hp.PAPER_IDENTITIES) -> list[Path]:
    from g2s_caffe.methods.g2s.gen import SUFFIX, render
    from g2s_caffe.methods.anet import nets

    folder = Path(out) / dataset / FOLDER
    data = nets.ANetData(data_root_for(data_root), "train", monitor_split, solver.batch_size,
                         solver.test_batch_size)
    path = lambda stem: (folder / f"{stem}{SUFFIX}").as_posix()
    prefix = f"runs/{dataset}/anet"
    protos = {
        "pretrain_train_val": nets.pretrain_net(shape, identities, data, f"{dataset}_anet_pretrain"),
        "pretrain_solver": nets.pretrain_solver(path("pretrain_train_val"), f"{prefix}/pretrain/snapshots/pretrain",
                                                solver),
        "finetune_train_val": nets.finetune_net(attrs.names, shape, data, f"{dataset}_anet_finetune"),
        "finetune_solver": nets.finetune_solver(path("finetune_train_val"), f"{prefix}/finetune/snapshots/finetune",
                                                solver, monitor_size),
        "patch_deploy": nets.patch_deploy(shape, attrs.names, name=f"{dataset}_anet_patch"),
        "onepass_deploy": nets.onepass_deploy(shape, name=f"{dataset}_anet_onepass"),
    }
    header = f"# {command}"
    note = (f"# ANet ({shape.patch_size}-px patches, {shape.n_patches} per {shape.region_size}-px region); "
            "see g2s_caffe/methods/anet/params.py for what the paper fixes and what we chose.\n")
    written = []
    for stem in FILES:
        p = folder / f"{stem}{SUFFIX}"
        write_atomic(p, render(protos[stem], header, note))
        written.append(p)
    return written


# ---------------------------------------------------------------- LNets (part 2 of the baseline)
LNETS_FOLDER = "lnets"
LNETS_FILES = tuple(f"{which}_{stem}" for which in ("lnet_o", "lnet_s")
                    for stem in ("train_val", "solver", "deploy"))


def lnets_data_root_for(dataset_root: str) -> str:
    """Where the committed LNet nets say their LMDBs are (re-rooted by a run)."""
    return f"{dataset_root}/{LNETS_FOLDER}"


def generate_lnets_tree(attrs: AttributeList, out: Path, dataset: str, shape, solver, data_root: str,
                        command: str, monitor_size: int, monitor_split: str = "val") -> list[Path]:
    """OUT/<dataset>/lnets/{lnet_o,lnet_s}_{train_val,solver,deploy}.prototxt (lnet_nets.py)."""
    from g2s_caffe.methods.g2s.gen import SUFFIX, render
    from g2s_caffe.methods.lnets import nets as lnet_nets

    folder = Path(out) / dataset / LNETS_FOLDER
    data = lnet_nets.LNetData(lnets_data_root_for(data_root), "train", monitor_split, solver.batch_size,
                              solver.test_batch_size)
    path = lambda stem: (folder / f"{stem}{SUFFIX}").as_posix()
    protos = {}
    for which in ("lnet_o", "lnet_s"):
        protos[f"{which}_train_val"] = lnet_nets.finetune_net(which, attrs.names, shape, data,
                                                              f"{dataset}_{which}_finetune")
        protos[f"{which}_solver"] = lnet_nets.solver(path(f"{which}_train_val"),
                                                     f"runs/{dataset}/lnets/{which}/snapshots/{which}", solver,
                                                     monitor_size)
        protos[f"{which}_deploy"] = lnet_nets.deploy_net(shape, name=f"{dataset}_{which}_deploy")
    note = (f"# LNets (BVLC AlexNet's conv1..conv5 at widths {'/'.join(map(str, shape.widths))}, "
            f"{shape.input_size}-px training input); see g2s_caffe/methods/lnets/params.py for what "
            "the paper fixes and what we chose.\n")
    written = []
    for stem in LNETS_FILES:
        p = folder / f"{stem}{SUFFIX}"
        write_atomic(p, render(protos[stem], f"# {command}", note))
        written.append(p)
    return written


NETS_DIR = "nets"      # RUN/nets/<dataset>/<anet|lnets>/: a run's generated nets


def run_nets(req, generate, folder_of, placeholder_root: str, command: str) -> Path:
    """The folder a run's jobs copy their nets from: ``--nets`` (a `g2s gen` tree, found by
    ``folder_of``), else ``generate`` (generate_anet_tree / generate_lnets_tree) writes the same
    files as `g2s gen`, sized by --variant, into the run's nets/."""
    if req.nets is not None:
        return folder_of(req.nets, req.dataset)
    written = generate(req.attrs, req.root / NETS_DIR, req.dataset, req.cfg.shape, req.cfg.solver_settings(),
                       placeholder_root, f"{command} (variant {req.cfg.variant}, generated for {req.data.root})",
                       req.data.count(req.monitor_split), req.monitor_split)
    return written[0].parent
