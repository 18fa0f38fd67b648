"""How often a band study's verdict reports a difference when there is none.

``python scripts/verdict_null_rate.py [--trials 2000]``: seed-level changes are drawn from one
standard normal for every band and feature group (no true difference), and two decision rules
are applied to the same draws: the current one (``experiments.analysis.contrasts``: exact
permutation tests, the pre-registered main contrast first, Holm over the rest) and the rule
used up to a1b65eb (two bands differ when their percentile-bootstrap CIs are disjoint and the
gap exceeds the mean same-band seed-pair gap, over 3 groups x 3 band pairs).
"""

from __future__ import annotations

import argparse

import numpy as np

from experiments.analysis.contrasts import GROUPS, PAIRS, contrasts
from probes.bands import BANDS
from probes.stats import bootstrap_mean, noise_floor


def old_rule(values: dict) -> bool:
    floors = {g: noise_floor([values[b][g] for b in BANDS]) for g in GROUPS}
    for g in GROUPS:
        for a, b in PAIRS:
            ea, eb = bootstrap_mean(values[a][g]), bootstrap_mean(values[b][g])
            apart = ea.ci95[1] < eb.ci95[0] or eb.ci95[1] < ea.ci95[0]
            if apart and abs(ea.mean - eb.mean) > floors[g]:
                return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 8])
    args = parser.parse_args()
    labelled = dict.fromkeys(GROUPS, True)
    print("seeds per band | trials | current rule: P(any difference) | old rule: P(any difference)")
    for n in args.seeds:
        rng = np.random.default_rng(0)
        draws = [{b: {g: rng.normal(size=n).tolist() for g in GROUPS} for b in BANDS} for _ in range(args.trials)]
        new = np.mean([any(c.significant for c in contrasts(v, labelled)) for v in draws])
        old = np.mean([old_rule(v) for v in draws])
        print(f"{n:>14} | {args.trials:>6} | {new:.3f} | {old:.3f}")


if __name__ == "__main__":
    main()
