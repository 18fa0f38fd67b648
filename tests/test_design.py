"""docs/DESIGN.md's Package layout names every module of experiments/ and probes/, and nothing that is gone."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("experiments", "probes")
MODULE = re.compile(r"`([\w/]+\.py)`")


def layout_parts() -> dict[str, str]:
    """The Package layout section, split where `probes/` is introduced: experiments' part, then probes'."""
    text = (ROOT / "docs/DESIGN.md").read_text()
    start = text.index("### Package layout\n")
    end = re.compile(r"^## ", re.M).search(text, start).start()
    section = text[start:end]
    split = re.compile(r"^`probes/` ", re.M).search(section)
    assert split, "the Package layout section introduces `probes/` in a paragraph of its own"
    return {"experiments": section[: split.start()], "probes": section[split.start() :]}


def modules(package: str) -> set[str]:
    """Every module file of a top package (recursively, without __init__.py), relative to the package."""
    top = ROOT / package
    return {p.relative_to(top).as_posix() for p in top.rglob("*.py") if p.name != "__init__.py"}


def test_design__names_every_module_in_its_packages_part():
    parts = layout_parts()
    missing = {pkg: sorted(modules(pkg) - set(MODULE.findall(parts[pkg]))) for pkg in PACKAGES}
    assert missing == {pkg: [] for pkg in PACKAGES}, (
        f"modules without a line in docs/DESIGN.md Package layout: {missing}"
    )


def test_design__names_no_module_that_does_not_exist():
    parts = layout_parts()
    stale = {pkg: sorted(set(MODULE.findall(parts[pkg])) - modules(pkg)) for pkg in PACKAGES}
    assert stale == {pkg: [] for pkg in PACKAGES}, f"docs/DESIGN.md Package layout names modules that are gone: {stale}"
