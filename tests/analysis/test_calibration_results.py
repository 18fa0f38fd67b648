"""The calibration study's statistics on planted effects, and its false-positive rate under the null."""

import numpy as np
import pytest

from experiments.analysis.calibration_results import Samples, split_table, verdict, vote_accuracy

LEVEL = 1 - 0.05 / 4


def planted(rng, p_P, n, stated, seeds=3):
    """Runs whose samples are right with the problem's chance p and state q = stated(p) (rounded to tenths)."""
    runs = []
    for _ in range(seeds):
        correct = rng.random((p_P.size, n)) < p_P[:, None]
        q = np.round(np.broadcast_to(stated(p_P)[:, None], correct.shape), 1)
        answers = [["right" if c else f"wrong{j}" for j, c in enumerate(row)] for row in correct]
        runs.append(Samples(correct, q.copy(), answers))
    return runs


def test_split_table__finds_a_planted_calibration_gain_at_equal_accuracy():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.1, 0.9, 200)
    runs = {"binary": planted(rng, p, 8, lambda p: np.full_like(p, 1.0)), "brier": planted(rng, p, 8, lambda p: p)}
    table = split_table(runs, np.arange(p.size), n_boot=200, seed=0, reference="binary", level=LEVEL)
    assert table["brier"]["ece"]["mean"] < 0.05 < 0.3 < table["binary"]["ece"]["mean"]
    assert table["brier"]["ece"]["diff"]["ci"][1] < 0 < table["brier"]["accuracy"]["diff"]["ci"][1]
    assert table["brier"]["accuracy"]["diff"]["ci"][0] < 0  # equal accuracy: the interval spans 0
    cls, sentence = verdict({"in distribution": table}, "binary", "brier", LEVEL)
    assert cls == "no_trade_off" and "without lowering accuracy" in sentence


def test_verdict__a_planted_accuracy_cost_is_a_trade_off():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.3, 0.9, 200)
    runs = {"binary": planted(rng, p, 8, lambda p: np.full_like(p, 1.0)), "brier": planted(rng, p - 0.2, 8, lambda p: p)}
    table = split_table(runs, np.arange(p.size), n_boot=200, seed=0, reference="binary", level=LEVEL)
    assert verdict({"all": table}, "binary", "brier", LEVEL)[0] == "trade_off"


def test_verdict__keeps_its_error_rate_when_both_rewards_give_the_same_model():
    """Null: both variants' samples come from one distribution (overconfident, q = 0.9). The verdict claims a
    calibration gain when the ECE difference's interval lies below 0; at the 98.75% level that should
    happen in about 0.6% of studies (one-sided); allow 10% over 40 simulated studies."""
    rng = np.random.default_rng(2)
    p = rng.uniform(0.2, 0.8, 60)
    claims = 0
    for _ in range(40):
        runs = {v: planted(rng, p, 4, lambda p: np.full_like(p, 0.9)) for v in ("binary", "brier")}
        table = split_table(runs, np.arange(p.size), n_boot=100, seed=int(rng.integers(1 << 30)), reference="binary", level=LEVEL)
        claims += verdict({"all": table}, "binary", "brier", LEVEL)[0] != "no_calibration_gain"
    assert claims / 40 <= 0.1


def test_vote_accuracy__weights_can_overturn_the_majority():
    correct = np.array([[True, False, False]])
    s = Samples(correct, np.array([[0.9, 0.1, 0.1]]), [["7", "3", "3"]])
    assert vote_accuracy(s, np.array([0])) == {"majority": 0.0, "weighted": 1.0}
    none_stated = Samples(correct, np.full((1, 3), np.nan), [["7", "3", "3"]])
    assert vote_accuracy(none_stated, np.array([0]))["weighted"] == 0.0  # no confidences: the plain vote
    with pytest.raises(IndexError):
        vote_accuracy(s, np.array([1]))
