"""Reading a run directory's line-oriented logs (metrics.jsonl, ledger.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSON-lines file; a line cut short by a kill is skipped."""
    path = Path(path)
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
