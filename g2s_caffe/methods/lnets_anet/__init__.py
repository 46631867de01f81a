"""LNets+ANet end to end (Liu et al., ICCV 2015), the G2S paper's baseline, in Caffe: LNets find
the face (g2s_caffe/methods/lnets), ANet reads it (g2s_caffe/methods/anet).

faces    LNets' face windows as ANet's face source (`g2s anet --faces lnets`): the faces stage,
         the regions, what evaluation adds ("no face" images counted)
predict  `g2s predict --run lnets_anet`: new photos -> LNets' window -> ANet's patches -> SVMs
method   what the generic commands ask of the cascade (registered here)
"""
from g2s_caffe.core.registry import register
from g2s_caffe.methods.lnets_anet.method import LNetsANet

BUILDS_ON = ("anet", "lnets")

register(LNetsANet())
