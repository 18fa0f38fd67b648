"""Print bandlens's internal import graph: each module's imports, and the longest import chain.

``python scripts/import_graph.py [--edges]``: the depth is the number of modules on the
longest chain of project-internal imports (a module importing nothing internal has depth 1).
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("experiments", "probes")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def internal_imports(path: Path, modules: set[str]) -> set[str]:
    """Project modules imported by ``path`` (``from pkg import mod`` counts as importing pkg.mod)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        out |= {n for n in names if n in modules}
    return out - {module_name(path)}


def graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p) for p in files}
    return {module_name(p): internal_imports(p, modules) for p in files}


def depths(g: dict[str, set[str]]) -> dict[str, int]:
    @functools.cache
    def depth(m: str) -> int:
        return 1 + max((depth(d) for d in g[m]), default=0)

    return {m: depth(m) for m in g}


def main() -> None:
    g = graph()
    d = depths(g)
    if "--edges" in sys.argv:
        for m in sorted(g):
            print(f"{m} ({d[m]}): {', '.join(sorted(g[m]))}")
    deepest = max(d, key=d.get)
    chain = [deepest]
    while g[chain[-1]]:
        chain.append(max(g[chain[-1]], key=d.get))
    print(f"{len(g)} modules; import depth {d[deepest]}: {' -> '.join(chain)}")


if __name__ == "__main__":
    main()
