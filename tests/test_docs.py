"""The README stays a short newcomer's page, and every relative link in the docs leads to a file."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def relative_links(page: Path) -> list[str]:
    """Link targets outside fenced code, without web links, in-page anchors or #fragments."""
    text = FENCE.sub("", page.read_text())
    targets = (t.split("#")[0] for t in LINK.findall(text))
    return [t for t in targets if t and not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def target_of(page: Path, link: str) -> Path:
    """A link starting with / is read from the repository root (as GitHub does), any other from the page's folder."""
    return (ROOT / link.lstrip("/")) if link.startswith("/") else (page.parent / link)


def test_readme__is_at_most_150_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs__every_relative_link_points_to_a_file_in_the_repository(page):
    for link in relative_links(page):
        target = target_of(page, link).resolve()
        assert target.is_relative_to(ROOT), f"{link} leaves the repository"
        assert target.exists(), f"{link} does not exist"


def test_readme__links_every_docs_page_and_notebook():
    linked = {target_of(ROOT / "README.md", link).resolve() for link in relative_links(ROOT / "README.md")}
    pages = {*PAGES[1:], *(ROOT / "notebooks").glob("*.ipynb")}
    assert not pages - linked, sorted(p.relative_to(ROOT).as_posix() for p in pages - linked)
