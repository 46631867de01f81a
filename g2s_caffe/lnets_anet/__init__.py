"""The baseline of the G2S paper's Tables 2/3: LNets+ANet (Liu et al., ICCV 2015), in Caffe.

params      ANet's constants: what the paper fixes, and our choices with their reasons
local_conv  a locally shared convolution (C3, C4) from stock Caffe layers
nets        ANet's nets: identity pre-training (siamese), attribute fine-tuning, the patch net
            and the one-pass net (the interweaved operation, Fig. 5)
gen         OUT/<dataset>/anet/*.prototxt for an attribute list (`g2s gen`)

The training driver, the SVM stage and evaluation reuse the project's shared machinery
(g2s_caffe.jobs, g2s_caffe.runs, g2s_caffe.evaluate) rather than copying G2S's.
"""
