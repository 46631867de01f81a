"""LNets' constants (Liu et al., ICCV 2015, §2.1, Fig. 2(a)(b), Fig. 3): LNet_o, LNet_s and
the localization that reads their averaged C5 response maps.

What the paper fixes is written as such.  Everything it leaves open (widths past C1, strides,
where the two pools are, the fine-tuning head, the solver, input sizes, the window set, the
score normalisation, the threshold rule, the density-peak settings) is our choice, with its
reason next to it and a row in docs/choices.md's LNets "paper says / we chose / why" table.  The
generated prototxt files carry every net value; tests read them back from the files.
"""
from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------- what the paper fixes
CONV_LAYERS = 5                 # C1..C5 ("five convolutional layers", camera-ready text)
POOL_LAYERS = 2                 # "two max-pooling layers", all filters globally shared
C1_FILTERS, C1_KERNEL = 96, 11  # "C1 is 96 filters of 11x11x3"
LNET_S_INPUT = 227              # "the head-shoulder region ... resized to 227 x 227"
RESPONSE_LAYER = "relu5"        # localization reads the averaged response map of C5
PAPER_EDGEBOX_WINDOWS = 500     # "EdgeBox is adopted to propose 500 candidate windows"
PAPER_THRESHOLD_IMAGES = 2000   # 2,000 single-face images and 2,000 SUN backgrounds

# ---------------------------------------------------------------- the trunk (our choice)
# BVLC AlexNet's layers, names and shapes (models/bvlc_alexnet/deploy.prototxt) up to relu5,
# so that the ImageNet pre-training the paper uses is bvlc_alexnet.caffemodel loaded by name.
# The paper allows it: C1 is AlexNet's conv1, and AlexNet has five convs; of its three max
# pools we keep the two inside the trunk (pool1, pool2) and drop pool5/fc6/fc7/fc8, which
# the paper's LNets do not have ("two max-pooling layers").
ALEXNET_WIDTHS = (96, 256, 384, 384, 256)
CONV_KERNELS = (11, 5, 3, 3, 3)
CONV_STRIDES = (4, 1, 1, 1, 1)
CONV_PADS = (0, 2, 1, 1, 1)
CONV_GROUPS = (1, 2, 1, 2, 2)   # AlexNet's two-GPU split, kept so that its blobs fit
LRN_LOCAL_SIZE, LRN_ALPHA, LRN_BETA = 5, 1e-4, 0.75    # norm1, norm2 (after relu1, relu2)
POOL_KERNEL, POOL_STRIDE = 3, 2                         # pool1, pool2: overlapping 3x3/2 max
TRUNK_LAYERS = ("conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2",
                "conv3", "relu3", "conv4", "relu4", "conv5", "relu5")
ALEXNET_CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5")   # what bvlc_alexnet gives
# ImageNet's per-channel mean (BGR, 0-255; the channel means of Caffe's ilsvrc_2012_mean.npy),
# what AlexNet's pre-training subtracted (as a mean image; per channel is Caffe's usual
# fine-tuning form).
IMAGENET_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
# Padding of letterboxed / out-of-image pixels: the mean colour, i.e. exactly 0 after mean
# subtraction, the same value Caffe's own zero padding gives the convolutions at the image
# border (black would be a strong dark edge the filters respond to).
PAD_BGR = tuple(round(v) for v in IMAGENET_MEAN_BGR)

# ---------------------------------------------------------------- fine-tuning head (our choice)
# "Additional output layers are added ... for fine-tuning and then removed for evaluation":
# global average pooling of relu5 -> fc_attr (T outputs) -> T sigmoid cross-entropies
# (§2.1's loss), normalised by the batch size only, i.e. summed over the attributes.  Global
# average pooling works on any input size and ties every conv5 position's response directly to
# the attribute evidence, which is what makes the averaged C5 map a localization map.
GAP_LAYER = "gap5"
ATTR_HEAD = "fc_attr"
ATTRIBUTE_LOSS_NORMALIZATION = "BATCH_SIZE"
# New layer, learning 10x faster than the pre-trained trunk (BVLC's fine-tuning recipe for
# this trunk, examples/finetune_flickr_style: lr_mult 10/20 on the new fc8_flickr).
HEAD_LR_MULT = 10
TRUNK_LR_MULT = 1
# Fillers only matter for what no caffemodel initializes: the head always, the trunk with
# `--weights-alexnet none` and in the small variant (random init): He init for the ReLU
# trunk, N(0, 0.01) for the linear head (AlexNet's fc8 filler).
CONV_WEIGHT_FILLER = dict(type="msra")
HEAD_WEIGHT_FILLER = dict(type="gaussian", std=0.01)
BIAS_FILLER = dict(type="constant", value=0.0)

