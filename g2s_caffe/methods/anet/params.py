"""ANet's constants (Liu et al., ICCV 2015, §2.2, Fig. 2(c)(d), Fig. 5), each once, by name.

What the paper fixes is written as such; everything it leaves open (it gives no layer widths
past C1, no kernel sizes, grid, input or patch sizes, patch layout, loss weight or solver) is
our choice, with its reason next to it and a row in docs/choices.md's ANet "paper says / we
chose / why" table.  The generated prototxt files carry every value; tests read them back.
"""
from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------- what the paper fixes
CONV_LAYERS = 4                 # C1..C4
POOL_LAYERS = 3                 # after C1, C2 and C3
FC_LAYERS = 1                   # FC, the feature the SVMs read
GLOBAL_CONVS = ("conv1", "conv2")           # globally shared filters
LOCAL_CONVS = ("conv3", "conv4")            # locally shared: a grid of non-overlapping cells,
                                            # each cell with its own filters
PAPER_IDENTITIES = 8000         # "We select eight thousand face identities" (pre-training);
                                # a run copy uses the number of identities its train split has
ENLARGE_SCHEME = "c"            # "extend the localized face region ... with a small factor": the
                                # region is Eq. 3's scheme c, the face box enlarged by M = 0.1

# ------------------------------------------------------- our choices (table in docs/choices.md)
# Stride at C3's input: C1 and C2 are stride-1 *valid* convolutions, each followed by a 2x2/2
# max pool.  Valid convolutions and pools without partial windows make every patch's maps an
# exact crop of the whole region's maps when patch offsets are multiples of this stride: that
# is what lets the one-pass net compute C1/C2 once for all patches (SPP-net's idea, which the
# paper builds on).
POOL_KERNEL = 2
POOL_STRIDE = 2
STRIDE_AT_C3 = POOL_STRIDE * POOL_STRIDE
# C3/C4 filters are valid convolutions *inside each cell*: a cell's filters read only that
# cell (the paper: "divided into grids with non-overlapping cells, each of which learns
# different filters").  Then a cell filter's outputs for every patch lie on one map over the
# whole region, so the interweaved operation is exact with one global convolution per cell
# filter: C4 and FC read pool3's cells at every second position, i.e. a convolution dilated
# by 2 over a stride-1 pool3 (the "d-regularly sparse kernels" of Li, Zhao & Wang 2014).
LOCAL_PAD = 0
# Similarity loss (pre-training): the paper sums ||FC_i - FC_j||^2 over pairs of the same
# identity "similar to [DeepID2]"; DeepID2 weighs its verification signal by 0.05 against the
# identification softmax.  Caffe's EuclideanLoss is 1/(2N) sum ||a - b||^2 over N pairs.
SIMILARITY_LOSS_WEIGHT = 0.05
DROPOUT = 0.5                   # on FC before the classifiers (training only; the SVMs read FC)
# Inputs: ANet is trained from random init (pre-training on identities is its first stage), so
# pixels are mean-subtracted (a face mean: VGG-Face's BGR mean) and scaled to about unit range.
FACE_MEAN_BGR = (93.5940, 104.7624, 129.1863)
INPUT_SCALE = 1 / 64
CONV_WEIGHT_FILLER = dict(type="msra")
HEAD_WEIGHT_FILLER = dict(type="gaussian", std=0.01)
BIAS_FILLER = dict(type="constant", value=0.0)
# Fine-tuning loss: the paper's attribute loss is a sum over attributes of per-attribute
# cross-entropies with p = sigmoid(f(x)) (§2.1, for LNet; ANet is "fine-tuned by attributes"
# the same way): SigmoidCrossEntropyLoss normalised by the batch size only, i.e. summed over
# the T attributes and averaged over images.
ATTRIBUTE_LOSS_NORMALIZATION = "BATCH_SIZE"


