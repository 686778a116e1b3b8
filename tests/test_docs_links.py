"""Every relative link in the README, docs/ and results/ pages points to a file that exists, and its #anchor to a
heading of that file, so moving a section between pages cannot leave a reader at a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "results").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped except '-' and '_', spaces to '-'."""
    headings = re.findall(r"^#+\s+(.*)$", FENCE.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z]+:", target)]


def test_pages_are_found() -> None:
    assert ROOT / "docs" / "reliability.md" in PAGES and ROOT / "README.md" in PAGES


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_broken_files_and_anchors_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n## Some section: here\n\n```\n## not a heading\n[x](gone.md)\n```\n")
    (tmp_path / "b.md").write_text("# B\n[ok](a.md#some-section-here) [self](#b) [web](https://example.org/x.md)\n"
                                   "[file](gone.md) [anchor](a.md#not-a-heading)\n")
    assert anchors(tmp_path / "a.md") == {"title", "some-section-here"}
    assert broken_links(tmp_path / "a.md") == []
    assert [entry.split(":")[0] for entry in broken_links(tmp_path / "b.md")] == ["gone.md", "a.md#not-a-heading"]
