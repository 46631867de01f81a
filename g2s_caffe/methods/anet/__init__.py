"""ANet, the attribute half of the G2S paper's baseline LNets+ANet (Liu et al., ICCV 2015), in Caffe.

params      ANet's constants: what the paper fixes, and our choices with their reasons
local_conv  a locally shared convolution (C3, C4) from stock Caffe layers
nets        ANet's nets: identity pre-training (siamese), attribute fine-tuning, the patch net
            and the one-pass net (the interweaved operation, Fig. 5)
gen         OUT/<dataset>/anet/*.prototxt (`g2s gen`)
faces       where the face regions come from: a face source (`--faces`; prep boxes here)
cli         `g2s anet`: faces -> data -> pretrain -> finetune -> features -> svm, resumable
config      ANetConfig (strict YAML / --set merging, like G2S's TrainConfig)
prepare     RUNS/<run>/: the run manifest, generated nets, run copies
data        the data stage: region / labels / identity / partner LMDBs under RUNS/<run>/data
job_hooks   the shared job runner's hooks (init weights, fingerprints)
stages      the non-Caffe stages (data, features, svm) recorded in Run.stages
features    every patch's feature of a prepared split, one forward pass per image
svm         one LinearSVC per attribute: C on a held-out part, the one-class rule, .npz
evaluate    `g2s eval` of an ANet run: the same outputs as a G2S run's
method      what the generic commands ask of ANet (registered here)
"""
from g2s_caffe.core.registry import register
from g2s_caffe.methods.anet.method import ANet

BUILDS_ON: tuple[str, ...] = ()

register(ANet())
