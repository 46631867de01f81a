"""LNets' nets and solvers for an attribute list: OUT/<dataset>/lnets/{lnet_o,lnet_s}_{train_val,
solver,deploy}.prototxt (`g2s gen`): attribute fine-tuning of LNet_o / LNet_s, and the net giving
the averaged C5 response map.  The committed tree has CelebA's (the paper's protocol: LFWA uses
CelebA's LNets).
"""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.attributes import AttributeList
from g2s_caffe.core.nets.render import SUFFIX, render
from g2s_caffe.methods.lnets import params as hp

GENERATOR = "g2s_caffe/methods/lnets/gen.py"
COMMITTED = ("celeba",)       # LFWA uses CelebA's LNets (the paper's protocol)
LNETS_FOLDER = "lnets"
LNETS_FILES = tuple(f"{which}_{stem}" for which in ("lnet_o", "lnet_s")
                    for stem in ("train_val", "solver", "deploy"))


def lnets_data_root_for(dataset_root: str) -> str:
    """Where the committed LNet nets say their LMDBs are (re-rooted by a run)."""
    return f"{dataset_root}/{LNETS_FOLDER}"


def generate_lnets_tree(attrs: AttributeList, out: Path, dataset: str, shape, solver, data_root: str,
                        command: str, monitor_size: int, monitor_split: str = "val") -> list[Path]:
    """OUT/<dataset>/lnets/{lnet_o,lnet_s}_{train_val,solver,deploy}.prototxt (nets.py)."""
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
        write_atomic(p, render(protos[stem], f"# {command}", GENERATOR, note))
        written.append(p)
    return written


def generate(req) -> list[Path]:
    """`g2s gen`: the tree for the request's list and variant (--all: CelebA's only)."""
    return req.write_tree(generate_lnets_tree, hp.LNET_VARIANTS, COMMITTED)
