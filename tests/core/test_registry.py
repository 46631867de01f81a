"""The method registry (g2s_caffe/core/registry.py) and what the generic commands get from it:
the commands and their order, the published columns, old manifests read with today's ids, and
`g2s --help` without Caffe."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from g2s_caffe.core import registry
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.runs import FORMAT, MANIFEST, load_run, save_run


def test_every_method_is_registered_with_its_manifest_id():
    assert [m.id for m in registry.methods()] == ["g2s", "anet", "lnets", "lnets_anet"]
    assert {m.id: m.published_column for m in registry.methods()} == {
        "g2s": "ours", "anet": "lnets_anet", "lnets": None, "lnets_anet": "lnets_anet"}
    with pytest.raises(G2SError, match="method 'nope' is not known"):
        registry.get("nope")


def test_the_commands_keep_their_order_and_owners():
    from g2s_caffe.cli import commands

    assert [c.name for c in commands()] == ["prep", "eval", "compare", "predict", "crop-search", "gen", "train",
                                             "lnets", "localize", "anet", "detect", "demo"]
    owner = {c.name: m.id for m in registry.methods() for c in m.commands}
    assert owner == {"crop-search": "g2s", "train": "g2s", "lnets": "lnets", "localize": "lnets", "anet": "anet"}


def test_help_does_not_import_caffe():
    code = ("import sys; from g2s_caffe.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m == 'caffe' or m.startswith('caffe.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _format_1(method: str | None, config: dict, steps: list[int]) -> dict:
    d = {"format": "g2s-run/1", "run": "r", "dataset": "celeba", "data": "/d", "attributes": [],
         "steps": steps, "weights_a": {"path": "/w/VGG_FACE.caffemodel", "sha256": "ab"}, "config": config,
         "caffe": {}, "git_commit": None, "created": "2026-12-01T00:00:00", "jobs": [], "stages": {}}
    if method is not None:
        d["method"] = method
    return d


@pytest.mark.parametrize("method, config, steps, expect", [
    (None, {}, [1, 2, 3], "g2s"),                                  # the oldest: no method field, G2S's
    ("g2s", {"head_init": "copy"}, [2], "g2s"),
    ("lnets_anet", {"faces": "prep"}, [], "anet"),                  # ANet on prep boxes has its own id now
    ("lnets_anet", {}, [], "anet"),                                 # before --faces existed: prep boxes
    ("lnets_anet", {"faces": "lnets"}, [], "lnets_anet"),           # the cascade keeps its id
    ("lnets", {}, [], "lnets"),
])
def test_format_1_manifests_are_read_with_todays_fields(tmp_path, method, config, steps, expect):
    (tmp_path / MANIFEST).write_text(json.dumps(_format_1(method, config, steps)))
    run = load_run(tmp_path)
    assert run.method == expect and run.pretrained == {"path": "/w/VGG_FACE.caffemodel", "sha256": "ab"}
    assert run.config.get("steps") == (steps or None)
    save_run(run)                                                   # written back in today's format
    saved = json.loads((tmp_path / MANIFEST).read_text())
    assert saved["format"] == FORMAT and "weights_a" not in saved and "steps" not in saved
    assert load_run(tmp_path).to_json() == run.to_json()


def test_a_manifest_of_another_format_is_refused_by_name(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "g2s-run/9"}))
    with pytest.raises(G2SError, match=r"manifest.json: format 'g2s-run/9', expected 'g2s-run/2'"):
        load_run(tmp_path)
