"""The utility study's decisions on planted models."""

import json

import numpy as np
import pytest

from experiments.analysis.utility_report import write_report
from experiments.analysis.utility_results import (
    DECISIONS,
    DIRECT,
    SYMMETRIC,
    Decisions,
    UtilityResult,
    analyse,
    utility_arms,
    utility_table,
)
from experiments.harness.rundir import write_json
from probes.calibration import Utility
from probes.layout import RewardStudyLayout, read_json

U = Utility(right=1, wrong=-3, abstain=0)


def model(rng, p_P, n, abstain_below=None):
    """Samples right with chance p, stating p as the answer's probability; abstaining below a chance if asked."""
    correct = rng.random((p_P.size, n)) < p_P[:, None]
    abstained = np.zeros_like(correct)
    if abstain_below is not None:
        abstained = np.broadcast_to((p_P < abstain_below)[:, None], correct.shape).copy()
    stated = np.where(abstained, np.nan, np.broadcast_to(p_P[:, None], correct.shape))
    return Decisions(correct & ~abstained, abstained, stated)


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


def read_of(rng, d: Decisions, forced: float, probe: float) -> dict:
    """What the study reads of a model (``experiments.utility.read_model``), from planted decisions."""
    rows = [
        {"correct": bool(c), "abstained": bool(a), "p": None if np.isnan(p) else float(p)}
        for c, a, p in zip(d.correct_PN.ravel(), d.abstained_PN.ravel(), d.p_PN.ravel())
    ]
    return {
        "rows": rows,
        "forced_deliberate": (rng.random(d.correct_PN.shape[0]) < forced).tolist(),
        "probe": {"accuracy": probe, "shuffled_accuracy": 0.3, "majority": 0.25, "n_test": 40},
    }


def test_utility_result__round_trips_through_its_json(tmp_path):
    """A result the analysis computes from planted models (the base model, two seeds per arm, two splits) comes
    back equal from its JSON, and what is written to disk reads back and writes again byte for byte."""
    rng = np.random.default_rng(1)
    p = rng.random(60)
    k_P = np.arange(60) % 5 + 1
    reads = {"base": read_of(rng, model(rng, p, 4), 0.5, 0.6)}
    reads |= {f"{DIRECT}/seed{s}": read_of(rng, model(rng, p, 4, abstain_below=0.75), 0.5, 0.6) for s in (0, 1)}
    reads |= {f"{SYMMETRIC}/seed{s}": read_of(rng, model(rng, p, 4), 0.7, 0.8) for s in (0, 1)}
    r = analyse(
        reads,
        k_P,
        3,
        preset="test",
        band="medium",
        seeds=(0, 1),
        eval_samples=4,
        payoffs=(1.0, -3.0, 0.0),
        level=0.99,
        n_boot=50,
    )
    assert list(r.splits) == ["in distribution", "beyond"] and len(r.thresholds_fitted) == 2
    assert set(r.features) == {
        "forced-deliberate accuracy, in distribution",
        "forced-deliberate accuracy, beyond",
        "computation probe accuracy",
    }
    assert UtilityResult.from_json(r.to_json()) == r
    write_json(tmp_path / "results.json", r.to_json())
    back = UtilityResult.from_json(read_json(tmp_path / "results.json"))
    assert json.dumps(back.to_json()) == json.dumps(r.to_json())
    write_json(tmp_path / "again.json", back.to_json())
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "results.json").read_bytes()
    write_report(RewardStudyLayout(tmp_path), back)  # the report renders the typed result read back
    assert r.verdict in (tmp_path / "report.md").read_text()
