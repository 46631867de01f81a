"""G2S, the paper's method (Sun & Yu, BMVC 2018): VGG-16 nets trained general to specific.

params       the paper's hyper-parameters (§2.1, §3.1), each once, by name
nets         the VGG-16 nets of Steps 1-3 (caffe.NetSpec)
solvers      the paper's SGD solver
gen          their prototxt tree for an attribute list (`g2s gen`)
surgery      Step 2/3 initial weights from the step before ("feature inheritance")
steps        run names, job ids, each attribute's final net (Table 1's step combinations)
train/       `g2s train`: plan, run copies, job hooks, validation, Slurm/k8s emission
evaluate     `g2s eval` of a G2S run;  predict  `g2s predict` with one
crop_search  `g2s crop-search`: each attribute's crop scheme by brief fine-tunes
method       what the generic commands ask of G2S (registered here)
"""
from g2s_caffe.core.registry import register
from g2s_caffe.methods.g2s.method import G2S

BUILDS_ON: tuple[str, ...] = ()

register(G2S())
