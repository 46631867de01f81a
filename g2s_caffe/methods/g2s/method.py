"""G2S as the generic commands see it (core/registry.py): Steps 1-3, Table 2/3's "ours" column."""
from __future__ import annotations

from g2s_caffe.core.registry import Command, Method

ID = "g2s"


class G2S(Method):
    id = ID
    title = "G2S (Sun & Yu, BMVC 2018): Steps 1-3"
    order = 10
    published_column = "ours"
    commands = (
        Command("crop-search", "g2s_caffe.methods.g2s.crop_search",
                "choose each attribute's crop scheme by brief fine-tunes on the validation split", 50),
        Command("train", "g2s_caffe.methods.g2s.train.cli",
                "train Steps 1-3 with caffe train: resumable runs, ablations, GPUs, Slurm/k8s", 70),
    )
    predict_default = True
    preferred_run = "steps_1_2_3"      # the paper's result among Table 1's runs

    @property
    def gen_help(self) -> str:
        from g2s_caffe.methods.g2s import gen

        return gen.__doc__.split("\n", 2)[2]

    @property
    def predict_help(self) -> str:
        from g2s_caffe.methods.g2s import predict

        return predict.__doc__.split("\n", 2)[2]

    def add_gen_arguments(self, parser) -> None:
        from g2s_caffe.methods.g2s import gen

        gen.add_gen_arguments(parser)

    def gen_options(self, args) -> list[str]:
        from g2s_caffe.methods.g2s import gen

        return gen.gen_options(args)

    def generate(self, req):
        from g2s_caffe.methods.g2s import gen

        return gen.generate(req)

    def evaluation(self, run, only_finished: bool):
        from g2s_caffe.methods.g2s.evaluate import G2SEvaluation

        return G2SEvaluation(run, only_finished)

    def predict(self, args, run) -> int:
        from g2s_caffe.methods.g2s.predict import predict_run

        return predict_run(args, run)
