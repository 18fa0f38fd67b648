"""Band contrasts and the verdict: which differences between bands the numbers support.

Per feature group and pair of bands, the seed-level values at the matched checkpoints (the
specific share of the gain a group carries, in the verdict's family) are compared by an exact
permutation test over seed labels (``probes.stats.permutation_test``). The family is tested by
serial gatekeeping, registered before any matched result of this design:

1. The contrasts of ``SEQUENCE`` in order, each at level ALPHA. A contrast that cannot be tested
   (a band with fewer than MIN_SEEDS seeds hitting the target, an empty group, or a group that
   failed its causal check) is skipped and passes the gate to the next one. The first contrast
   that is tested and not rejected closes the gate: nothing after it is tested.
2. Only when every tested contrast of the sequence was rejected are the remaining contrasts
   tested, with Holm's correction at ALPHA.

This keeps the chance of reporting any difference when there is none at most ALPHA, skips
included (tests/analysis/test_contrasts.py simulates the whole verdict under global and partial
nulls). The verdict's class comes from the first tested contrast of the sequence.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping

import numpy as np

from experiments.harness.reading.feature_groups import CONTRASTED
from probes.stats import Contrast, holm, permutation_test

PAIRS = (("easy", "medium"), ("medium", "hard"), ("easy", "hard"))

SEQUENCE: tuple[tuple[str, str, str], ...] = (
    ("deliberation", "easy", "hard"),
    ("shortcut", "easy", "medium"),
    ("deliberation", "easy", "medium"),
)
"""The pre-registered contrasts, tested in this order (fixed December 2026, before any matched result of this
design). First the literature's sharpest claim: easy problems suppress deliberation features, hard ones activate
them. Then, for settings where hard runs cannot be matched, easy against medium: easy problems reinforce the
shortcut (direct answers), and medium problems strengthen deliberation where easy ones suppress it."""
SEQUENCE_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(g for g, _, _ in SEQUENCE))
"""The groups the registered sequence contrasts (what the band study's hook rule asks to pass)."""
ALPHA = 0.05
MIN_SEEDS = 3
"""Seeds hitting the matched target a band needs before it enters a contrast."""


@dataclasses.dataclass(frozen=True)
class ContrastResult:
    group: str
    a: str
    b: str
    diff: float
    """Mean value in band a minus mean value in band b (nan when untestable)."""
    p: float
    """Exact permutation p-value over seed labels (nan when not tested)."""
    p_adjusted: float
    """The p-value the decision uses: raw in the sequence, Holm-adjusted after it (nan when not tested)."""
    n_a: int
    n_b: int
    significant: bool
    order: int | None
    """Position in the registered sequence (None: the Holm family after it)."""
    status: str
    """rejected, not rejected, untestable (why), or not tested (why)."""

    @property
    def name(self) -> str:
        return f"{self.group}: {self.a} vs {self.b}"

    @property
    def tested(self) -> bool:
        return self.status in ("rejected", "not rejected")


def _blocker(values: Mapping[str, Mapping[str, list[float]]], group_issue: Mapping[str, str | None], key) -> str | None:
    """Why a contrast cannot be tested, or None."""
    g, a, b = key
    if group_issue.get(g):
        return f"the {g} group {group_issue[g]}"
    n = {band: int(np.isfinite(values[band][g]).sum()) for band in (a, b)}
    short = [f"{band} {n[band]}" for band in (a, b) if n[band] < MIN_SEEDS]
    return f"fewer than {MIN_SEEDS} seeds hit the target ({', '.join(short)})" if short else None


def _result(
    key, c: Contrast | None, p_adj: float, significant: bool, order: int | None, status: str, counts
) -> ContrastResult:
    g, a, b = key
    if c is None:
        return ContrastResult(g, a, b, math.nan, math.nan, math.nan, *counts, False, order, status)
    return ContrastResult(g, a, b, c.diff, c.p, p_adj, c.n_a, c.n_b, significant, order, status)


def contrasts(
    values: Mapping[str, Mapping[str, list[float]]], group_issue: Mapping[str, str | None]
) -> list[ContrastResult]:
    """Every group x band-pair contrast, the sequence first, decided by serial gatekeeping (module doc).

    ``values[band][group]`` are seed-level values at matched checkpoints (hitting seeds only);
    ``group_issue[group]`` says why a group cannot be contrasted ("is empty", "failed its causal check"), else None."""
    every = ((g, a, b) for g, (a, b) in itertools.product(CONTRASTED, PAIRS))
    keys = list(SEQUENCE) + [k for k in every if k not in SEQUENCE]
    counts = {k: tuple(int(np.isfinite(values[band][k[0]]).sum()) for band in k[1:]) for k in keys}
    blocked = {k: _blocker(values, group_issue, k) for k in keys}
    out, closed_at, tested = [], None, False
    for i, key in enumerate(SEQUENCE):
        if blocked[key]:
            out.append(_result(key, None, math.nan, False, i, f"untestable: {blocked[key]}", counts[key]))
        elif closed_at:
            out.append(
                _result(key, None, math.nan, False, i, f"not tested: the gate closed at {closed_at}", counts[key])
            )
        else:
            c, tested = permutation_test(values[key[1]][key[0]], values[key[2]][key[0]]), True
            out.append(
                _result(key, c, c.p, c.p <= ALPHA, i, "rejected" if c.p <= ALPHA else "not rejected", counts[key])
            )
            closed_at = None if c.p <= ALPHA else out[-1].name
    rest = keys[len(SEQUENCE) :]
    if closed_at or not tested:
        why = f"the gate closed at {closed_at}" if closed_at else "no contrast of the sequence was tested"
        return out + [
            _result(
                k,
                None,
                math.nan,
                False,
                None,
                f"untestable: {blocked[k]}" if blocked[k] else f"not tested: {why}",
                counts[k],
            )
            for k in rest
        ]
    raw = {k: permutation_test(values[k[1]][k[0]], values[k[2]][k[0]]) for k in rest if not blocked[k]}
    adjusted = dict(zip(raw, holm([c.p for c in raw.values()])))
    for k in rest:
        if blocked[k]:
            out.append(_result(k, None, math.nan, False, None, f"untestable: {blocked[k]}", counts[k]))
        else:
            sig = adjusted[k] <= ALPHA
            out.append(_result(k, raw[k], adjusted[k], sig, None, "rejected" if sig else "not rejected", counts[k]))
    return out


VerdictClass = str
"""One of: no_target, untestable, no_difference, differs."""


def verdict(
    target: float,
    tol: float,
    noise_ok: bool,
    n_hit: Mapping[str, int],
    n_seeds: int,
    results: list[ContrastResult],
    measure: str = "feature change",
) -> tuple[VerdictClass, str]:
    """(class, one sentence) stating what the numbers show (computed, never hand-written). The class comes from
    the first tested contrast of the registered sequence; ``measure`` names what the contrasts compare."""
    hits = ", ".join(f"{b} {n}/{n_seeds}" for b, n in n_hit.items())
    head = f"At a matched accuracy gain of {target:+.3f} ± {tol:.3f} (seeds hitting it: {hits})"
    if not noise_ok:
        return "no_target", (
            f"No two bands' seeds reach a common accuracy gain well above the eval's noise (largest gain a band's "
            f"seeds reach: {target:+.3f}; tolerance {tol:.3f}), so the bands cannot be compared at matched gain."
        )
    sequence = [r for r in results if r.order is not None]
    first = next((r for r in sequence if r.tested), None)
    skipped = [
        f"{r.name} ({r.status.removeprefix('untestable: ')})"
        for r in sequence[: sequence.index(first) if first else None]
    ]
    if first is None:
        return "untestable", f"{head}, no pre-registered contrast can be tested: {'; '.join(skipped)}."
    before = f" (skipped before it: {'; '.join(skipped)})" if skipped else ""
    said = (
        f"{measure}, {first.name}: difference {first.diff:+.3f} (permutation p = {first.p:.3f}, n = "
        f"{first.n_a}+{first.n_b} seeds)"
    )
    if not first.significant:
        return (
            "no_difference",
            f"{head}, the first testable pre-registered contrast{before} shows no difference in {said}.",
        )
    more = [f"{r.name} {r.diff:+.3f} (p = {r.p_adjusted:.3f})" for r in results if r.significant and r is not first]
    tail = f"; also {'; '.join(more)}" if more else "; no further contrast shows one"
    return "differs", f"{head}, the first testable pre-registered contrast{before} shows a difference in {said}{tail}."
