"""Datasets, the MTCNN port, eye alignment, the 8 attribute-aware crops and LMDB writing."""
