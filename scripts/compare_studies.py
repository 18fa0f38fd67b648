"""Two or more finished band studies side by side, as markdown, from their run directories only.

``python scripts/compare_studies.py runs/default runs/shortcut_k3 [--names "today" "k = 2-3"]`` prints
the base models' direct-answer competence and mode choice at small k, each study's verdict, its
matched target and hits, final gains, gain attribution and feature-group checks. Every number is read
from ``base/eval.json`` and ``results.json``; nothing is computed here but formatting.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from experiments.harness.reading.feature_groups import ATTRIBUTED
from probes.bands import BANDS
from probes.layout import RunLayout, read_json

SMALL_KNOBS = 4
"""Base-model rows cover each run's smallest knob values (k = 1..4 for arithmetic, grid sides 3, 5, 7 for mazes)."""


def _ci(e: dict | None, fmt: str = "+.3f") -> str:
    if not e or e["mean"] is None or not math.isfinite(e["mean"]) or not e.get("n", 1):
        return "—"
    return f"{e['mean']:{fmt}} [{e['ci95'][0]:{fmt}}, {e['ci95'][1]:{fmt}}]"


def row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def table(names: list[str], runs: list[Path]) -> list[str]:
    res = [read_json(RunLayout(r).results) for r in runs]
    base = [read_json(RunLayout(r).base_eval)["accuracy"] for r in runs]
    knobs = [sorted(b, key=int)[:SMALL_KNOBS] for b in base]
    tasks = [read_json(RunLayout(r).config).get("task", {"task": "arith"})["task"] for r in runs]
    lines = [row("", names), "|---|" + "---|" * len(names), row("task", tasks)]
    for i in range(max(map(len, knobs))):
        cells = [
            f"k = {ks[i]}: {b[ks[i]]['direct']['greedy']:.2f}" if i < len(ks) else "—" for b, ks in zip(base, knobs)
        ]
        lines.append(row(f"base direct accuracy, greedy, knob {i + 1}", cells))
    for i in range(max(map(len, knobs))):
        cells = [
            f"k = {ks[i]}: {b[ks[i]]['free']['deliberate_rate_sampled']:.2f}" if i < len(ks) else "—"
            for b, ks in zip(base, knobs)
        ]
        lines.append(row(f"base chooses `<think>` (sampled), knob {i + 1}", cells))
    lines.append(row("verdict class", [r["verdict_class"] for r in res]))
    lines.append(
        row("matched target ± tolerance", [f"{r['matched_gain_target']:+.3f} ± {r['matched_tol']:.3f}" for r in res])
    )
    for band in BANDS:
        lines.append(
            row(
                f"{band}: seeds hitting the target",
                [f"{sum(r['bands'][band]['matched_hit'])}/{len(r['seeds'])}" for r in res],
            )
        )
    for band in BANDS:
        lines.append(row(f"{band}: final gain", [_ci(r["bands"][band]["gain"]) for r in res]))
    for band in BANDS:
        for g in ATTRIBUTED:
            shares = [r["bands"][band].get("gain_share", {}).get(g) for r in res]
            if any(s and s["carried"]["n"] for s in shares):
                cells = [
                    f"{_ci(s['carried'], '+.2f')} vs random {_ci(s['random'], '+.2f')}"
                    if s and s["carried"]["n"]
                    else "—"
                    for s in shares
                ]
                lines.append(row(f"{band}: share of gain carried by {g}", cells))
    for g in ATTRIBUTED:
        labels = [r["labels_by_sae"][r["headline_sae"]][g] for r in res]
        lines.append(
            row(
                f"{g} group ({res[0]['headline_sae'].split('-')[0]})",
                [
                    f"{x['n']} latents, {x['metric']} {x['effect']:+.3f}, {'passes' if x['passed'] else 'fails'}"
                    for x in labels
                ],
            )
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished band-study run directories")
    ap.add_argument("--names", nargs="+", help="column names (default: the directory names)")
    args = ap.parse_args()
    names = args.names or [r.name for r in args.runs]
    if len(names) != len(args.runs):
        ap.error("--names: give one name per run")
    missing = [r for r in args.runs if not RunLayout(r).results.exists()]
    if missing:
        ap.error(f"{missing[0]}: no results.json; run experiments.band_study there first")
    res = [read_json(RunLayout(r).results) for r in args.runs]
    print("\n".join(table(names, args.runs)))
    print()
    for name, r in zip(names, res):
        print(f"- **{name}** ({r['verdict_class']}): {r['verdict']}")


if __name__ == "__main__":
    main()
