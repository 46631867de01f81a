"""The package layers of docs/architecture.md, read from the code's own imports with `ast`.

    g2s_caffe.core        the shared core: names no method
    data_prep             uses the core only
    g2s_caffe.methods.X   one package per method: the core, data_prep, and the methods X
                          builds on (BUILDS_ON in its __init__.py)
    g2s_caffe.cli, .demo  the top: may use everything

Every import counts, also one inside a function (but not one under ``if TYPE_CHECKING:``,
which never runs), and no two modules may import each other through any chain (a cycle).  A failure names the file, the line and the import.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support import ROOT
PACKAGES = ("g2s_caffe", "data_prep")
TOP = {"g2s_caffe.cli", "g2s_caffe.demo"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int, str]]:
    """(imported project module, line, source text) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue                           # annotations only: not imported when the code runs
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:        # a.b.attr -> a.b
                t = t.rpartition(".")[0]
            if t and t.split(".")[0] in PACKAGES:
                out.append((t, node.lineno, ast.get_source_segment(path.read_text(), node) or ""))
    return out


def layer(name: str) -> tuple[str, str | None]:
    """("core" | "data_prep" | "method" | "top", method id or None)."""
    if name in TOP:
        return "top", None
    if name.startswith("g2s_caffe.methods."):
        return "method", name.split(".")[2]
    if name == "g2s_caffe.methods":
        return "top", None          # discovery of the method packages
    if name.startswith("data_prep"):
        return "data_prep", None
    return "core", None             # g2s_caffe (the version), g2s_caffe.core.*


def builds_on(method: str, modules: dict[str, Path]) -> set[str]:
    init = modules.get(f"g2s_caffe.methods.{method}")
    if init is None:
        return set()
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "BUILDS_ON" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def allowed(src: str, dst: str, modules: dict[str, Path]) -> bool:
    (ls, ms), (ld, md) = layer(src), layer(dst)
    if ls == "top":
        return True
    if ls == "core":
        return ld == "core"
    if ls == "data_prep":
        return ld in ("core", "data_prep")
    # a method
    if ld in ("core", "data_prep"):
        return True
    return ld == "method" and (md == ms or md in builds_on(ms, modules))


def test_imports_point_down_only():
    modules = project_modules()
    known = set(modules)
    bad = []
    for name, path in modules.items():
        for dst, line, text in imports_of(name, path, known):
            if not allowed(name, dst, modules):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {text.strip()}  ({layer(name)[0]} -> {layer(dst)[0]}"
                           f"{' ' + str(layer(dst)[1]) if layer(dst)[1] else ''})")
    assert not bad, "imports against the layers of docs/architecture.md:\n" + "\n".join(bad)


def test_no_import_cycles():
    modules = project_modules()
    known = set(modules)
    edges: dict[str, dict[str, tuple[int, str]]] = {}
    for name, path in modules.items():
        for dst, line, text in imports_of(name, path, known):
            if dst != name and not name.startswith(dst + "."):   # a package's own __init__ is not a cycle
                edges.setdefault(name, {}).setdefault(dst, (line, text.strip()))
    # Tarjan's strongly connected components
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    import sys
    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    lines = []
    for comp in comps:
        lines.append("cycle: " + " <-> ".join(comp))
        for a in comp:
            for b, (line, text) in edges.get(a, {}).items():
                if b in comp:
                    lines.append(f"  {modules[a].relative_to(ROOT)}:{line}: {text}")
    assert not comps, "import cycles:\n" + "\n".join(lines)


@pytest.mark.parametrize("case", ["core_to_method", "cycle"])
def test_the_checks_catch_what_they_look_for(case, tmp_path, monkeypatch):
    """The checks on a tiny fake tree: a core module importing a method, and a cycle."""
    fake = tmp_path
    (fake / "g2s_caffe" / "core").mkdir(parents=True)
    (fake / "g2s_caffe" / "methods" / "m").mkdir(parents=True)
    (fake / "data_prep").mkdir()
    for d in ("g2s_caffe", "g2s_caffe/core", "g2s_caffe/methods", "g2s_caffe/methods/m", "data_prep"):
        (fake / d / "__init__.py").write_text("")
    if case == "core_to_method":
        (fake / "g2s_caffe/core/a.py").write_text("def f():\n    from g2s_caffe.methods.m import b\n")
        (fake / "g2s_caffe/methods/m/b.py").write_text("")
        check = test_imports_point_down_only
        expect = "g2s_caffe/core/a.py:2: from g2s_caffe.methods.m import b"
    else:
        (fake / "g2s_caffe/core/a.py").write_text("from g2s_caffe.core import b\n")
        (fake / "g2s_caffe/core/b.py").write_text("def f():\n    from g2s_caffe.core import a\n")
        check = test_no_import_cycles
        expect = "g2s_caffe.core.a <-> g2s_caffe.core.b"
    monkeypatch.setitem(globals(), "ROOT", fake)
    with pytest.raises(AssertionError) as e:
        check()
    assert expect in str(e.value)
