"""Typed configuration objects with strict merging (unknown keys are errors).

Configs are plain dataclasses.  ``merge(obj, mapping)`` returns a new object with the
mapping's values applied, recursing into nested dataclasses; a key the dataclass does not
have, or a value of the wrong type, raises ``G2SError`` naming the dotted key and where it
came from.  Nothing is global: load a config and pass it down.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping

from g2s_caffe.core.errors import G2SError


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(tp):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_type(value, arm, where)
            except G2SError as e:
                errors.append(str(e))
        raise G2SError(f"{where}: {value!r} does not fit {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise G2SError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_check_type(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise G2SError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise G2SError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise G2SError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise G2SError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise G2SError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise G2SError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    return value


def merge(obj: Any, overrides: Mapping[str, Any], source: str = "config", _prefix: str = "") -> Any:
    """A copy of dataclass ``obj`` with ``overrides`` applied; unknown keys raise G2SError."""
    if not dataclasses.is_dataclass(obj):
        raise TypeError(f"merge() needs a dataclass instance, got {type(obj).__name__}")
    if not isinstance(overrides, Mapping):
        raise G2SError(f"{source}: {_prefix or 'top level'} must be a mapping, got {overrides!r}")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        dotted = f"{_prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise G2SError(f"{source}: unknown key {dotted!r} (known keys here: {known})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = merge(current, value, source, f"{dotted}.")
        else:
            changes[key] = _check_type(value, hints[key], f"{source}: {dotted}")
    return dataclasses.replace(obj, **changes)


def merge_dotted(obj: Any, assignments: list[str], source: str = "--set") -> Any:
    """Apply ``a.b=value`` strings (values parsed as YAML scalars) with the same strictness."""
    import yaml

    for item in assignments:
        if "=" not in item:
            raise G2SError(f"{source} {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        tree: dict = {}
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        obj = merge(obj, tree, source)
    return obj


def load_yaml(path: Path) -> Mapping[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise G2SError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise G2SError(f"{path}: the top level must be a mapping")
    return data


def from_command_line(default: Any, config_file: str | None, assignments: list[str],
                      flags: Mapping[str, Any]) -> Any:
    """A CLI's config in its order of precedence: the defaults, then ``--config`` YAML, then
    ``--set KEY=VALUE``, then the dedicated flags that were given (None = not given)."""
    cfg = default
    if config_file:
        cfg = merge(cfg, load_yaml(Path(config_file)), config_file)
    cfg = merge_dotted(cfg, assignments)
    return merge(cfg, {k: v for k, v in flags.items() if v is not None}, "command line")


def to_dict(obj: Any) -> dict:
    """JSON-friendly dict of a config (paths as strings), for manifests."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(obj)
