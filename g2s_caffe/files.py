"""Kept while modules move to g2s_caffe.atomic (the one home of the atomic writers)."""
from .atomic import save_figure_atomic, write_atomic  # noqa: F401
