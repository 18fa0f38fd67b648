"""Where a study's wall time went: its profile.jsonl (one line per finished stage per invocation) as a table."""

from __future__ import annotations

from pathlib import Path

from probes.layout import read_jsonl


def profile_lines(path: Path) -> list[str]:
    """Per stage: seconds summed over every invocation, their share, the tokens its model passes processed (sampled,
    trained; ``experiments.harness.tally``) and their rate; then the invocations' total. A resumed study adds the
    time of what it redid or finished; a stage killed before it finished is not counted."""
    rows = read_jsonl(path) if path.is_file() else []
    if not rows:
        return []
    stages: dict[str, list[float]] = {}
    for r in rows:
        tokens = r.get("tokens", {})  # older profiles have none
        acc = stages.setdefault(r["stage"], [0.0, 0, 0])
        acc[0] += r["seconds"]
        acc[1] += tokens.get("sampled", 0)
        acc[2] += tokens.get("trained", 0)
    total, invocations = sum(s for s, _, _ in stages.values()), len({r["invocation"] for r in rows})
    lines = ["| stage | seconds | share | tokens sampled | tokens trained | tokens/s |", "|---|---|---|---|---|---|"]
    for stage, (s, sampled, trained) in stages.items():
        rate = (sampled + trained) / max(s, 1e-9)
        lines.append(f"| {stage} | {s:.0f} | {s / total:.0%} | {sampled:,} | {trained:,} | {rate:,.0f} |")
    return [
        f"Wall time: {total:.0f} s over {invocations} invocation{'s' if invocations > 1 else ''} "
        f"(finished stages only; {path.name} has one line per stage and invocation; tokens: those of this process "
        "and its pool workers, not of Ray tasks).",
        "",
        *lines,
        "",
    ]
