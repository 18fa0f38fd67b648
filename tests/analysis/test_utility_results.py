"""The utility study's decisions on planted models."""

import numpy as np
import pytest

from experiments.analysis.utility_results import DECISIONS, Decisions, utility_arms, utility_table
from probes.calibration import Utility

U = Utility(right=1, wrong=-3, abstain=0)


def model(rng, p_P, n, abstain_below=None):
    """Samples right with chance p, stating p as the answer's probability; abstaining below a chance if asked."""
    correct = rng.random((p_P.size, n)) < p_P[:, None]
    abstained = np.zeros_like(correct) if abstain_below is None else np.broadcast_to((p_P < abstain_below)[:, None], correct.shape).copy()
    return Decisions(correct & ~abstained, abstained, np.where(abstained, np.nan, np.broadcast_to(p_P[:, None], correct.shape)))


def test_utility_arms__thresholding_a_calibrated_model_matches_a_policy_that_abstains_at_the_right_chance():
    rng = np.random.default_rng(0)
    p = rng.random(400)
    direct = [model(rng, p, 8, abstain_below=0.75) for _ in range(3)]  # learned exactly the optimal policy
    symmetric = [model(rng, p, 8) for _ in range(3)]  # always answers, but knows its chance
    arms, thresholds = utility_arms(direct, symmetric, np.arange(0, 400, 2), U)
    assert all(t == pytest.approx(0.75, abs=0.1) for t in thresholds)
    table = utility_table(arms, np.arange(1, 400, 2), level=0.95, n_boot=200, seed=0)
    fitted, as_sampled = table["post hoc: " + DECISIONS[2]]["utility"], table["post hoc: " + DECISIONS[0]]["utility"]
    assert fitted["diff"]["ci"][0] < 0 < fitted["diff"]["ci"][1]  # both optimal: no difference
    assert as_sampled["diff"]["ci"][1] < 0  # answering everything loses to abstaining below 0.75
    assert table["direct (utility reward)"]["answer_rate"]["mean"] == pytest.approx(0.25, abs=0.05)


def test_decisions__answered_respects_abstentions_and_the_threshold():
    d = Decisions(np.array([[True, False, False]]), np.array([[False, False, True]]), np.array([[0.9, 0.5, np.nan]]))
    assert d.answered(None).tolist() == [[True, True, False]] and d.answered(0.75).tolist() == [[True, False, False]]
    assert U.of(d.answered(0.75), d.correct_PN).tolist() == [[1, 0, 0]]
