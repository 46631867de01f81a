"""The paper's hyper-parameters (§2.1, §3.1), each once, by name.

Everything the generated prototxt/solver files say about learning comes from here; the
tests read the values back from the files, not from this module.
"""
from __future__ import annotations

from dataclasses import dataclass

from g2s_caffe.core.nets.params import param_spec

# ---------------------------------------------------------------- per-layer learning rates
# §3.1: "lr_mult as 1 on all convolutional layers ... 3, 5 and 8 on the last three fully
# connected layers".
LR_MULT_CONV = 1
LR_MULT_FC6 = 3
LR_MULT_FC7 = 5
LR_MULT_FC8 = 8

# Param specs per layer kind.
CONV_PARAM = param_spec(LR_MULT_CONV)
FC6_PARAM = param_spec(LR_MULT_FC6)
FC7_PARAM = param_spec(LR_MULT_FC7)
FC8_PARAM = param_spec(LR_MULT_FC8)

# Fillers only matter for what no caffemodel initializes (the new heads, and every layer
# of the small variant, which trains from scratch): He init suits the ReLU trunk,
# VGG's own N(0, 0.01) the linear heads.
TRUNK_WEIGHT_FILLER = dict(type="msra")
HEAD_WEIGHT_FILLER = dict(type="gaussian", std=0.01)
BIAS_FILLER = dict(type="constant", value=0.0)

# ---------------------------------------------------------------- architecture (VGG-16)
# Output channels of each conv of each block, conv1_x .. conv5_x (VGG-16 = VGG-Face).
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
CONV_KERNEL = 3
CONV_PAD = 1
POOL_KERNEL = 2
POOL_STRIDE = 2
FC_DIM = 4096
DROPOUT = 0.5
OUTPUTS_PER_ATTRIBUTE = 2   # a 2-way softmax per binary attribute
# The new heads (VGG-Face's trunk keeps its layer names so Model A loads by name).
STEP1_HEAD = "fc8_joint"   # Step 1: 2T outputs, sliced into one pair per attribute
ATTR_HEAD = "fc8_attr"     # Steps 2/3: the attribute's pair

# ---------------------------------------------------------------- input (§2.1, §3.1)
IMAGE_SIZE = 240            # face crops are stored at 240 x 240
CROP_SIZE = 224             # random 224 crop + mirror for training, the centre for testing
# VGG-Face's mean, BGR order, on 0-255 pixels (vgg_face_caffe: 129.1863, 104.7624, 93.5940 RGB).
VGG_FACE_MEAN_BGR = (93.5940, 104.7624, 129.1863)

# ---------------------------------------------------------------- solver (§3.1)
SOLVER_TYPE = "SGD"
BATCH = 128
BASE_LR = 1e-4
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
LR_POLICY = "inv"
GAMMA = 1e-4
POWER = 0.5
MAX_ITER_STEP1 = 120000
MAX_ITER_STEP23 = 40000

# Not in the paper (our choices for monitoring and resuming).
TEST_BATCH = 64
TEST_INTERVAL = 2000
SNAPSHOT = 10000
DISPLAY = 20
RANDOM_SEED = 1701



# ---------------------------------------------------------------- variants
@dataclass(frozen=True)
class NetShape:
    """Size knobs of the one VGG-16 builder (the full variant is the paper's net)."""
    width_mult: float = 1.0      # conv channels = round(VGG-16 channels * width_mult)
    fc_dim: int = FC_DIM         # fc6/fc7 outputs
    crop_size: int = CROP_SIZE
    image_size: int = IMAGE_SIZE
    # transform_param.scale after mean subtraction.  1 for the paper: VGG-Face (Model A)
    # was trained on 0-255 pixels.  Nets trained from random init (the CPU demo) need
    # unit-range inputs, else the first losses are ~50 and SGD crawls or diverges.
    input_scale: float = 1.0


@dataclass(frozen=True)
class SolverSettings:
    batch_size: int = BATCH              # effective batch (per-forward batch x iter_size)
    # The paper's 1e-4 is a fine-tuning rate (from VGG-Face); the same "inv" policy from
    # random init (the CPU demo, no Model A) needs a larger start.
    base_lr: float = BASE_LR
    iter_size: int = 1
    test_batch_size: int = TEST_BATCH
    max_iter_step1: int = MAX_ITER_STEP1
    max_iter_step23: int = MAX_ITER_STEP23
    test_interval: int = TEST_INTERVAL
    snapshot: int = SNAPSHOT
    seed: int = RANDOM_SEED
    solver_mode: str = "GPU"             # the paper trained on GPU


FULL_NET = NetShape()
FULL_SOLVER = SolverSettings()
# CPU tests and the demo: the same nets, 1/16 of the channels (4 .. 32), a 56 crop of 64
# images: a Step-1 forward+backward of batch 32 takes ~65 ms here (1/8: ~150 ms).
# They train from random init (no VGG-Face at that size): inputs scaled by 1/64 and base_lr
# 1e-3 (measured on the demo data: validation accuracy 0.86-0.96 after 750 Step-1 iterations
# where the paper's 1e-4 on 0-255 input stayed at the majority class).
SMALL_NET = NetShape(width_mult=1 / 16, fc_dim=128, crop_size=56, image_size=64, input_scale=1 / 64)
SMALL_SOLVER = SolverSettings(batch_size=32, base_lr=1e-3, test_batch_size=32, max_iter_step1=2000,
                              max_iter_step23=500, test_interval=200, snapshot=500,
                              solver_mode="CPU")
VARIANTS = {"full": (FULL_NET, FULL_SOLVER), "small": (SMALL_NET, SMALL_SOLVER)}
