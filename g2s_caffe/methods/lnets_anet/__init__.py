"""The baseline of the G2S paper's Tables 2/3: LNets+ANet (Liu et al., ICCV 2015), in Caffe.

params      ANet's constants: what the paper fixes, and our choices with their reasons
local_conv  a locally shared convolution (C3, C4) from stock Caffe layers
nets        ANet's nets: identity pre-training (siamese), attribute fine-tuning, the patch net
            and the one-pass net (the interweaved operation, Fig. 5)
gen         OUT/<dataset>/anet/*.prototxt and OUT/<dataset>/lnets/*.prototxt (`g2s gen`)

ANet's driver (`g2s anet`) and evaluation:
cli         `g2s anet`: data -> pretrain -> finetune -> features -> svm, resumable
config      ANetConfig (strict YAML / --set merging, like G2S's TrainConfig)
prepare     RUNS/anet/: the run manifest (method "lnets_anet"), generated nets, run copies
data        the data stage: region / labels / identity / partner LMDBs under RUNS/anet/data
method      ANetMethod, the shared job runner's hooks (init weights, fingerprints)
stages      the non-Caffe stages (data, features, svm) recorded in Run.stages
features    every patch's feature of a prepared split, one forward pass per image
svm         one LinearSVC per attribute: C on a held-out part, the one-class rule, .npz
evaluate    `g2s eval` of an ANet run: the same outputs as a G2S run's

LNets (part 2):
lnets_params  LNets' constants: what the paper fixes, our choices with their reasons
lnet_nets     LNet_o / LNet_s (BVLC AlexNet's conv1..conv5, by name): fine-tuning, deploy, solvers,
              initialization from bvlc_alexnet.caffemodel
localize      response map -> windows (exact, integral image) -> density peaks -> face / no face;
              the face threshold (Fig. 3(b)); geometry of the C5 cells
lnet_infer    images -> response maps (preprocessing, one net, the LNet_o -> LNet_s cascade)
loc_eval      Fig. 7: TPR vs FPPI at IoU >= 0.5, recall vs IoU at FPPI 0.1 (any detector; MTCNN, LNets)
boxes         IoU, NMS, box conversions;  backgrounds  face-free images for the threshold

The training driver, the SVM stage and evaluation reuse the project's shared machinery
(g2s_caffe.core.jobs, g2s_caffe.core.runs, g2s_caffe.core.evaluation.evaluate) rather than copying G2S's.
"""
