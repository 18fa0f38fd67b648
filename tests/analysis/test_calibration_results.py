"""The calibration study's statistics on planted effects, and its false-positive rate under the null."""

import json

import numpy as np
import pytest

from experiments.analysis.calibration_report import write_report
from experiments.analysis.calibration_results import (
    CalibrationResult,
    Samples,
    analyse,
    split_table,
    verdict,
    vote_accuracy,
)
from experiments.harness.rundir import write_json
from probes.layout import RewardStudyLayout, read_json

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
    runs = {
        "binary": planted(rng, p, 8, lambda p: np.full_like(p, 1.0)),
        "brier": planted(rng, p - 0.2, 8, lambda p: p),
    }
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
        table = split_table(
            runs, np.arange(p.size), n_boot=100, seed=int(rng.integers(1 << 30)), reference="binary", level=LEVEL
        )
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


def test_calibration_result__round_trips_through_its_json(tmp_path):
    """A result the analysis computes from planted runs (the base model, three variants, two splits) comes back
    equal from its JSON, and what is written to disk reads back and writes again byte for byte."""
    rng = np.random.default_rng(3)
    p = rng.uniform(0.2, 0.8, 40)
    k_P = np.arange(40) % 5 + 1
    runs = {"base": planted(rng, p, 4, lambda p: np.full_like(p, 0.9), seeds=1)}
    stated = {"binary": lambda p: np.full_like(p, 1.0), "brier": lambda p: p, "log": np.sqrt}
    runs |= {v: planted(rng, p, 4, q, seeds=2) for v, q in stated.items()}
    r = analyse(runs, k_P, 3, preset="test", band="medium", seeds=(0, 1), tested="brier", level=LEVEL, n_boot=50)
    assert list(r.splits) == ["in distribution", "beyond"] and r.rewards == ["binary", "brier", "log"]
    assert CalibrationResult.from_json(r.to_json()) == r
    assert np.isnan(r.reliability["beyond"]["base"][0]["accuracy"])  # an empty bin: nan, null on disk
    write_json(tmp_path / "results.json", r.to_json())
    back = CalibrationResult.from_json(read_json(tmp_path / "results.json"))
    assert json.dumps(back.to_json()) == json.dumps(r.to_json())  # nan again where the file has null
    write_json(tmp_path / "again.json", back.to_json())
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "results.json").read_bytes()
    write_report(RewardStudyLayout(tmp_path), back)  # the report renders the typed result read back
    assert r.verdict in (tmp_path / "report.md").read_text()
    with pytest.raises(KeyError):  # a field missing from the JSON is refused, not defaulted
        CalibrationResult.from_json({k: v for k, v in r.to_json().items() if k != "reliability"})
