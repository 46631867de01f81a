"""Where an ANet run's face regions come from: a face source, chosen with `g2s anet --faces`.

``prep`` (here; run "anet_prep_boxes", method "anet": ANet alone, on another method's boxes):
the prepared crop of scheme c, i.e. MTCNN's eye-aligned face box enlarged by M = 0.1 (Eq. 3),
resized to ANet's region size R (region_jpeg).

Other sources register themselves when their package loads: the LNets+ANet cascade
(g2s_caffe/methods/lnets_anet/faces.py) adds ``lnets``, LNets' face windows, the system end to
end.  ANet itself thus names no method it does not build on; a source answers what depends
on where the faces come from (the run's name and method, the faces stage before the data, the
regions of a split for training and for evaluation, what evaluation adds, new photos).
"""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core import layout, registry
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.images import decode_jpeg, encode_jpeg
from g2s_caffe.core.runs import Run

PREP = "prep"


def region_jpeg(raw: bytes, size: int, quality: int, where: str) -> bytes:
    """A scheme-c crop (JPEG bytes) resized to size x size and encoded as JPEG again: ANet's
    region, whichever the source of the crop.  Shrinking uses area averaging (no aliasing),
    enlarging bilinear interpolation."""
    import cv2

    img = decode_jpeg(raw, where)
    if img.shape[:2] != (size, size):
        shrink = img.shape[0] > size
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return encode_jpeg(img, quality, f"{where} ({size}x{size} region)")


class PrepRegions:
    """The prepared scheme-c crop, resized to R (region_jpeg)."""
    source = PREP

    def __init__(self, region_size: int, quality: int):
        self.region_size, self.quality = region_size, quality

    def __call__(self, keys: list[str], c_jpegs: list[bytes]) -> list[bytes]:
        return [region_jpeg(j, self.region_size, self.quality, k) for j, k in zip(c_jpegs, keys)]


class FaceSource:
    """What an ANet run needs to know about where its face regions come from."""
    name = ""                   # the --faces value (stored as the run's config["faces"])
    run_name = ""               # RUNS/<run_name>/
    method = ""                 # Run.method of its runs (a registry id)
    description = ""            # "g2s prep's face boxes", for the run's first line

    def check_request(self, args, runs: Path) -> Path | None:
        """The request's face-finder run (None if the source has none); a G2SError for
        arguments that do not go with this source, before anything is written."""
        return None

    def identity(self, req) -> dict | None:
        """What the regions depend on that a rerun must not change (None: nothing)."""
        return None

    def prepare(self, run: Run, req, splits: list[str]) -> Run:
        """Before the data stage: find the faces of ``splits`` (nothing to do for prep)."""
        return run

    def stage_inputs(self, run: Run, split: str) -> dict:
        """What the data stage of ``split`` is made from besides the prepared crops."""
        return {}

    def regions(self, run: Run, data: layout.PreparedDataset, split: str, quality: int, region_size: int):
        """``regions(keys, scheme-c JPEGs) -> region JPEGs`` of a split ANet trains on."""
        return PrepRegions(region_size, quality)

    def test_regions(self, run: Run, data: layout.PreparedDataset, split: str, quality: int, region_size: int,
                     out_dir: Path, show: bool = True):
        """The regions of an evaluated split (files it writes go to ``out_dir``)."""
        return self.regions(run, data, split, quality, region_size)

    def eval_summary(self, run: Run, result, out_dir: Path) -> dict:
        """What evaluation adds about the faces (eval/<split>/<method>.json, "faces")."""
        return {"source": PREP, "note": "g2s prep's face boxes (scheme c), not LNets"}

    def predict(self, args, run: Run) -> int:
        raise G2SError(f"{run.root}: ANet on g2s prep's face boxes (part 1) needs those boxes, which new photos do not "
                       "have; predict with the end-to-end run (`g2s anet --faces lnets`, run lnets_anet) or a G2S run")


class PrepFaces(FaceSource):
    name = PREP
    run_name = "anet_prep_boxes"
    method = "anet"
    description = "g2s prep's face boxes"

    def check_request(self, args, runs: Path) -> Path | None:
        if args.lnets or args.images:
            raise G2SError("--lnets and --images go with --faces lnets")
        return None


_SOURCES: dict[str, FaceSource] = {}


def register_source(source: FaceSource) -> FaceSource:
    _SOURCES[source.name] = source
    return source


register_source(PrepFaces())


def names() -> tuple[str, ...]:
    """Every face source's --faces value, prep first (the methods that add one are loaded)."""
    registry.discover()
    return tuple(_SOURCES)


def source(name: str) -> FaceSource:
    registry.discover()
    if name not in _SOURCES:
        raise G2SError(f"--faces {name}: no such face source (known: {', '.join(_SOURCES)})")
    return _SOURCES[name]


def anet_methods() -> set[str]:
    """The Run.method ids of ANet runs, one per face source."""
    registry.discover()
    return {s.method for s in _SOURCES.values()}


def source_of(run: Run) -> FaceSource:
    return source(run.config.get("faces", PREP))