# ---------------------------------------------------------------- the deploy net (our choice)
# "response" = the mean over channels of relu5: a 1x1 convolution with fixed weights 1/C and
# no bias.  It runs on any input size (Caffe's Reduction layer reduces every axis from
# ``axis`` on, so it cannot keep the H x W map; BVLC Caffe has no Permute to work around it).
RESPONSE_BLOB = "response"

# ---------------------------------------------------------------- inputs (our choice)
# LNet_o takes the whole image.  For training (batches need one size) it is letterboxed: the
# longer side resized to ``input_size``, the shorter side padded with PAD_BGR to a square,
# mirrored at random.  At test the image is resized the same way but not padded (the deploy
# net takes any size), so a face has the same size in pixels as in training.  LNet_s always
# sees the head-shoulder window (made square around its centre, see infer.square_crop)
# resized to ``input_size`` (227 in the full variant: the paper).


@dataclass(frozen=True)
class LNetShape:
    """Size knobs of the one LNet builder (LNet_o and LNet_s share it)."""
    widths: tuple[int, int, int, int, int]   # conv1 .. conv5 filters
    input_size: int                           # training input side (LNet_o: letterbox side)
    # transform_param.scale after mean subtraction: 1 for AlexNet's 0-255 pre-training; nets
    # trained from random init on CPU need about unit-range inputs (as the G2S small variant).
    input_scale: float = 1.0

    def check(self) -> None:
        from g2s_caffe.core.errors import G2SError

        if len(self.widths) != CONV_LAYERS or min(self.widths) < 1:
            raise G2SError(f"LNet widths {self.widths}: need {CONV_LAYERS} positive conv widths")
        for i, group in enumerate(CONV_GROUPS):
            reads = 3 if i == 0 else self.widths[i - 1]
            if group > 1 and (self.widths[i] % group or reads % group):
                raise G2SError(f"LNet widths {self.widths}: conv{i + 1} uses group {group} (AlexNet's), so "
                               f"the {reads} channels it reads and the {self.widths[i]} it writes must be "
                               f"divisible by {group}")
        if self.input_size < C1_KERNEL:
            raise G2SError(f"LNet input {self.input_size} px is smaller than C1's {C1_KERNEL}x{C1_KERNEL} kernel")


# Full variant: BVLC AlexNet's trunk on 227 x 227 (AlexNet's own crop; LNet_s's input in the
# paper): a 13 x 13 C5 map, one cell per 16 px.
FULL_LNET = LNetShape(widths=ALEXNET_WIDTHS, input_size=LNET_S_INPUT)
# Small variant (CPU tests and the demo, random init): the same builder with ~1/4-1/3 of the
# widths on 163 x 163 (9 x 9 C5 map); the demo's images are 170-230 px, so they are barely
# shrunk.  ~30 M multiply-adds per image.
SMALL_LNET = LNetShape(widths=(32, 64, 96, 96, 64), input_size=163, input_scale=1 / 64)


@dataclass(frozen=True)
class LNetSolverSettings:
    """SGD for LNet_o and LNet_s (the paper gives no LNet solver): BVLC's fine-tuning recipe
    for this trunk (examples/finetune_flickr_style: base_lr 1e-3, step x0.1, momentum 0.9,
    weight decay 5e-4), the schedule scaled to CelebA's 162,770 training images."""
    batch_size: int = 64
    test_batch_size: int = 64
    base_lr: float = 0.001
    lr_policy: str = "step"
    gamma: float = 0.1
    stepsize: int = 20000       # ~8 epochs at batch 64, then 10x lower
    max_iter: int = 50000       # ~20 epochs at batch 64 (two rate drops)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    test_interval: int = 2000
    snapshot: int = 5000
    display: int = 20
    seed: int = 1701
    solver_mode: str = "GPU"


