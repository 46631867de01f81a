"""Files that appear complete or not at all: a temporary file in the same directory, then
``os.replace``.  A kill -9 at any moment leaves the old file or the new one, never half of one;
any other failure (a full disk) removes the temporary file and names the file in the error."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from g2s_caffe.core.faults import writing


def write_atomic(path: Path, data: bytes | str, fsync: bool = False, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically; ``fsync`` also survives a power cut (manifests);
    ``mode``: the file's permissions (mkstemp's own 0600 would hide results from other users
    of a shared filesystem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with writing(path), os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def copy_atomic(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` so that ``dst`` appears complete or not at all."""
    import shutil

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with writing(dst):
            shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dst


def save_figure_atomic(fig, path: Path, dpi: int = 110) -> Path:
    """A matplotlib figure as a PNG that appears complete or not at all."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return write_atomic(path, buf.getvalue())
