"""Generated prototxt files: the command that regenerates them on the first line, then who wrote them."""
from __future__ import annotations

SUFFIX = ".prototxt"
HEADER_MARK = "# g2s gen"          # the first line of a file `g2s gen` wrote


def render(message, command: str, generator: str, note: str = "") -> str:
    """A generated file: ``command`` (a comment line), a warning naming ``generator`` (the
    module that wrote it), ``note``, then the message as text."""
    from g2s_caffe.core.nets.protofiles import proto_text

    return (f"{command.rstrip()}\n# Written by {generator}; edit the generator or the "
            f"attribute list and rerun the command above, not this file.\n{note}{proto_text(message)}")
