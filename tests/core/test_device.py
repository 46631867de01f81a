"""A GPU asked for where none is visible: one line that says so, before Caffe aborts."""
from __future__ import annotations

import pytest

from g2s_caffe.core.device import require_gpus, visible_gpus
from g2s_caffe.core.errors import G2SError


def test_missing_gpu_is_one_clear_line():
    n, why = visible_gpus()
    if n:
        pytest.skip(f"{n} GPU(s) visible here")
    assert why
    with pytest.raises(G2SError) as e:
        require_gpus([0], "--gpus")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("--gpus 0: ") and why in msg and "NVIDIA Container Toolkit" in msg
