"""Matched-gain selection: compare band runs at the same accuracy gain, not the same step.

For each run, the gain curve is eval accuracy minus its step-0 (base) value at the steps
where it was measured. A run is matched at the first measured step whose gain reaches the
target minus a tolerance, and it hits the target when that gain is also within the
tolerance above it; a run that never gets there is reported as not reached (hard-band runs
may even regress).

Checkpoints are stored every few steps only, and one update can move accuracy by several
tolerances, so ``bisect`` measures in between: whole steps first (a caller may regenerate
them by replay), then fractions of the one update that jumps over the target. A fractional
step t + a is the blend theta_t + a (theta_{t+1} - theta_t); with AdamW, no weight decay and
one inner update per step that blend *is* update t taken at learning rate a * lr (Adam's
moments do not depend on the learning rate), a real point of a real trajectory. So every run
that reaches the target can hit it, and no band loses its slow or fast seeds to overshoot.

The target (``common_target``) is the largest gain that all but one seed of every matchable
band reach (at least ``min_runs`` seeds): one weak seed cannot silence a band, and each band's
misses are reported. A band is matchable when that many of its runs gain at least a noise floor.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping, Sequence

DEFAULT_KEY = "eval/acc/all/sampled"
"""Free-choice accuracy at T = 1 on the shared eval set: what the RL objective moves."""

MAX_HALVINGS = 8
"""Fractions of one update tried at most (resolution 1/256 of an update)."""


@dataclasses.dataclass(frozen=True)
class GainCurve:
    steps: tuple[float, ...]
    """Updates done; a fractional step is a blend inside one update (sub-step matching)."""
    gains: tuple[float, ...]
    """Accuracy minus the step-0 accuracy, one per step."""


@dataclasses.dataclass(frozen=True)
class MatchedPoint:
    reached: bool
    step: float | None
    """First measured step whose gain >= target - tol (None if never)."""
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


def reaches(gain: float, target: float, tol: float = 0.0) -> bool:
    """A gain reaches the target when it is at least target - tol (a run's matched point is its first such step)."""
    return gain >= target - tol


def first_reaching(curve: GainCurve, target: float, tol: float = 0.0) -> MatchedPoint:
    """First step after 0 whose gain reaches target - tol."""
    later = sorted(zip(curve.steps, curve.gains))[1:]
    max_gain = max((g for _, g in later), default=0.0)
    for step, gain in later:
        if reaches(gain, target, tol):
            return MatchedPoint(True, step, gain, max_gain, abs(gain - target) <= tol)
    return MatchedPoint(False, None, None, max_gain)


def with_points(curve: GainCurve, extra: Mapping[float, float]) -> GainCurve:
    """The curve with more measured steps (a step measured twice keeps the curve's value)."""
    points = {**extra, **dict(zip(curve.steps, curve.gains))}
    steps = sorted(points)
    return GainCurve(tuple(steps), tuple(points[s] for s in steps))


def bisect(
    curve: GainCurve, target: float, tol: float, measure: Callable[[float], float], max_halvings: int = MAX_HALVINGS
) -> GainCurve:
    """Measure steps inside the first crossing bracket until the crossing lands within the tolerance.

    The bracket is (p, c]: c the first measured step with gain >= target - tol, p the measured
    step before it. While c's gain overshoots target + tol, the midpoint is measured and replaces
    c (if it reaches target - tol) or p: whole steps while more than one update lies between
    them, then fractions of the last update down to 2**-max_halvings of it (0: whole steps only).
    Returns the curve with every measured step, so ``first_reaching`` on it gives the matched point."""
    point = first_reaching(curve, target, tol)
    if not point.reached or point.within_tol:
        return curve
    known = dict(zip(curve.steps, curve.gains))
    c = point.step
    p = max(s for s in known if s < c)
    while known[c] > target + tol:
        if c - p > 1:
            mid = (p + c) // 2
        elif c - p > 2.0**-max_halvings:  # the bracket's width, not a count: a rerun measures nothing new
            mid = (p + c) / 2
        else:
            break
        if mid not in known:
            known[mid] = measure(mid)
        p, c = (p, mid) if reaches(known[mid], target, tol) else (mid, c)
    return with_points(curve, known)


def quorum(n_runs: int, min_runs: int) -> int:
    """Runs of a band that must reach the target: all but one, and at least ``min_runs`` (never more than there are)."""
    return min(n_runs, max(min_runs, n_runs - 1))


@dataclasses.dataclass(frozen=True)
class CommonTarget:
    gain: float
    """The target: the smallest reach among matchable groups (without one, the largest reach of any group)."""
    reach: dict[str, float]
    """Per group (band): the largest gain its quorum of runs reaches."""
    matchable: tuple[str, ...]
    """Groups whose reach is at least the floor."""


def common_target(
    curves: Mapping[str, GainCurve], group_of: Mapping[str, str], floor: float, min_runs: int
) -> CommonTarget:
    """The largest gain that ``quorum`` runs of every matchable group reach at a measured step after 0.

    A group (a band) is matchable when its quorum reaches ``floor``: a band that never improves
    (out-of-distribution problems may only regress) is then reported as not reaching the target
    instead of leaving none for the others, and one weak seed does not make its band unmatchable."""
    best: dict[str, list[float]] = {}
    for name, c in curves.items():
        best.setdefault(group_of[name], []).append(max(c.gains[1:], default=0.0))
    reach = {g: sorted(v, reverse=True)[quorum(len(v), min_runs) - 1] for g, v in best.items()}
    matchable = tuple(g for g, r in reach.items() if r >= floor)
    gain = min(reach[g] for g in matchable) if matchable else max(reach.values(), default=0.0)
    return CommonTarget(gain, reach, matchable)


@dataclasses.dataclass(frozen=True)
class Matching:
    target: float
    """The gain every run was matched at."""
    points: dict[str, MatchedPoint]


def matched_points(results: Mapping) -> dict[str, MatchedPoint]:
    """Each band run's matched point as a band study's results.json records it (only runs whose
    matched gain hit the target within the tolerance count as reached)."""
    out = {}
    for band, rec in results["bands"].items():
        for seed, step, gain, hit in zip(
            results["seeds"], rec["matched_step"], rec["matched_gain"], rec["matched_hit"]
        ):
            out[f"bands/{band}/seed{seed}"] = MatchedPoint(bool(hit), step, gain, math.nan, bool(hit))
    return out
