"""The remedies study's statistics: per arm, gains, damage, behaviour, group activity change and the share of the band
study's matched gain each group carries, with t intervals over seeds; the registered contrasts with exact permutation
tests and Holm; the computed verdict.

Every arm is trained with the same seeds, and each seed's evaluations use the same draws in every arm (the eval set
and its random numbers depend on the seed only), so an arm's gain is measured exactly as the band study measures it.
The tests still treat arms as independent samples of seeds (exchangeable labels): valid, if conservative.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from experiments.analysis.contrasts import MIN_SEEDS
from experiments.analysis.gain_results import attribution_of
from experiments.harness.reading.feature_groups import ATTRIBUTED
from experiments.harness.studies.reward_study import JsonFields
from probes.bands import BANDS
from probes.diff import relative_change
from probes.stats import holm, permutation_test, t_mean, welch_interval

USEFUL = (("reverse", "plain"), ("shaping", "more_samples"))
"""The registered usefulness contrasts (fixed December 2026, before any remedy result): each remedy against its
control at equal compute. The reverse curriculum adds no compute (given steps move tokens from the completion to the
prompt), so its control is plain GRPO; feature-guided credit adds a forward pass per rollout token, so its control is
plain GRPO with that compute spent on more samples per prompt."""
ALPHA = 0.05
KEY = "eval/acc/all/sampled"
"""The held-out gain's metric (the band study's matched metric)."""
BEHAVIOUR = {"lucky": "lucky_success_rate", "skipped": "skipped_step_rate", "trace_length": "trace_length"}
"""Behaviour at the final evaluation, from the run's own eval samples (``eval/behaviour/<name>``)."""


def seed_values(rows: Sequence[Mapping], read: Mapping, base: Mapping, attribution: Mapping | None) -> dict[str, float]:
    """One run's numbers: its final held-out gain (overall, ``gain/<band>`` by base band), its gain at every
    evaluated step (``curve/<step>``), damage, behaviour, each group's activity change (``change/<group>``) and,
    where the run hit the band study's matched gain, the specific share of it each group carries (``share/<group>``,
    nan where it did not)."""
    evals = [r for r in rows if KEY in r]
    first, last = evals[0], evals[-1]
    solved = np.array(base["greedy"], bool)
    now = np.array(read["greedy"], bool)
    out = {"gain": last[KEY] - first[KEY]}
    out |= {f"gain/{b}": last[f"eval/acc/{b}/sampled"] - first[f"eval/acc/{b}/sampled"] for b in BANDS}
    out |= {f"curve/{r['step']}": r[KEY] - first[KEY] for r in evals}
    out["damage"] = float((~now[solved]).mean()) if solved.any() else math.nan
    out |= {name: last[f"eval/behaviour/{m}"] for name, m in BEHAVIOUR.items()}
    out |= {f"change/{g}": c for g, c in relative_change(read["activity"], base["activity"]).items()}
    fractions = attribution_of(attribution).fractions() if attribution else {}
    out |= {f"share/{g}": fractions.get(g, {}).get("specific", math.nan) for g in ATTRIBUTED}
    return out


