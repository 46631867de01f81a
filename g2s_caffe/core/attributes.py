"""Attribute lists: names (in label order) and each attribute's Step-3 crop scheme.

An attributes file is YAML::

    dataset: celeba            # optional; a label for generated paths/manifests
    attributes:
      - {name: Eyeglasses, crop: g}
      - ...

The packaged defaults are ``g2s_caffe/data/attributes/{celeba,lfwa}.yaml``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from g2s_caffe.core.config import load_yaml
from g2s_caffe.core.crops import CROP_SCHEMES
from g2s_caffe.core.errors import G2SError

# Names become Caffe layer/blob names, file names and directory names: keep them to
# letters, digits and underscores (CelebA's "5_o_Clock_Shadow" starts with a digit).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,63}$")
DEFAULT_DATASETS = ("celeba", "lfwa")


@dataclass(frozen=True)
class Attribute:
    name: str
    crop: str


@dataclass(frozen=True)
class AttributeList:
    dataset: str
    attributes: tuple[Attribute, ...]
    source: str

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    def __len__(self) -> int:
        return len(self.attributes)

    def index(self, name: str) -> int:
        for i, a in enumerate(self.attributes):
            if a.name == name:
                return i
        raise G2SError(f"{self.source}: no attribute named {name!r} (known: {', '.join(self.names)})")

    def subset(self, names: list[str]) -> list[Attribute]:
        return [self.attributes[self.index(n)] for n in names]


def parse_attributes(data: object, source: str) -> AttributeList:
    if not isinstance(data, dict):
        raise G2SError(f"{source}: the top level must be a mapping with an 'attributes' list")
    unknown = set(data) - {"dataset", "attributes"}
    if unknown:
        raise G2SError(f"{source}: unknown key(s) {sorted(unknown)} (allowed: dataset, attributes)")
    dataset = data.get("dataset", "custom")
    if not isinstance(dataset, str) or not NAME_RE.match(dataset):
        raise G2SError(f"{source}: dataset {dataset!r} must be letters, digits and underscores")
    items = data.get("attributes")
    if not isinstance(items, list) or not items:
        raise G2SError(f"{source}: 'attributes' must be a non-empty list of {{name, crop}}")
    seen: dict[str, int] = {}
    out = []
    for i, item in enumerate(items, 1):
        where = f"{source}: attributes[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "crop"} or "name" not in item:
            raise G2SError(f"{where}: expected {{name: NAME, crop: SCHEME}}, got {item!r}")
        name = item["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise G2SError(f"{where}: {name!r} is not a valid layer name "
                           "(letters, digits, underscores; at most 64; no leading underscore)")
        if name in seen:
            raise G2SError(f"{where}: duplicate attribute {name!r} (first at attributes[{seen[name]}])")
        seen[name] = i
        crop = item.get("crop", "a")
        if crop not in CROP_SCHEMES:
            raise G2SError(f"{where}: unknown crop scheme {crop!r} for {name} "
                           f"(the paper's schemes: {', '.join(CROP_SCHEMES)})")
        out.append(Attribute(name, crop))
    return AttributeList(dataset, tuple(out), source)


def load_attributes(path: Path) -> AttributeList:
    return parse_attributes(load_yaml(path), str(path))


def default_attributes_path(dataset: str) -> Path:
    if dataset not in DEFAULT_DATASETS:
        raise G2SError(f"no packaged attribute list for {dataset!r} (packaged: {', '.join(DEFAULT_DATASETS)}); "
                       "pass --attributes FILE")
    return Path(str(resources.files("g2s_caffe") / "data" / "attributes" / f"{dataset}.yaml"))


def default_attributes(dataset: str) -> AttributeList:
    return load_attributes(default_attributes_path(dataset))
