"""What the datasets' protocols fix for every method: the split training is monitored on.

CelebA (the dataset paper): 162,770 train / 19,867 val / 19,962 test images; LFWA: 6,263
train / 6,880 test and no validation split, so its TEST phase reads the test split for
monitoring only (no model selection on it).
"""
from __future__ import annotations

from g2s_caffe.core.errors import G2SError

MONITOR_SPLIT = {"celeba": "val", "lfwa": "test"}
MONITOR_SIZE = {"celeba": 19867, "lfwa": 6880}


def monitor_split(dataset: str | None = None, splits=None, train: str = "train") -> str:
    """The TEST-phase split: from the prepared ``splits`` when given (val when there is one,
    else test), else the dataset's standard one (val for a dataset we do not know)."""
    if splits is None:
        return MONITOR_SPLIT.get(dataset, "val")
    for s in ("val", "test"):
        if s in splits and s != train:
            return s
    raise G2SError(f"the prepared data has no val or test split to monitor training on (splits: {', '.join(splits)})")


def monitor_size(dataset: str, given: int | None = None) -> int:
    """Images in the dataset's standard monitor split, unless ``given``."""
    if given is not None:
        return given
    if dataset not in MONITOR_SIZE:
        raise G2SError(f"dataset {dataset!r} has no standard {monitor_split(dataset)} size; "
                       "pass --monitor-size N (images in its monitor split)")
    return MONITOR_SIZE[dataset]
