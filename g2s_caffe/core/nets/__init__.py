"""Caffe net helpers every method builds on (no Caffe import here: `g2s --help` stays light).

data_layers  LMDB Data layers, their TEST twins, re-rooting, Input stand-ins
solvers      SGD SolverParameters, TEST iterations
weights      caffemodels read by layer name, shape-only nets to write weights into
protofiles   prototxt files read and written
render       the header of a generated file
"""

# Every method's nets come in two sizes: "full", the paper's, trained on a GPU, and "small",
# narrow nets on small images for the CPU (tests and the demo).
VARIANTS = ("full", "small")
VARIANT_SOLVER_MODE = {"full": "GPU", "small": "CPU"}
