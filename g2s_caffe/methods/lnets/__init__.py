"""LNets, the face-localization half of LNets+ANet (Liu et al., ICCV 2015): face windows
learned from image-level attribute tags alone, in Caffe.

params        LNets' constants: what the paper fixes, our choices with their reasons
nets          LNet_o / LNet_s (BVLC AlexNet's conv1..conv5, by name): fine-tuning, deploy, solvers,
              initialization from bvlc_alexnet.caffemodel
gen           OUT/<dataset>/lnets/*.prototxt (`g2s gen`)
localize      response map -> the box of its mass (density peaks cut it to one face) -> its
              score -> face / no face; the cascade's pooled face; the face threshold
              (Fig. 3(b)); geometry of the C5 cells; the window set (measuring the old rule)
infer         images -> response maps (preprocessing, one net, the LNet_o -> LNet_s cascade)
raw           the raw images behind a prepared split;  data  the whole / head-shoulder LMDBs
cli           `g2s lnets`: whole -> lnet_o -> head_shoulder -> lnet_s -> threshold, resumable
config, prepare, job_hooks, stages   its config, run manifest, job hooks and non-Caffe stages
localize_cli  `g2s localize`: face boxes, pictures, Fig. 7 vs our MTCNN port
loc_eval      Fig. 7: TPR vs FPPI at IoU >= 0.5, recall vs IoU at FPPI 0.1, top-1 hit rate (any
              detector)
boxes         IoU, box conversions;  backgrounds  face-free images for the threshold
method        what the generic commands ask of LNets (registered here)
"""
from g2s_caffe.core.registry import register
from g2s_caffe.methods.lnets.method import LNets

BUILDS_ON: tuple[str, ...] = ()

register(LNets())
