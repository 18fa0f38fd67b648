import dataclasses
import math

import numpy as np

from experiments.analysis.contrasts import SEQUENCE, contrasts
from experiments.analysis.gain_results import fraction_estimates, fraction_values, specific
from experiments.harness.reading.feature_groups import CONTRASTED
from experiments.harness.reading.gain_attribution import GainAttribution
from probes.layout import run_name


def record(carried_deliberation: float, rng) -> dict:
    """A run whose gain is 0.2; the deliberation group carries the given share of it, its random groups 0.05."""
    base, tuned = 0.4, 0.6
    noise = lambda: float(rng.normal(0, 0.002))  # noqa: E731
    groups = CONTRASTED
    res = GainAttribution(
        base,
        tuned,
        tuned,
        patched={
            "shortcut": tuned - 0.02 + noise(),
            "computation": tuned - 0.1 + noise(),
            "deliberation": tuned - 0.2 * carried_deliberation + noise(),
        },
        random_patched={g: [tuned - 0.01 + noise() for _ in range(4)] for g in groups},
        random_tuned={g: [tuned] * 4 for g in groups},
        path_agreement=1.0,
    )
    return {"step": 10, **dataclasses.asdict(res)}


def test_fraction_values__specific_shares_per_band_and_a_planted_difference_is_found():
    rng = np.random.default_rng(0)
    g, a, b = SEQUENCE[0]
    share = {"easy": 0.1, "medium": 0.5, "hard": 0.9}
    records = {run_name(band, s): record(share[band], rng) for band in share for s in range(5)}
    del records[run_name("hard", 4)]  # a seed that missed the target has no record
    values = fraction_values(records, seeds=range(5))
    assert len(values["hard"][g]["carried"]) == 4 and len(values["easy"][g]["carried"]) == 5
    est = fraction_estimates(values)
    assert math.isclose(est["easy"][g]["carried"].mean, 0.1, abs_tol=0.03)
    assert math.isclose(est["easy"][g]["random"].mean, 0.05, abs_tol=0.01)
    assert math.isclose(est["easy"][g]["specific"].mean, 0.05, abs_tol=0.03)
    tests = contrasts(specific(values), {})
    first = tests[0]
    assert (first.group, first.a, first.b) == SEQUENCE[0] and first.significant and first.diff < -0.7
    same = {run_name(band, s): record(0.5, rng) for band in share for s in range(5)}
    assert not contrasts(specific(fraction_values(same, range(5))), {})[0].significant


def test_gain_attribution__fractions_of_a_zero_gain_are_nan_not_an_error():
    res = GainAttribution(0.5, 0.5, 0.5, {"x": 0.4}, {"x": [0.5]}, {"x": [0.5]}, 1.0)
    assert all(math.isnan(v) for v in res.fractions()["x"].values())
