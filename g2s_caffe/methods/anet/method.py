"""ANet as the generic commands see it (core/registry.py): the LNets+ANet column of Tables 2/3.

The method "anet" is ANet on `g2s prep`'s face boxes (run anet_prep_boxes): part 1 of the
baseline, ANet alone on another method's boxes.  With LNets' face windows it is the LNets+ANet
cascade, a method of its own (g2s_caffe/methods/lnets_anet/), which reuses everything here.
"""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core.registry import Command, Method

ID = "anet"


class ANetEvaluation:
    """An ANet run checked to be evaluable (both jobs and the SVMs finished)."""

    def __init__(self, run):
        from g2s_caffe.methods.anet.evaluate import check_run

        check_run(run)
        self.run, self.not_evaluated = run, []

    def evaluate(self, data, split: str, batch: int, resamples: int, seed: int):
        from g2s_caffe.methods.anet.evaluate import evaluate_run

        return evaluate_run(self.run, data, split, batch, resamples=resamples, seed=seed)

    def write_extra(self, result, out_dir: Path) -> None:
        from g2s_caffe.methods.anet.evaluate import write_extra

        write_extra(self.run, result, out_dir)


class ANet(Method):
    id = ID
    title = "ANet (Liu et al., ICCV 2015) on g2s prep's face boxes"
    order = 20
    published_column = "lnets_anet"
    commands = (
        Command("anet", "g2s_caffe.methods.anet.cli",
                "train the LNets+ANet baseline's ANet (on prep boxes or LNets' faces), SVMs", 100),
    )

    @property
    def gen_help(self) -> str:
        from g2s_caffe.methods.anet import gen

        return gen.__doc__

    def generate(self, req):
        from g2s_caffe.methods.anet import gen

        return gen.generate(req)

    def evaluation(self, run, only_finished: bool):
        return ANetEvaluation(run)

    def predict(self, args, run) -> int:
        from g2s_caffe.methods.anet.faces import source_of

        return source_of(run).predict(args, run)