FULL_LNET_SOLVER = LNetSolverSettings()
# From random init (the demo): a 10x higher start (as ANet's pre-training from random init),
# a short schedule.  The demo sets its own (demo.Plan: 1,200 + 500 iterations, x0.1 every 400):
# LNet_o's val loss falls from 7.0 to ~2.8 on its 10 tags; batch 32 trains at ~5.5 it/s on 2 quiet
# CPU cores (docs/baseline.md, "LNets").
SMALL_LNET_SOLVER = LNetSolverSettings(batch_size=32, test_batch_size=32, base_lr=0.01, stepsize=300,
                                       max_iter=600, test_interval=100, snapshot=100, solver_mode="CPU")
LNET_VARIANTS = {"full": (FULL_LNET, FULL_LNET_SOLVER), "small": (SMALL_LNET, SMALL_LNET_SOLVER)}
LNETS = ("lnet_o", "lnet_s")    # the cascade, in order

# ---------------------------------------------------------------- weights
ALEXNET_FILE = "bvlc_alexnet.caffemodel"
ALEXNET_HINT = ("LNets' ImageNet pre-training is BVLC AlexNet (bvlc_alexnet.caffemodel, ~233 MB, Caffe "
                "model zoo models/bvlc_alexnet: http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel). "
                "Put it at weights/bvlc_alexnet.caffemodel or pass --weights-alexnet PATH; "
                "`--weights-alexnet none` trains from random init instead")
ALEXNET_RANDOM_WARNING = ("LNets' ImageNet pre-training replaced by RANDOM INIT (--weights-alexnet none): "
                          "not the paper's setting (its Fig. 7(c) shows LNets without pre-training "
                          "localize far worse)")

# ---------------------------------------------------------------- localization (our choices)
# The window set (what the box was chosen from before issue 23, kept for measuring that rule):
# EVERY axis-aligned rectangle of whole C5 cells, scored exactly with an integral image (not
# EdgeBox's 500 proposals; bench/bench_lnet_windows.py measured both, docs/baseline.md).  A
# window covers the image area its cells represent (each cell the pixels nearest its
# receptive-field centre).
WINDOW_MIN_CELLS = 2            # no 1-cell windows: a single conv5 position is noise-prone
WINDOW_ASPECT_RANGE = (0.5, 2.0)   # height / width in cells: faces and head-shoulders both fit
# A window's score (the box's: the image's score, what the face threshold cuts, Fig. 3(b)) =
# the response inside / (its area in cells) ** SCORE_SIZE_EXPONENT.  The paper: "sums over its
# response values normalized by its window size".  Read as the area (exponent 1, the mean),
# the best window of a map is the smallest one around its peak (inside a uniform blob every
# sub-window has the same mean); by the linear size sqrt(area) the best window of a uniform
# blob is the blob itself (tests/methods/lnets/test_localize.py).  On the box it also ranked
# hit above missed faces better than the best window's score did (docs/choices.md).
SCORE_SIZE_EXPONENT = 0.5

# The box (localize.mass_box): NOT the best-scored window.  That window sits on the map's
# densest part -- a strip across the eyes, the mask, the beard -- not around the face
# (docs/baseline.md, "From response map to face box": on the demo's val split LNet_s's reached
# IoU >= 0.5 with the face on 22 % of the images while the window set held such a window for
# all of them).  The box is the response's mass instead: centred on its centroid, its side
# proportional to its spread (the root of the mass-weighted positional variance), shaped like a
# face; a small hot spot inside or below the face moves the centroid a little and the spread
# hardly at all.  Chosen on the demo's val split (never test) against the alternatives
# (windows limited to face shapes and sizes, inside-vs-ring and mass-coverage scores):
# bench/bench_lnet_boxes.py, docs/choices.md.
MASS_FLOOR = 0.0                # every cell's response is mass: the whole map's mass located the
                                # face best on val (a floor of 10-30 % of the maximum, i.e. the
                                # hot region only, lost up to 17 points on LNet_o's map and
                                # 19-43 on LNet_s's: the maps are broad and noisy)
FACE_BOX_ASPECT = 1.33          # height / width: the median of the demo's val boxes (1.12-1.40;
                                # CelebA's first box, 226 x 313, is 1.38; the bench prints a
                                # split's own)
