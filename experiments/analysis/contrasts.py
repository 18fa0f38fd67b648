"""Band contrasts and the verdict: which differences between bands the numbers support.

Per feature group and pair of bands, the seed-level changes at the matched checkpoints are
compared by an exact permutation test over seed labels (``probes.stats.permutation_test``).
One contrast is pre-registered as the main one; the family of contrasts is tested by a fixed
sequence: the main contrast at level ALPHA first, and only if it is rejected the other
contrasts with Holm's correction at ALPHA. This keeps the chance of reporting any difference
when there is none at most ALPHA (tests/analysis/test_contrasts.py simulates it). A band
enters a contrast only with at least MIN_SEEDS seeds that hit the matched target.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping

from probes.stats import holm, permutation_test

GROUPS = ("shortcut", "computation", "deliberation")
PAIRS = (("easy", "medium"), ("medium", "hard"), ("easy", "hard"))

MAIN_CONTRAST = ("deliberation", "easy", "hard")
"""Registered before any run of this design: the literature's sharpest claim is that easy problems
suppress deliberation features while hard ones activate reasoning features, opposite directions."""
ALPHA = 0.05
MIN_SEEDS = 3
"""Seeds hitting the matched target a band needs before it enters a contrast."""


@dataclasses.dataclass(frozen=True)
class ContrastResult:
    group: str
    a: str
    b: str
    diff: float
    """Mean change in band a minus mean change in band b (nan when untestable)."""
    p: float
    """Exact permutation p-value over seed labels (nan when untestable)."""
    p_adjusted: float
    """The p-value the decision uses: raw for the main contrast, Holm-adjusted for the others."""
    n_a: int
    n_b: int
    significant: bool
    main: bool

    @property
    def name(self) -> str:
        return f"{self.group}: {self.a} vs {self.b}"


def contrasts(values: Mapping[str, Mapping[str, list[float]]], labelled: Mapping[str, bool]) -> list[ContrastResult]:
    """Every group x band-pair contrast, main first, decided by the fixed sequence (see module doc).

    ``values[band][group]`` are seed-level changes at matched checkpoints (hitting seeds only);
    ``labelled[group]`` is False for an empty group (then its contrasts are untestable)."""
    raw = {}
    for g, (a, b) in itertools.product(GROUPS, PAIRS):
        va, vb = values[a][g], values[b][g]
        ok = labelled.get(g, False) and len(va) >= MIN_SEEDS and len(vb) >= MIN_SEEDS
        raw[(g, a, b)] = permutation_test(va, vb) if ok else None
    main = raw[MAIN_CONTRAST]
    main_significant = main is not None and main.p <= ALPHA
    others = [k for k in raw if k != MAIN_CONTRAST]
    adjusted = holm([raw[k].p if raw[k] is not None else math.nan for k in others])
    out = [_result(MAIN_CONTRAST, main, main.p if main else math.nan, main_significant, True)]
    for key, adj in zip(others, adjusted):
        out.append(_result(key, raw[key], adj, main_significant and adj <= ALPHA, False))
    return out


def _result(key, c, p_adj: float, significant: bool, main: bool) -> ContrastResult:
    g, a, b = key
    if c is None:
        return ContrastResult(g, a, b, math.nan, math.nan, math.nan, 0, 0, False, main)
    return ContrastResult(g, a, b, c.diff, c.p, p_adj, c.n_a, c.n_b, bool(significant), main)


VerdictClass = str
"""One of: no_target, untestable, no_difference, differs (the main contrast, maybe more)."""


def verdict(
    target: float,
    tol: float,
    noise_ok: bool,
    n_hit: Mapping[str, int],
    n_seeds: int,
    results: list[ContrastResult],
    causal: Mapping[str, bool | None],
    labelled: Mapping[str, bool],
    measure: str = "feature change",
) -> tuple[VerdictClass, str]:
    """(class, one sentence) stating what the numbers show (computed, never hand-written); ``measure``
    names what the contrasts compare (e.g. 'share of the gain carried')."""
    hits = ", ".join(f"{b} {n}/{n_seeds}" for b, n in n_hit.items())
    head = f"At a matched accuracy gain of {target:+.3f} ± {tol:.3f} (seeds hitting it: {hits})"
    if not noise_ok:
        return "no_target", (
            f"No band has every run reach an accuracy gain well above the eval's noise (largest common gain "
            f"{target:+.3f}, tolerance {tol:.3f}), so the bands cannot be compared at matched gain."
        )
    main = results[0]
    if math.isnan(main.p):
        why = "its label group is empty" if not labelled.get(main.group) else f"a band has fewer than {MIN_SEEDS} seeds hitting the target"
        return "untestable", f"{head}, the pre-registered contrast ({main.name}) cannot be tested: {why}."
    caveat = "" if causal.get(main.group) else f"; the {main.group} label failed its causal check"
    said = f"{measure}, {main.name}, differs by {main.diff:+.2f} (permutation p = {main.p:.3f}, n = {main.n_a}+{main.n_b} seeds{caveat})"
    if not main.significant:
        return "no_difference", f"{head}, the pre-registered contrast does not show a difference: {said.replace(', differs by', ': difference')}."
    more = [
        f"{r.name} {r.diff:+.2f} (Holm p = {r.p_adjusted:.3f}{'' if causal.get(r.group) else ', label failed its causal check'})"
        for r in results[1:] if r.significant
    ]  # fmt: skip
    tail = f"; also {'; '.join(more)}" if more else "; no other contrast survives Holm's correction"
    return "differs", f"{head}, {said}{tail}."
