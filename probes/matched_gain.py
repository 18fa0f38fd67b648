"""Matched-gain selection: compare band runs at the same accuracy gain, not the same step.

For each run, the gain curve is eval accuracy minus its step-0 (base) value at the steps
where it was measured. A run is matched at the first measured step whose gain reaches the
target minus a tolerance, and it hits the target when that gain is also within the
tolerance above it; a run that never gets there is reported as not reached (hard-band runs
may even regress). Checkpoints are stored every few steps only, so ``bisect`` measures
the steps in between (a caller's ``measure`` may regenerate them by replay) until the first
crossing is pinned to one step or lands within the tolerance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping, Sequence

DEFAULT_KEY = "eval/acc/all/sampled"
"""Free-choice accuracy at T = 1 on the shared eval set: what the RL objective moves."""


@dataclasses.dataclass(frozen=True)
class GainCurve:
    steps: tuple[int, ...]
    gains: tuple[float, ...]
    """Accuracy minus the step-0 accuracy, one per step."""


@dataclasses.dataclass(frozen=True)
class MatchedPoint:
    reached: bool
    step: int | None
    """First checkpoint step whose gain >= target - tol (None if never)."""
    gain: float | None
    max_gain: float
    within_tol: bool = False
    """The matched gain lies within the tolerance of the target (on both sides)."""


def gain_curve(metrics: Sequence[Mapping], key: str = DEFAULT_KEY, steps: Collection[int] | None = None) -> GainCurve:
    """Gain over the step-0 row at every row that has ``key`` (optionally only ``steps``)."""
    rows = [r for r in metrics if key in r]
    if not rows or rows[0]["step"] != 0:
        raise ValueError(f"{key}: metrics need an evaluated step-0 row to define gain")
    base = rows[0][key]
    kept = [r for r in rows if steps is None or r["step"] == 0 or r["step"] in steps]
    return GainCurve(tuple(r["step"] for r in kept), tuple(r[key] - base for r in kept))


def first_reaching(curve: GainCurve, target: float, tol: float = 0.0) -> MatchedPoint:
    """First step after 0 whose gain reaches target - tol."""
    later = sorted(zip(curve.steps, curve.gains))[1:]
    max_gain = max((g for _, g in later), default=0.0)
    for step, gain in later:
        if gain >= target - tol:
            return MatchedPoint(True, step, gain, max_gain, abs(gain - target) <= tol)
    return MatchedPoint(False, None, None, max_gain)


def with_points(curve: GainCurve, extra: Mapping[int, float]) -> GainCurve:
    """The curve with more measured steps (a step measured twice keeps the curve's value)."""
    points = {**extra, **dict(zip(curve.steps, curve.gains))}
    steps = sorted(points)
    return GainCurve(tuple(steps), tuple(points[s] for s in steps))


def bisect(curve: GainCurve, target: float, tol: float, measure: Callable[[int], float]) -> GainCurve:
    """Measure steps inside the first crossing bracket until the crossing is pinned down.

    The bracket is (p, c]: c the first measured step with gain >= target - tol, p the measured
    step before it. While c - p > 1 and c's gain overshoots target + tol, the midpoint is measured
    and replaces c (if it reaches target - tol) or p. Returns the curve with every measured step,
    so ``first_reaching`` on it gives the matched point."""
    point = first_reaching(curve, target, tol)
    if not point.reached or point.within_tol:
        return curve
    known = dict(zip(curve.steps, curve.gains))
    c = point.step
    p = max(s for s in known if s < c)
    while c - p > 1 and known[c] > target + tol:
        mid = (p + c) // 2
        if mid not in known:
            known[mid] = measure(mid)
        p, c = (p, mid) if known[mid] >= target - tol else (mid, c)
    return with_points(curve, known)


def largest_common_gain(curves: Mapping[str, GainCurve]) -> float:
    """The largest gain every run reaches at some step after 0 (the default target)."""
    return min(max(c.gains[1:], default=0.0) for c in curves.values())


def matchable_common_gain(curves: Mapping[str, GainCurve], group_of: Mapping[str, str], floor: float) -> float:
    """The largest gain every run of every matchable group reaches; a group (a band) is matchable
    when each of its runs reaches ``floor``. A band that never improves (out-of-distribution
    problems may only regress) is then reported as not reaching the target instead of leaving
    no target for the others. Without a matchable group: the largest gain every run reaches."""
    best = {name: max(c.gains[1:], default=0.0) for name, c in curves.items()}
    worst_by_group: dict[str, float] = {}
    for name, gain in best.items():
        worst_by_group[group_of[name]] = min(gain, worst_by_group.get(group_of[name], math.inf))
    matchable = [g for g in worst_by_group.values() if g >= floor]
    return min(matchable) if matchable else min(best.values(), default=0.0)


@dataclasses.dataclass(frozen=True)
class Matching:
    target: float
    """The gain every run was matched at (<= 0 means some run never improved)."""
    points: dict[str, MatchedPoint]


def match(curves: Mapping[str, GainCurve], target: float | None = None, tol: float = 0.0) -> Matching:
    """Each run's matched point at ``target`` (default: the largest gain every run reaches)."""
    goal = largest_common_gain(curves) if target is None else target
    return Matching(goal, {name: first_reaching(c, goal, tol) for name, c in curves.items()})


def matched_points(results: Mapping) -> dict[str, MatchedPoint]:
    """Each band run's matched point as a band study's results.json records it (only runs whose
    matched gain hit the target within the tolerance count as reached)."""
    out = {}
    for band, rec in results["bands"].items():
        for seed, step, gain, hit in zip(results["seeds"], rec["matched_step"], rec["matched_gain"], rec["matched_hit"]):
            out[f"bands/{band}/seed{seed}"] = MatchedPoint(bool(hit), step, gain, math.nan, bool(hit))
    return out