# Box side = scale x 2 x spread, centre moved by shift (fractions of the box's width, height):
# LNet_o's box from its mass alone, the face from both nets' pooled mass (below).  Fitted on
# the demo's val boxes (bench/bench_lnet_boxes.py, 2026-12-03): LNet_o's on its 800-iteration
# net (before LNet_s was trained on the regions it gives; on 1,200 iterations the fit is
# 1.0, (0.1, -0.1), within a point), the face's on the demo's 1,200 + 500 nets.  How far the
# mass spreads beyond the face depends on what the nets learned (hats above, ties below): for
# other nets (the full variant, CelebA) rerun the bench on their val split.
LNET_O_BOX_SCALE, LNET_O_BOX_SHIFT = 1.1, (0.0, -0.1)
FACE_BOX_SCALE, FACE_BOX_SHIFT = 0.9, (0.1, -0.1)
# LNet_s's input: LNet_o's box made square and enlarged by this fraction of its side on each
# side ("the head-shoulder region"): the face takes half of LNet_s's input, about what
# LNet_o's best-scored window gave before (median 1.9 face widths).  (1.0, the face a third of
# the input like in LNet_o's, left LNet_s's own box far worse on val: 42 % hits.)
HEAD_SHOULDER_MARGIN = 0.5
# The cascade's face: the two nets' masses pooled, this weight on LNet_s's centroid and spread
# (localize.refine).  On the demo's val split (2-fold) LNet_s's mass alone placed fewer faces
# than LNet_o's after 150 iterations (60 % vs 78 %: at 163 px every C5 cell of LNet_s sees its
# whole input, where the attributes' evidence -- hat, tie, earrings, eyes -- is everywhere) and
# as many after 500 (77 %); pooled at 0.5, 77 % and 82.5 % (0.25: 80 %, 0.75: 77 %).  0 would
# drop LNet_s's say, 1 would be LNet_s alone.
SECOND_NET_WEIGHT = 0.5

# ---------------------------------------------------------------- density peaks (our choices)
# Rodriguez & Laio 2014 on LNet_o's map (test stage only: "multiple faces ... within a single
# window" is the head-shoulder window LNet_s would see): density rho = the response smoothed by
# a Gaussian (their Gaussian-kernel density, each cell weighted by its response), delta =
# distance (cells) to the nearest cell of higher rho.  A peak has rho >= PEAK_MIN_DENSITY *
# max rho and delta >= PEAK_MIN_SEPARATION; with two or more peaks (several faces) LNet_o's
# box is made from the densest peak's cluster alone (R&L's assignment: each cell joins its
# nearest denser cell's cluster), so LNet_s sees one face.  Not on LNet_s's map: inside one
# face its response has several maxima (forehead, mouth; docs/baseline.md).
DENSITY_SIGMA_CELLS = 1.0       # one cell (16 px at 227): merges maxima inside one face
# Chosen on the demo's val split (one face per image, so every cut there is a wrong one;
# bench/bench_lnet_boxes.py, the demo's LNets): at 0.35 / 3 cells 11 % of LNet_o's maps were
# cut (and 75 % of LNet_s's), costing 7 points of hits; at 0.8 / 5 cells 0.8 %.
PEAK_MIN_DENSITY = 0.8          # a second face responds almost as strongly as the first; a
                                # hat or a tie below the face responds less
PEAK_MIN_SEPARATION = 5.0       # cells (80 px at 16 px per cell): apart further than the
                                # maxima of one face and what it wears (hat, tie)
POINT_MIN_DENSITY = 0.05        # cells below 5 % of max rho are background: not clustered
                                # (the paper: the averaged C5 map "is sparse")

# ---------------------------------------------------------------- the face threshold (our choices)
# Each image is represented by its face's score; the threshold is the cut point that
# maximises balanced accuracy (mean of the face and background hit rates) between the two
# score sets: the midpoint between adjacent scores, so on a separable set it is the middle of
# the gap (the "decision boundary" of Fig. 3(b)).  Ties: the middle one of the best cuts.
THRESHOLD_RULE = "max balanced accuracy, midpoint cut"
HISTOGRAM_BINS = 30
