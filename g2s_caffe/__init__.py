"""G2S-Caffe: the general-to-specific facial attribute nets of Sun & Yu (BMVC 2018) on BVLC Caffe."""
__version__ = "0.1.0"
