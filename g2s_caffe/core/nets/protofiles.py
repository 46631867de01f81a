"""Caffe text protos (prototxt) read with a clear error and written atomically."""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError


def read_text_proto(path: Path, message):
    """Parse ``path`` into ``message`` (e.g. a caffe_pb2.NetParameter()) and return it."""
    from google.protobuf import text_format

    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: missing (regenerate the nets with `g2s gen`)")
    try:
        return text_format.Merge(path.read_text(), message)
    except text_format.ParseError as e:
        raise G2SError(f"{path}: not a valid {type(message).__name__} ({e})") from e


def proto_text(message) -> str:
    """The text form used for every file the project writes (7 significant digits print
    float32 values as written in params.py: 93.594, 0.0001)."""
    from google.protobuf import text_format

    return text_format.MessageToString(message, float_format=".7g")


def write_text_proto(path: Path, message, header: str = "") -> Path:
    return write_atomic(path, header + proto_text(message))
