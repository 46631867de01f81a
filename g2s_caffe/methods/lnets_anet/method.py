"""The LNets+ANet cascade as the generic commands see it: ANet on LNets' face windows, end to end.

Its runs are ANet runs (`g2s anet --faces lnets`, run lnets_anet) whose face source is LNets
(source.py); evaluation and prediction are ANet's with that source.  It also owns the manifests
of format 1, where every ANet run was of method "lnets_anet": those on prep boxes are ANet's.
"""
from __future__ import annotations

from g2s_caffe.methods.anet.method import ANet
from g2s_caffe.methods.lnets_anet.source import LNetsFaces

ID = LNetsFaces.method


class LNetsANet(ANet):
    id = ID
    title = "LNets+ANet (Liu et al., ICCV 2015) end to end"
    order = 40
    commands = ()                       # `g2s anet --faces lnets` (ANet's command, this face source)
    gen_help = ""                       # ANet's and LNets' trees

    def generate(self, req):
        return []

    @property
    def predict_help(self) -> str:
        from g2s_caffe.methods.lnets_anet import predict

        return predict.__doc__.split("\n", 2)[2]

    def upgrade_manifest(self, manifest: dict) -> None:
        if (manifest.get("config") or {}).get("faces", "prep") == "prep":
            manifest["method"] = ANet.id
