"""The documentation: a one-page README.md and one page per topic under docs/.

Every relative link in README.md and docs/*.md points at a file of the repository (and, with
an anchor into a Markdown file, at one of its headings, as GitHub names them); the README
stays one page and names the two commands.  No Caffe: plain text only.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import ROOT
README = ROOT / "README.md"
PAGES = [README] + sorted((ROOT / "docs").glob("*.md"))
README_MAX_LINES = 200

LINK = re.compile(r"\]\(([^()\s]+)\)")          # [text](target): inline links


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text()):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        s = slug(m.group(1))
        k = seen.get(s, 0)
        seen[s] = k + 1
        out.add(s if k == 0 else f"{s}-{k}")
    return out


def broken_links(page: Path) -> list[str]:
    bad = []
    for n, line in prose_lines(page.read_text()):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):         # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            where = f"{page.relative_to(ROOT)}:{n}: ({target})"
            if not dest.exists():
                bad.append(f"{where} {file} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{where} no heading #{anchor} in {dest.relative_to(ROOT)}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_link_check_fails_on_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading: here\n")
    page.write_text("[ok](there.md) [ok](there.md#a-heading-here) [web](https://example.org/x)\n"
                    "```\n[in code](nowhere.md)\n```\n"
                    "[gone](missing.md) [bad anchor](there.md#elsewhere)\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        bad = broken_links(page)
    finally:
        ROOT = saved
    assert len(bad) == 2
    assert "page.md:5: (missing.md) missing.md does not exist" in bad[0]
    assert "no heading #elsewhere in there.md" in bad[1]


def test_readme_is_one_page_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make demo" in text and "make test" in text


def test_readme_links_every_docs_page():
    text = README.read_text()
    missing = [p.name for p in PAGES[1:] if f"](docs/{p.name})" not in text]
    assert missing == []
