"""Matched-gain selection: compare band runs at the same accuracy gain, not the same step.

For each run, the gain curve is eval accuracy minus its step-0 (base) value at the
steps that have a checkpoint. A run is matched at the first checkpoint whose gain
reaches the target (within a tolerance); a run that never gets there is reported as
not reached — hard-band runs may even regress.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence

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
    later = list(zip(curve.steps, curve.gains))[1:]
    max_gain = max((g for _, g in later), default=0.0)
    for step, gain in later:
        if gain >= target - tol:
            return MatchedPoint(True, step, gain, max_gain)
    return MatchedPoint(False, None, None, max_gain)


def largest_common_gain(curves: Mapping[str, GainCurve]) -> float:
    """The largest gain every run reaches at some step after 0 (the default target)."""
    return min(max(c.gains[1:], default=0.0) for c in curves.values())


@dataclasses.dataclass(frozen=True)
class Matching:
    target: float
    """The gain every run was matched at (<= 0 means some run never improved)."""
    points: dict[str, MatchedPoint]


def match(curves: Mapping[str, GainCurve], target: float | None = None, tol: float = 0.0) -> Matching:
    """Each run's matched point at ``target`` (default: the largest gain every run reaches)."""
    goal = largest_common_gain(curves) if target is None else target
    return Matching(goal, {name: first_reaching(c, goal, tol) for name, c in curves.items()})
