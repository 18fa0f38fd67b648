import numpy as np
import pytest

from probes.calibration import (
    Utility,
    auroc,
    best_threshold,
    brier,
    calibration_summary,
    ece,
    reliability_bins,
    weighted_vote,
)


def test_ece__hand_made_cases():
    assert ece(np.full(10, 0.8), np.arange(10) < 5) == pytest.approx(0.3)  # says 0.8, right half the time
    # two bins, each calibrated: 0.25 right 1 in 4, 0.95 right 19 in 20 -> 0
    q = np.r_[np.full(4, 0.25), np.full(20, 0.95)]
    c = np.r_[[1, 0, 0, 0], np.arange(20) < 19].astype(bool)
    assert ece(q, c) == pytest.approx(0.0, abs=1e-12)
    # weights are the bins' shares: 0.1 always right (gap 0.9, share 1/4), 0.9 always right (gap 0.1, share 3/4)
    assert ece([0.1, 0.9, 0.9, 0.9], [True] * 4) == pytest.approx(0.25 * 0.9 + 0.75 * 0.1)


def test_reliability_bins__tenths_land_in_their_own_bin_and_one_in_the_top_bin():
    bins = reliability_bins([0.3, 0.1, 1.0, 0.9, 0.0], [True, False, True, False, False])
    assert [b.n for b in bins] == [1, 1, 0, 1, 0, 0, 0, 0, 0, 2]
    assert bins[9].confidence == pytest.approx(0.95) and bins[9].accuracy == 0.5 and np.isnan(bins[2].accuracy)


def test_brier_and_auroc__hand_made_cases():
    assert brier([1.0, 0.0, 0.5], [True, True, False]) == pytest.approx((0 + 1 + 0.25) / 3)
    # right {0.9, 0.8} vs wrong {0.1, 0.8}: 3 wins and one tie of 4 pairs
    assert auroc([0.9, 0.8, 0.1, 0.8], [True, True, False, False]) == pytest.approx(3.5 / 4)
    assert np.isnan(auroc([0.2, 0.4], [True, True]))


def test_calibration_summary__scores_only_the_answers_that_state_a_confidence():
    s = calibration_summary([0.8, None, 0.8, 0.2], [True, True, False, False])
    assert s["stated"] == 0.75 and s["brier"] == pytest.approx((0.04 + 0.64 + 0.04) / 3) and s["auroc"] == 0.75
    assert s["ece"] == pytest.approx(1 / 3 * 0.2 + 2 / 3 * 0.3)
    assert np.isnan(calibration_summary([None], [True])["ece"]) and np.isnan(calibration_summary([], [])["stated"])


def test_weighted_vote__weights_decide_and_ties_go_to_the_first_answer():
    assert weighted_vote([3, 5, 5], [0.9, 0.2, 0.3]) == 3
    assert weighted_vote([3, 5, 5], [1, 1, 1]) == 5
    assert weighted_vote([5, 3], [1, 1]) == 5


def test_utility__threshold_and_payoffs():
    u = Utility(right=1, wrong=-3, abstain=0)
    assert u.threshold == 0.75
    assert u.of([True, True, False], [True, False, False]).tolist() == [1, -3, 0]
    with pytest.raises(ValueError):
        Utility(right=1, wrong=0.5, abstain=0)


def test_best_threshold__hand_made_case_and_always_abstaining():
    u = Utility(right=1, wrong=-3, abstain=0)
    assert best_threshold([0.2, 0.6, 0.9], [False, True, True], u) == 0.6  # utilities -1, 2, 1, 0 (abstain)
    assert best_threshold([0.2, 0.6], [False, False], u) > 1.0  # every answer wrong: never answer


@pytest.mark.parametrize(("warp", "optimum"), [(lambda p: p, 0.75), (lambda p: p**2, 0.75**0.5)])
def test_best_threshold__recovers_the_planted_optimal_threshold(warp, optimum):
    """Answers right with probability warp(p): calibrated (warp = identity) the optimal threshold on p is the
    utility's own 0.75; overconfident (right with p^2) it is sqrt(0.75), which only fitting can find."""
    rng = np.random.default_rng(0)
    p = rng.random(40_000)
    correct = rng.random(p.size) < warp(p)
    u = Utility(right=1, wrong=-3, abstain=0)
    t = best_threshold(p, correct, u)
    assert t == pytest.approx(optimum, abs=0.03)
    assert u.of(p >= t, correct).mean() > max(u.of(p >= 0.5, correct).mean(), u.abstain)
