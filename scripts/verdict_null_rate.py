"""How often a band study's verdict rejects a contrast whose bands do not differ: the decision path simulated.

``python scripts/verdict_null_rate.py [--trials 20000]`` builds gain-attribution records of the hitting runs
(carried shares ~ N(0.2, 0.1) plus a planted shift per band and group, random groups' ~ N(0.05, 0.1)), runs
them through the study's own decision (``experiments.analysis.band_results.decide``: specific shares, serial
gatekeeping over the registered sequence, Holm after it, skips for bands with fewer than 3 hitting seeds) and
prints, per scenario, the rate of false rejections (any contrast whose bands share their distribution) with its
binomial SE. tests/analysis/test_contrasts.py runs the same simulation with fewer trials.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from experiments.analysis.band_results import MatchPlan, decide
from experiments.analysis.contrasts import PAIRS
from experiments.harness.reading.feature_groups import ATTRIBUTED, CONTRASTED
from probes.bands import BANDS
from probes.layout import run_name

SEEDS = (0, 1, 2, 3, 4)
PLAN = MatchPlan(0.1, 0.009, 0.009, True, dict.fromkeys(BANDS, 0.1), BANDS)
CONFIRMED = {g: {"n": 5, "passed": True} for g in CONTRASTED}
SCENARIOS = {
    "global null, every seed hits": (dict.fromkeys(BANDS, 5), {}, 0.0),
    "global null, 5/4/3 hitting seeds, 5% nan shares": ({"easy": 5, "medium": 4, "hard": 3}, {}, 0.05),
    "global null, hard unmatched (2 seeds): the sequence skips to easy vs medium": (
        {"easy": 5, "medium": 4, "hard": 2},
        {},
        0.0,
    ),
    "partial null: medium's deliberation differs": (
        {"easy": 5, "medium": 4, "hard": 5},
        {("medium", "deliberation"): 0.6},
        0.0,
    ),
    "partial null: easy differs on two groups, so Holm runs on the rest": (
        {"easy": 5, "medium": 5, "hard": 4},
        {("easy", "deliberation"): 0.6, ("easy", "shortcut"): 0.6},
        0.0,
    ),
}


def records(rng, hits: dict[str, int], shift: dict | None = None, n_random: int = 3, nan_frac: float = 0.0) -> dict:
    """Gain-attribution records of the hitting runs (the first ``hits[band]`` seeds of each band); with ``nan_frac``
    a run's random groups of a group are missing now and then (its specific share is nan)."""
    out, groups = {}, len(ATTRIBUTED)
    for band in BANDS:
        for seed in SEEDS[: hits[band]]:
            z = rng.normal(size=1 + groups * (1 + n_random))
            base, gain = 0.5, 0.1 + 0.005 * z[0]
            tuned = base + gain
            share = 0.2 + 0.1 * z[1 : 1 + groups] + np.array([(shift or {}).get((band, g), 0.0) for g in ATTRIBUTED])
            rand = (tuned - gain * (0.05 + 0.1 * z[1 + groups :])).reshape(groups, n_random).tolist()
            missing = rng.random(groups) < nan_frac
            out[run_name(band, seed)] = {
                "acc_base": base,
                "matched_acc": tuned,
                "acc_tuned": tuned,
                "patched": {g: tuned - s * gain for g, s in zip(ATTRIBUTED, share.tolist())},
                "random_patched": {g: [] if m else r for g, r, m in zip(ATTRIBUTED, rand, missing)},
                "random_tuned": {g: [] if m else [tuned] * n_random for g, m in zip(ATTRIBUTED, missing)},
                "path_agreement": 1.0,
            }
    return out


def false_rejection_rate(hits: dict[str, int], shift: dict, nan_frac: float, trials: int, seed: int = 0) -> float:
    """Share of simulated studies that reject any contrast whose two bands were drawn alike."""
    rng = np.random.default_rng(seed)
    shifted = {(g, a, b) for (band, g) in shift for a, b in PAIRS if band in (a, b)}
    null = {(g, a, b) for g in CONTRASTED for a, b in PAIRS} - shifted
    wrong = 0
    for _ in range(trials):
        tests, _, _ = decide(records(rng, hits, shift, nan_frac=nan_frac), SEEDS, CONFIRMED, hits, PLAN)
        wrong += any(t.significant and (t.group, t.a, t.b) in null for t in tests)
    return wrong / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20000)
    args = parser.parse_args()
    print("scenario | trials | P(false rejection) | SE")
    for name, (hits, shift, nan_frac) in SCENARIOS.items():
        rate = false_rejection_rate(hits, shift, nan_frac, args.trials)
        print(f"{name} | {args.trials} | {rate:.4f} | {math.sqrt(rate * (1 - rate) / args.trials):.4f}", flush=True)


if __name__ == "__main__":
    main()
