"""ANet's nets and solvers for an attribute list: OUT/<dataset>/anet/*.prototxt (`g2s gen`).

  pretrain_train_val  pretrain_solver    identity pre-training (siamese, softmax + similarity)
  finetune_train_val  finetune_solver    attribute fine-tuning (T sigmoid cross-entropies)
  patch_deploy                           one patch -> FC and P(attribute)
  onepass_deploy                         the region -> FC of every test patch, one pass

The committed tree (`g2s gen --all`) has CelebA's: LFWA uses the CelebA-trained ANet (the
paper's protocol), so only its SVMs are trained on LFWA.  The pre-training head has
PAPER_IDENTITIES outputs; a run copy sets the number of identities its train split has.
"""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.attributes import AttributeList
from g2s_caffe.core.nets.render import SUFFIX, render
from g2s_caffe.methods.anet import params as hp

GENERATOR = "g2s_caffe/methods/anet/gen.py"
COMMITTED = ("celeba",)       # LFWA's ANet is CelebA's (the paper's protocol: only its SVMs train on LFWA)

FOLDER = "anet"
FILES = ("pretrain_train_val", "pretrain_solver", "finetune_train_val", "finetune_solver",
         "patch_deploy", "onepass_deploy")


def data_root_for(dataset_root: str) -> str:
    """Where the committed nets say the ANet data stage's LMDBs are (re-rooted by a run)."""
    return f"{dataset_root}/{FOLDER}"


def generate_anet_tree(attrs: AttributeList, out: Path, dataset: str, shape: hp.ANetShape,
                       solver: hp.ANetSolverSettings, data_root: str, command: str, monitor_size: int,
                       monitor_split: str = "val", identities: int = hp.PAPER_IDENTITIES) -> list[Path]:
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
        write_atomic(p, render(protos[stem], header, GENERATOR, note))
        written.append(p)
    return written


def generate(req) -> list[Path]:
    """`g2s gen`: the tree for the request's list and variant (--all: CelebA's only)."""
    return req.write_tree(generate_anet_tree, hp.ANET_VARIANTS, COMMITTED)
