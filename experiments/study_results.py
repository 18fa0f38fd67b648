"""The band study's numbers: matched gain, feature change with CIs, noise floor, verdict.

Everything here is computed from the run directory's artifacts (metrics.jsonl, the diff
readings, features.json); the verdict sentence is assembled from those numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from probes.bands import BANDS
from probes.diff import group_activity, relative_change
from probes.matched_gain import Matching, gain_curve, match
from probes.stats import Estimate, bootstrap_mean, noise_floor

BEHAVIOURS = ("deliberate_rate", "direct_rate", "format_error_rate", "skipped_step_rate", "wrong_step_rate", "copied_answer_rate", "mean_length")
GROUPS = ("shortcut", "computation", "deliberation")


def run_name(band: str, seed: int) -> str:
    return f"bands/{band}/seed{seed}"


def matching(metrics: Mapping[str, list[dict]], ckpt_steps: Mapping[str, set[int]], key: str, target: float | None, tol: float) -> Matching:
    curves = {name: gain_curve(rows, key, steps=ckpt_steps[name]) for name, rows in metrics.items()}
    return match(curves, target, tol)


def final_gain(rows: Sequence[dict], key: str) -> float:
    evaluated = [r for r in rows if key in r]
    return evaluated[-1][key] - evaluated[0][key]


def behaviour(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Eval-set behaviour rates at the first and the last evaluation."""
    evaluated = [r for r in rows if "eval/behaviour/deliberate_rate" in r]
    return {b: {"start": evaluated[0][f"eval/behaviour/{b}"], "end": evaluated[-1][f"eval/behaviour/{b}"]} for b in BEHAVIOURS}


def group_changes(readings: Mapping[str, dict], sae: str, groups: Mapping[str, Sequence[int]], ckpt: str, view: str = "sampled") -> dict[str, float]:
    """Relative change of each group's activity at ``ckpt`` vs the base model."""
    base = group_activity(readings["base"][sae]["means"][view], groups)
    return relative_change(group_activity(readings[ckpt][sae]["means"][view], groups), base)


def matched_changes(readings, sae: str, groups, m: Matching, seeds: Sequence[int]) -> dict[str, dict[str, list[float]]]:
    """Per band and group: the change at each seed's matched checkpoint (seeds that reached it)."""
    out: dict[str, dict[str, list[float]]] = {b: {g: [] for g in groups} for b in BANDS}
    for band in BANDS:
        for seed in seeds:
            point = m.points[run_name(band, seed)]
            if point.reached:
                changes = group_changes(readings, sae, groups, f"{run_name(band, seed)}/ckpt-{point.step}")
                for g in groups:
                    out[band][g].append(changes[g])
    return out


def estimates(values: Mapping[str, Mapping[str, list[float]]]) -> dict[str, dict[str, Estimate]]:
    return {band: {g: bootstrap_mean(v) for g, v in per_group.items()} for band, per_group in values.items()}


def floors(values: Mapping[str, Mapping[str, list[float]]], groups: Sequence[str]) -> dict[str, float]:
    """Per group: mean |difference| between seeds of the same band (pooled over bands)."""
    return {g: noise_floor([values[b][g] for b in values]) for g in groups}


def differs(a: Estimate, b: Estimate, floor: float) -> bool:
    """Two bands differ when the gap exceeds the noise floor and the CIs do not overlap."""
    if a.n == 0 or b.n == 0 or not np.isfinite(floor):
        return False
    gap = abs(a.mean - b.mean)
    return gap > floor and (a.ci95[1] < b.ci95[0] or b.ci95[1] < a.ci95[0])


def verdict(
    est: Mapping[str, Mapping[str, Estimate]],
    floor: Mapping[str, float],
    m: Matching,
    n_reached: Mapping[str, int],
    n_seeds: int,
    causal: Mapping[str, bool | None],
) -> str:
    """One sentence stating what the numbers show (computed, never hand-written).

    A group whose label failed (or lacked) its causal check is named with that caveat."""
    reached = ", ".join(f"{b} {n_reached[b]}/{n_seeds}" for b in BANDS)
    head = f"At a matched accuracy gain of {m.target:+.3f} (seeds reaching it: {reached})"
    if m.target <= 0:
        return f"{head}, some band never improved, so there is no positive gain to match at."
    found = []
    for g in GROUPS:
        for a, b in (("easy", "medium"), ("medium", "hard"), ("easy", "hard")):
            if g in est[a] and differs(est[a][g], est[b][g], floor[g]):
                caveat = "" if causal.get(g) else ", but that label failed its causal check"
                found.append(
                    f"{g} features changed {est[a][g].mean:+.2f} for {a} vs {est[b][g].mean:+.2f} for {b} "
                    f"(noise floor {floor[g]:.2f}{caveat})"
                )
    if not found:
        return f"{head}, no band differs from another in any labelled feature group beyond the seed noise floor."
    return f"{head}, " + "; ".join(found) + "."
