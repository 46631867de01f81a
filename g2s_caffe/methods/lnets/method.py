"""LNets as the generic commands see it (core/registry.py): face localization, no attribute results.

An LNets run is evaluated by `g2s localize` (Fig. 7, against our MTCNN port), not by `g2s eval`;
new photos go through `g2s localize` too.
"""
from __future__ import annotations

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.registry import Command, Method
from g2s_caffe.methods.lnets.job_hooks import METHOD as ID


class LNets(Method):
    id = ID
    title = "LNets (Liu et al., ICCV 2015): face localization from attribute tags"
    order = 30
    commands = (
        Command("lnets", "g2s_caffe.methods.lnets.cli",
                "train the LNets+ANet baseline's LNets: face localization from attribute tags", 80),
        Command("localize", "g2s_caffe.methods.lnets.localize_cli",
                "localize faces with trained LNets: windows, pictures, Fig. 7 vs MTCNN", 90),
    )

    @property
    def gen_help(self) -> str:
        from g2s_caffe.methods.lnets import gen

        return gen.__doc__

    def generate(self, req):
        from g2s_caffe.methods.lnets import gen

        return gen.generate(req)

    def skip_evaluation(self, run, split: str) -> str | None:
        return (f"an LNets run (face localization, no attribute results): skipped here; its evaluation "
                f"(Fig. 7, vs our MTCNN port) is `g2s localize --lnets {run.root} --data {run.data} --split {split}`")

    def predict(self, args, run) -> int:
        raise G2SError(f"{run.root}: a {run.method} run; g2s predict serves G2S runs (g2s train) and the end-to-end "
                       "LNets+ANet run (g2s anet --faces lnets); `g2s localize` runs LNets alone")
