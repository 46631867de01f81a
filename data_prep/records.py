"""What a dataset reader hands the pipeline: one record per listed image, in dataset order."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ImageRecord:
    name: str                 # the dataset's image name, '/'-separated (part of the LMDB key)
    path: Path                # where the image file is (or should be)
    split: str                # train | val | test
    labels: tuple[int, ...]   # T values in {0, 1}, in the dataset's attribute order
    where: str                # "file:line" (or "file[i]") that listed it, for messages
    box: tuple[float, float, float, float] | None = None   # dataset face box x, y, w, h (image px)
    landmarks: tuple[tuple[float, float], ...] | None = None  # dataset's 5 points (image px)
    on_disk: bool = True      # False only under --missing report
    # The person, when the dataset says (None otherwise): its name (CelebA: identity_CelebA.txt's
    # number as text; LFW: the folder name) and its number as in the dataset (CelebA: that
    # integer; LFW: the index of the folder name among the release's sorted folder names).
    identity: str | None = None
    identity_number: int | None = None


@dataclass
class DatasetIndex:
    dataset: str
    attributes: list[str]
    records: list[ImageRecord]
    sources: dict[str, str] = field(default_factory=dict)   # what was read, for the manifest
    # When the dataset gives no box (LFW): the reference face box is the centred square of
    # this fraction of the image's shorter side (LFW images are Viola-Jones boxes enlarged 2.2x).
    centre_box_fraction: float | None = None

    @property
    def has_identities(self) -> bool:
        """Every record knows its person.  Where they are from: ``sources["identities"]``;
        when absent, ``sources["identity_note"]`` says what was missing."""
        return bool(self.records) and all(r.identity_number is not None for r in self.records)

    def split(self, split: str) -> list[ImageRecord]:
        return [r for r in self.records if r.split == split]

    def splits(self) -> list[str]:
        return [s for s in ("train", "val", "test") if any(r.split == s for r in self.records)]
