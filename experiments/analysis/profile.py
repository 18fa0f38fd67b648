"""Where a study's wall time went: its profile.jsonl (one line per finished stage per invocation) as a table."""

from __future__ import annotations

from pathlib import Path

from probes.layout import read_jsonl


def profile_lines(path: Path) -> list[str]:
    """Per stage: seconds summed over every invocation and their share; then the invocations' total. A resumed
    study adds the time of what it redid or finished; a stage killed before it finished is not counted."""
    rows = read_jsonl(path) if path.is_file() else []
    if not rows:
        return []
    stages: dict[str, float] = {}
    for r in rows:
        stages[r["stage"]] = stages.get(r["stage"], 0.0) + r["seconds"]
    total, invocations = sum(stages.values()), len({r["invocation"] for r in rows})
    lines = ["| stage | seconds | share |", "|---|---|---|"]
    lines += [f"| {stage} | {s:.0f} | {s / total:.0%} |" for stage, s in stages.items()]
    return [f"Wall time: {total:.0f} s over {invocations} invocation{'s' if invocations > 1 else ''} "
            f"(finished stages only; {path.name} has one line per stage and invocation).", "", *lines, ""]  # fmt: skip
