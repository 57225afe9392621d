"""The documentation's shape: the README stays a front page, and no relative link points nowhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
#: The README is the front page; reference, evidence and history live in docs/, bench/ and CHANGELOG.md.
README_MAX_BYTES = 12 * 1024
PAGES = sorted([README, REPO / "CHANGELOG.md", REPO / "bench" / "README.md", *(REPO / "docs").glob("*.md")])

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(page: Path) -> list[str]:
    """The targets of the page's Markdown links and images that name a file in this repository."""
    return links_in(page.read_text(encoding="utf-8"))


def links_in(markdown: str) -> list[str]:
    """Relative link and image targets outside code blocks and code spans (no URL scheme, no bare #anchor)."""
    text = CODE_SPAN.sub("", FENCE.sub("", markdown))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) and not target.startswith("#")
    ]


def test_the_readme_is_a_front_page() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move reference material into docs/"


def test_the_link_finder_sees_links_and_skips_code() -> None:
    page = "[a](docs/a.md) ![b](b.png#x) [c](https://example.org) [d](#top) `[e](e.md)`\n"
    page += "```\n[f](f.md)\n```\n"
    assert links_in(page) == ["docs/a.md", "b.png#x"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file(page: Path) -> None:
    missing = [
        target
        for target in relative_links(page)
        if not (page.parent / target.split("#", 1)[0]).resolve().exists()
    ]
    assert missing == [], f"{page.relative_to(REPO)} links to files that do not exist"


def test_the_readme_links_every_docs_page() -> None:
    linked = {(README.parent / t.split("#", 1)[0]).resolve() for t in relative_links(README)}
    unlinked = [p.name for p in sorted((REPO / "docs").glob("*.md")) if p.resolve() not in linked]
    assert unlinked == []