@dataclass(frozen=True)
class ANetShape:
    """Size knobs of the one ANet builder; every size follows from these (see ``patch_size``)."""
    c1: int                 # C1 filters (globally shared)
    c1_kernel: int
    c2: int                 # C2 filters (globally shared)
    c2_kernel: int
    grid: int               # cells per side of the locally shared layers C3 and C4
    cell: int               # cell side at C3's input
    c3: int                 # C3 filters per cell
    c3_kernel: int
    c4: int                 # C4 filters per cell
    c4_kernel: int
    fc_dim: int             # FC, the feature
    patches_per_side: int   # test patches: patches_per_side^2 overlapping patches of the region
    patch_step: int         # offset between neighbouring patches, in units of STRIDE_AT_C3 pixels
    input_scale: float = INPUT_SCALE

    @property
    def stride(self) -> int:
        return STRIDE_AT_C3

    @property
    def c3_input(self) -> int:
        """Side of C3's input map (pool2's output) for one patch."""
        return self.grid * self.cell

    @property
    def c3_output(self) -> int:
        """Side of one cell's C3 output (valid inside the cell)."""
        return self.cell - self.c3_kernel + 1

    @property
    def c4_input(self) -> int:
        """Side of one cell after pool3 (2x2/2 inside the cell)."""
        return self.c3_output // POOL_STRIDE

    @property
    def c4_output(self) -> int:
        """Side of one cell's C4 output: FC reads grid^2 cells of c4 x c4_output^2 values."""
        return self.c4_input - self.c4_kernel + 1

    @property
    def patch_size(self) -> int:
        """The patch side p whose pool2 map is exactly grid x cell (no partial pool windows)."""
        c2_out = POOL_STRIDE * self.c3_input
        c1_out = POOL_STRIDE * (c2_out + self.c2_kernel - 1)
        return c1_out + self.c1_kernel - 1

    @property
    def region_size(self) -> int:
        """R: the enlarged face region, resized, that the patches tile (the one-pass input)."""
        return self.patch_size + (self.patches_per_side - 1) * self.patch_step * self.stride

    @property
    def n_patches(self) -> int:
        return self.patches_per_side ** 2

    @property
    def patch_offsets(self) -> list[tuple[int, int]]:
        """(y, x) of each test patch's top-left corner in the region, in pixels, row-major."""
        step = self.patch_step * self.stride
        n = self.patches_per_side
        return [(a * step, b * step) for a in range(n) for b in range(n)]

    def check(self) -> None:
        from g2s_caffe.core.errors import G2SError

        if min(self.c1, self.c2, self.c3, self.c4, self.fc_dim, self.grid, self.cell,
               self.patches_per_side, self.patch_step) < 1:
            raise G2SError("ANet sizes must all be >= 1")
        if self.c3_output < POOL_STRIDE or self.c3_output % POOL_STRIDE:
            raise G2SError(f"ANet: a cell's C3 output ({self.cell} - {self.c3_kernel} + 1 = {self.c3_output}) "
                           "must be even and >= 2, so that pool3 (2x2/2) stays inside each cell")
        if self.c4_output < 1:
            raise G2SError(f"ANet: C4's {self.c4_kernel}x{self.c4_kernel} kernel does not fit a pooled cell "
                           f"of {self.c4_input}x{self.c4_input}")


# Full variant (CelebA/LFWA).  An AlexNet-sized C1/C2 (96 and 256 filters) at full resolution,
# a 3 x 3 grid as in the paper's Fig. 5 with 8 x 8 cells at C3's input (each cell's C4 output
# is 1 x 1: FC reads 9 cells x 64), FC 256.  5 x 5 patches 4 px apart (the smallest step the
# one-pass net allows) tile the 126-px region with 110-px patches, 87 % of its side:
# "multiple overlapping patches".  Multiply-adds per face: 41.6 G patch by patch, 2.4 G in one
# pass (the paper reports a 6x saving in time).
FULL_ANET = ANetShape(c1=96, c1_kernel=7, c2=256, c2_kernel=5, grid=3, cell=8, c3=128, c3_kernel=3,
                      c4=64, c4_kernel=3, fc_dim=256, patches_per_side=5, patch_step=1)
# Small variant (CPU tests and the demo): the same builder with 1/3 of the widths, a 2 x 2 grid
# of 6 x 6 cells and a 2 x 2 C4, 56-px patches of a 72-px region (the demo's 64-px crops, resized).
SMALL_ANET = ANetShape(c1=32, c1_kernel=5, c2=64, c2_kernel=3, grid=2, cell=6, c3=32, c3_kernel=3,
                       c4=32, c4_kernel=2, fc_dim=64, patches_per_side=5, patch_step=1)


@dataclass(frozen=True)
class ANetSolverSettings:
    """SGD for both stages (the paper gives no solver for ANet; ours follows §3.1's SGD)."""
    batch_size: int = 128
    test_batch_size: int = 64
    # From random init (pre-training) a rate 100x G2S's fine-tuning rate; fine-tuning from the
    # pre-trained net 10x lower again.
    base_lr_pretrain: float = 0.01
    base_lr_finetune: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_policy: str = "inv"
    gamma: float = 1e-4
    power: float = 0.75
    # 160k training images at batch 128: 60k iterations ~ 48 epochs of identity pre-training,
    # 30k ~ 24 epochs of attribute fine-tuning.
    max_iter_pretrain: int = 60000
    max_iter_finetune: int = 30000
    test_interval: int = 2000
    snapshot: int = 5000
    display: int = 20
    seed: int = 1701
    solver_mode: str = "GPU"


FULL_ANET_SOLVER = ANetSolverSettings()
SMALL_ANET_SOLVER = ANetSolverSettings(batch_size=32, test_batch_size=32, max_iter_pretrain=400,
                                       max_iter_finetune=400, test_interval=100, snapshot=100,
                                       solver_mode="CPU")
ANET_VARIANTS = {"full": (FULL_ANET, FULL_ANET_SOLVER), "small": (SMALL_ANET, SMALL_ANET_SOLVER)}

# ---------------------------------------------------------------- SVMs (§2.2, Fig. 2(d))
# One linear SVM per attribute (LIBLINEAR through scikit-learn's LinearSVC), on every patch's FC;
# C chosen per attribute on a held-out part of the SVM split, then refit on all of it.
SVM_C_GRID = (0.001, 0.01, 0.1, 1.0)
SVM_HELD_OUT_FRACTION = 0.2
