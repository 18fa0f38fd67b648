"""Deliberation activity on rollouts, successes vs failures: the per-step summary over seeds."""

import numpy as np
import pytest

from experiments.analysis.activity_results import success_gap


def test_success_gap__recovers_a_planted_gap_and_counts_only_seeds_with_both_outcomes():
    """Successful rollouts carry activity 1 + gap, failed ones 1, plus noise; the gap is 0 at step 0 and
    0.5 at step 10. A third seed with no success at step 10 adds to the success rate only."""
    rng = np.random.default_rng(0)

    def step(gap: float, rate: float, n: int = 400) -> dict:
        correct = rng.random(n) < rate
        return {"activity": (1 + gap * correct + 0.05 * rng.normal(size=n)).tolist(), "correct": correct.tolist()}

    records = {f"bands/hard/seed{s}": {"0": step(0.0, 0.2), "10": step(0.5, 0.3)} for s in (0, 1)}
    records["bands/hard/seed2"] = {"0": step(0.0, 0.2), "10": step(0.5, 0.0)}
    out = success_gap(records)
    assert list(out) == ["0", "10"]
    assert out["0"]["gap"]["mean"] == pytest.approx(0.0, abs=0.02) and out["0"]["gap"]["n"] == 3
    assert out["10"]["gap"]["mean"] == pytest.approx(0.5, abs=0.02) and out["10"]["gap"]["n"] == 2
    assert out["10"]["on_failure"]["mean"] == pytest.approx(1.0, abs=0.02)
    assert out["10"]["success_rate"]["n"] == 3 and out["10"]["success_rate"]["mean"] == pytest.approx(0.2, abs=0.03)