def shaping_values(rows: Sequence[Mapping]) -> dict[str, float]:
    """A shaped run's reward-hacking readings: the mean share of its paid reward that came from the bonus, and the
    group's activity on failed rollouts over the first and the last fifth of its updates."""
    upd = [r for r in rows if "shaping/bonus_share" in r]
    fifth = max(1, len(upd) // 5)
    mean = lambda rs, k: float(np.mean([r[k] for r in rs]))  # noqa: E731
    return {
        "bonus_share": mean(upd, "shaping/bonus_share"),
        "activity_failed_first": mean(upd[:fifth], "shaping/activity_failed"),
        "activity_failed_last": mean(upd[-fifth:], "shaping/activity_failed"),
    }


def contrast(name: str, a: Sequence[float], b: Sequence[float], min_seeds: int = 2) -> dict:
    """mean(a) - mean(b) with its Welch interval and exact permutation p over the finite values (Holm comes after,
    over the family); nan where a side has fewer than ``min_seeds`` (at least 2)."""
    x, y = (np.asarray(v, float)[np.isfinite(np.asarray(v, float))] for v in (a, b))
    if min(x.size, y.size) < max(2, min_seeds):
        return {"name": name, "diff": math.nan, "ci95": [math.nan, math.nan], "p": math.nan, "n": [x.size, y.size]}
    d, ci = welch_interval(x, y)
    return {"name": name, "diff": d, "ci95": list(ci), "p": permutation_test(x, y).p, "n": [x.size, y.size]}


def with_holm(family: list[dict]) -> list[dict]:
    adjusted = holm([c["p"] for c in family])
    return [{**c, "p_holm": p} for c, p in zip(family, adjusted)]


def call(c: dict) -> str:
    """useful / harmful (Holm-adjusted p below ALPHA, by the sign) or no_difference."""
    if not c["p_holm"] < ALPHA:
        return "no_difference"
    return "useful" if c["diff"] > 0 else "harmful"


def usefulness(gain: dict) -> str:
    """What an arm's hard samples were worth: useful (gain interval above 0), harmful (below) or useless."""
    return "useful" if gain["ci95"][0] > 0 else "harmful" if gain["ci95"][1] < 0 else "useless"


@dataclasses.dataclass(frozen=True)
class RemediesResult(JsonFields):
    """The study's result as results.json holds it."""

    preset: str
    seeds: list[int]
    arms: dict[str, dict[str, dict]]
    """Per arm, per quantity (``seed_values``' names): the mean over seeds with its t interval
    (``probes.stats.Estimate.as_dict``)."""
    per_seed: dict[str, dict[str, list[float]]]
    """Per arm, per quantity: every seed's value, in seed order."""
    worth: dict[str, str]
    """Per arm: its hard (or medium) samples were useful, useless or harmful (its gain's interval against 0)."""
    useful: list[dict]
    """The registered usefulness contrasts: name, diff, ci95 (Welch), p (exact permutation), p_holm, call."""
    confirmed: list[str]
    """The headline SAE's groups whose causal check passed (the mechanism family's groups)."""
    mechanism: list[dict]
    """Per registered contrast and causally confirmed group: the difference in the group's activity change, with
    Holm over the family."""
    target: float
    """The band study's matched gain, where carried shares are read (nan: it has none)."""
    hits: dict[str, int]
    """Per arm: seeds that hit the matched gain (their gain attributed there)."""
    carried: list[dict]
    """Per registered contrast and causally confirmed group: the difference in the specific share of the matched
    gain the group carries (seeds that hit it; nan with fewer than MIN_SEEDS a side), with Holm over the family."""
    shaping: dict[str, dict]
    """The shaped runs' reward-hacking readings (``shaping_values``), if the arm ran."""
    not_run: dict[str, str]
    """Arms that did not run, and why."""
    verdict: str


def analyse(
    runs: Mapping[str, Mapping[int, Sequence[Mapping]]],
    reads: Mapping[str, Mapping],
    attributions: Mapping[str, Mapping | None],
    confirmed: Sequence[str],
    *,
    target: float,
    preset: str,
    seeds: Sequence[int],
    not_run: Mapping[str, str],
) -> RemediesResult:
    """From every run's metrics rows (arm -> seed -> rows), every model's read (``base``, ``<arm>/seed<s>``), every
    run's gain attribution at the band study's matched gain ``target`` (None or absent: not hit) and the headline
    SAE's causally confirmed groups."""
    per_seed: dict[str, dict[str, list[float]]] = {}
    for arm, by_seed in runs.items():
        names = [f"{arm}/seed{s}" for s in seeds]
        vals = [seed_values(by_seed[s], reads[n], reads["base"], attributions.get(n)) for s, n in zip(seeds, names)]
        per_seed[arm] = {k: [v.get(k, math.nan) for v in vals] for k in vals[0]}
    arms = {a: {k: t_mean(v).as_dict() for k, v in q.items()} for a, q in per_seed.items()}
    registered = [(r, c) for r, c in USEFUL if r in per_seed and c in per_seed]
    useful = with_holm([contrast(f"{r} vs {c}", per_seed[r]["gain"], per_seed[c]["gain"]) for r, c in registered])
    useful = [{**c, "call": call(c)} for c in useful]
    mechanism = with_holm(
        [
            contrast(f"{r} vs {c}: {g}", per_seed[r][f"change/{g}"], per_seed[c][f"change/{g}"])
            for r, c in registered
            for g in confirmed
        ]
    )
    carried = with_holm(
        [
            contrast(f"{r} vs {c}: {g}", per_seed[r][f"share/{g}"], per_seed[c][f"share/{g}"], MIN_SEEDS)
            for r, c in registered
            for g in confirmed
            if g in ATTRIBUTED
        ]
    )
    hits = {a: sum(attributions.get(f"{a}/seed{s}") is not None for s in seeds) for a in per_seed}
    shaped = [shaping_values(runs["shaping"][s]) for s in seeds] if "shaping" in runs else []
    shaping = {k: t_mean([v[k] for v in shaped]).as_dict() for k in (shaped[0] if shaped else {})}
    worth = {a: usefulness(arms[a]["gain"]) for a in arms}
    verdict = sentence(arms, worth, useful, mechanism, carried, target, not_run, len(seeds))
    return RemediesResult(
        preset,
        list(seeds),
        arms,
        per_seed,
        worth,
        useful,
        list(confirmed),
        mechanism,
        target,
        hits,
        carried,
        shaping,
        dict(not_run),
        verdict,
    )


def sentence(arms, worth, useful, mechanism, carried, target: float, not_run, n_seeds: int) -> str:
    """The verdict, computed: each registered contrast's call with its numbers, what each arm's samples were worth,
    whether any confirmed group's activity change differs (Holm), and whether any carries a different share of the
    matched gain (Holm)."""
    fmt = lambda e: f"{e['mean']:+.3f} [{e['ci95'][0]:+.3f}, {e['ci95'][1]:+.3f}]"  # noqa: E731
    parts = [
        f"{c['name']}: held-out gain difference {c['diff']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}], "
        f"Holm p = {c['p_holm']:.3f}: {c['call'].replace('_', ' ')}"
        for c in useful
    ] or ["no registered contrast could run (" + "; ".join(f"{a}: {w}" for a, w in not_run.items()) + ")"]
    gains = "; ".join(f"{a} {fmt(arms[a]['gain'])} ({worth[a]})" for a in arms)
    moved = [m["name"] for m in mechanism if m["p_holm"] < ALPHA]
    groups = (
        f"group activity changes that differ (Holm): {', '.join(moved)}"
        if moved
        else f"no confirmed group's activity change differs ({len(mechanism)} tests, Holm)"
        if mechanism
        else "no confirmed group to compare"
    )
    tested = [c for c in carried if math.isfinite(c["p"])]
    differ = [c["name"] for c in tested if c["p_holm"] < ALPHA]
    shares = (
        "the band study has no matched gain to read shares at"
        if not math.isfinite(target)
        else f"at the band study's matched gain ({target:+.3f}), shares carried that differ (Holm): {', '.join(differ)}"
        if differ
        else f"at the band study's matched gain ({target:+.3f}), no confirmed group carries a different share "
        f"({len(tested)} tests with {MIN_SEEDS}+ hitting seeds a side, Holm)"
    )
    groups = groups[0].upper() + groups[1:]
    return f"With {n_seeds} seeds per arm: {'; '.join(parts)}. Held-out gains: {gains}. {groups}; {shares}."
