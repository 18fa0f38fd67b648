"""The verdict's decision path, end to end from attribution records: nominal error rate under global and partial
nulls (skips and unequal seed counts included), power under a planted difference, and the sentences."""

import math
import runpy
import types
from pathlib import Path

import numpy as np
import pytest

from experiments.analysis.band_results import decide
from experiments.analysis.contrasts import ALPHA, SEQUENCE, contrasts, verdict
from experiments.harness.reading.feature_groups import CONTRASTED
from probes.bands import BANDS

null_rate = runpy.run_path(
    str(Path(__file__).parents[2] / "scripts" / "verdict_null_rate.py")
)  # the simulation, shared
null_rate = types.SimpleNamespace(**null_rate)
SEEDS, PLAN, PASSED, records = null_rate.SEEDS, null_rate.PLAN, null_rate.CONFIRMED, null_rate.records


@pytest.mark.parametrize(
    "scenario",
    [name if i == 4 else pytest.param(name, marks=pytest.mark.slow) for i, name in enumerate(null_rate.SCENARIOS)],
)
def test_verdict__familywise_false_positives_stay_at_most_alpha(scenario):
    """10000 simulated studies through the real decision path (records -> specific shares -> gatekept contrasts ->
    class), global and partial nulls with skips and unequal seed counts: the chance of rejecting any contrast whose
    bands do not differ stays at or below ALPHA (the simulated rate's SE is 0.0022, so 6% would be caught)."""
    trials = 10000
    rate = null_rate.false_rejection_rate(*null_rate.SCENARIOS[scenario], trials=trials)
    assert rate <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / trials)


def test_verdict__planted_main_difference_is_found_with_five_seeds_and_then_holm_runs():
    rng = np.random.default_rng(1)
    g, a, b = SEQUENCE[0]
    found = [
        decide(
            records(rng, dict.fromkeys(BANDS, 5), {(a, g): 0.6, (a, "shortcut"): 0.6}),
            SEEDS,
            PASSED,
            dict.fromkeys(BANDS, 5),
            PLAN,
        )
        for _ in range(200)
    ]
    assert np.mean([cls == "differs" for _, cls, _ in found]) > 0.8
    tests, cls, text = next(f for f in found if f[1] == "differs")
    assert tests[0].order == 0 and (tests[0].group, tests[0].a, tests[0].b) == SEQUENCE[0] and tests[0].diff > 0
    assert f"{g}: {a} vs {b}" in text and "±" in text
    assert all(t.status in ("rejected", "not rejected") for t in tests[3:])  # the gate opened: Holm family tested


def test_contrasts__skip_rules_and_the_closed_gate():
    rng = np.random.default_rng(2)
    vals = lambda shift=0.0: rng.normal(shift, 1, 5).tolist()  # noqa: E731
    values = {b: {g: vals() for g in CONTRASTED} for b in BANDS}
    values["easy"]["shortcut"] = vals(50.0)  # a huge easy-vs-medium shortcut difference
    # deliberation failed its check: the first contrast is skipped, the second is tested and rejected
    res = contrasts(values, {"deliberation": "failed its causal check"})
    assert res[0].status.startswith("untestable: the deliberation group failed") and math.isnan(res[0].p)
    assert res[1].status == "rejected" and res[1].p == pytest.approx(2 / 252)
    assert all(r.status.startswith("untestable") for r in res if r.group == "deliberation")
    # fewer than 3 finite values in hard: the first contrast is skipped for seeds
    few = {**values, "hard": {g: [0.1, 0.2, math.nan, math.nan] for g in CONTRASTED}}
    assert "fewer than 3 seeds" in contrasts(few, {})[0].status and "hard 2" in contrasts(few, {})[0].status
    # the first tested contrast is not rejected: nothing after it is tested, the huge difference included
    closed = contrasts(values, {})
    assert closed[0].status == "not rejected" and all(
        r.status.startswith("not tested: the gate closed") for r in closed[1:]
    )
    assert not any(r.significant for r in closed)


def test_verdict__classes_and_sentences_come_from_the_numbers():
    rng = np.random.default_rng(3)
    hits = dict.fromkeys(BANDS, 5)
    values = {b: {g: rng.normal(0, 1, 5).tolist() for g in CONTRASTED} for b in BANDS}
    cls, text = verdict(0.01, 0.006, False, hits, 5, contrasts(values, {}), "share")
    assert cls == "no_target" and "+0.010" in text
    cls, text = verdict(0.04, 0.006, True, hits, 5, contrasts(values, dict.fromkeys(CONTRASTED, "is empty")), "share")
    assert cls == "untestable" and text.count("group is empty") == 3
    values["easy"]["deliberation"] = rng.normal(-1.0, 0.1, 5).tolist()  # planted: first in the sequence
    values["hard"]["deliberation"] = rng.normal(1.0, 0.1, 5).tolist()
    cls, text = verdict(0.04, 0.006, True, hits, 5, contrasts(values, {}), "share")
    assert cls == "differs" and "deliberation: easy vs hard: difference -1.9" in text, text
    cls, text = verdict(
        0.04, 0.006, True, hits, 5, contrasts(values, {"deliberation": "failed its causal check"}), "share"
    )
    assert (
        cls in ("no_difference", "differs")
        and "skipped before it: deliberation: easy vs hard (the deliberation group" in text
    )
