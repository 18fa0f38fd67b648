"""The remedies study's statistics on planted numbers: a planted gain is called, a planted null is not (and keeps
its error rate), damage and activity change are what was planted."""

import numpy as np

from experiments.analysis.remedies_results import ALPHA, analyse, call, contrast, with_holm

SEEDS = (0, 1, 2, 3, 4)
KEYS = ("all", "easy", "medium", "hard")


def rows(gain: float, base: float = 0.3) -> list[dict]:
    """A run's metrics: step 0 and a final evaluation ``gain`` above it (on every band alike)."""
    ev = lambda acc: {  # noqa: E731
        **{f"eval/acc/{b}/sampled": acc for b in KEYS},
        **{f"eval/behaviour/{m}": 0.1 for m in ("lucky_success_rate", "skipped_step_rate", "trace_length")},
    }
    return [{"step": 0, **ev(base)}, {"step": 1, "grpo/reward_mean": 0.2}, {"step": 2, **ev(base + gain)}]


def read(greedy: list[bool], deliberation: float) -> dict:
    return {"greedy": greedy, "activity": {"deliberation": deliberation, "mode": 1.0}, "fve": 0.9}


def attribution(specific: float, gain: float = 0.1) -> dict:
    """A gain attribution record in which the deliberation group carries ``specific`` of the gain beyond its random
    groups (which carry none)."""
    return {
        "acc_base": 0.3,
        "matched_acc": 0.3 + gain,
        "acc_tuned": 0.3 + gain,
        "patched": {"deliberation": 0.3 + gain - specific * gain},
        "random_patched": {"deliberation": [0.4, 0.4]},
        "random_tuned": {"deliberation": [0.4, 0.4]},
        "path_agreement": 1.0,
    }


def planted(gains: dict[str, list[float]], activity: dict[str, float], shares: dict | None = None):
    runs = {arm: {s: rows(g) for s, g in zip(SEEDS, gs)} for arm, gs in gains.items()}
    reads = {"base": read([True, True, True, False], 1.0)}
    for arm in gains:  # reverse fails one of the base model's three greedy successes: damage 1/3
        reads |= {f"{arm}/seed{s}": read([arm != "reverse", True, True, True], activity[arm]) for s in SEEDS}
    attributions = {
        f"{arm}/seed{s}": None if v is None else attribution(v)
        for arm, values in (shares or {}).items()
        for s, v in zip(SEEDS, values)
    }
    return analyse(runs, reads, attributions, ["deliberation"], target=0.1, preset="test", seeds=SEEDS, not_run={})


def test_analyse__calls_a_planted_gain_useful_and_a_planted_null_no_difference():
    rng = np.random.default_rng(0)
    noise = lambda: list(rng.normal(0, 0.01, len(SEEDS)))  # noqa: E731
    gains = {
        "plain": [0.0 + e for e in noise()],
        "reverse": [0.1 + e for e in noise()],
        "shaping": [0.02 + e for e in noise()],
        "more_samples": [0.02 + e for e in noise()],
    }
    activity = {"plain": 1.0, "reverse": 1.0, "shaping": 1.5, "more_samples": 1.0}
    res = planted(gains, activity)
    calls = {c["name"]: c["call"] for c in res.useful}
    assert calls == {"reverse vs plain": "useful", "shaping vs more_samples": "no_difference"}
    assert abs(res.useful[0]["diff"] - (np.mean(gains["reverse"]) - np.mean(gains["plain"]))) < 1e-12
    assert res.arms["reverse"]["damage"]["mean"] == 1 / 3 and res.arms["plain"]["damage"]["mean"] == 0.0
    moved = {m["name"]: m["diff"] for m in res.mechanism}
    assert abs(moved["shaping vs more_samples: deliberation"] - 0.5) < 1e-6  # +50% activity planted
    assert res.worth["reverse"] == "useful" and "reverse vs plain" in res.verdict


def test_usefulness_family__keeps_its_familywise_error_rate_under_the_null():
    """Both remedies equal to their controls: any useful or harmful call is a false positive."""
    rng = np.random.default_rng(1)
    trials, false = 2000, 0
    for _ in range(trials):
        family = with_holm([contrast(n, rng.normal(0, 1, 5), rng.normal(0, 1, 5)) for n in ("a", "b")])
        false += any(call(c) != "no_difference" for c in family)
    rate = false / trials
    assert rate <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / trials), rate


def test_analyse__carried_shares_contrast_the_seeds_that_hit_and_skip_an_arm_with_too_few():
    rng = np.random.default_rng(2)
    gains = {arm: list(rng.normal(0.1, 0.01, 5)) for arm in ("plain", "reverse", "shaping", "more_samples")}
    activity = dict.fromkeys(gains, 1.0)
    shares = {
        "plain": [0.0, 0.01, -0.01, 0.02, 0.0],
        "reverse": [0.5, 0.52, 0.49, 0.51, None],  # four seeds hit: the group carries half the gain beyond random
        "shaping": [0.1, None, None, None, 0.1],  # two hit: too few for a contrast
        "more_samples": [0.0, 0.0, 0.1, 0.0, 0.0],
    }
    res = planted(gains, activity, shares)
    assert res.hits == {"plain": 5, "reverse": 4, "shaping": 2, "more_samples": 5}
    by_name = {c["name"]: c for c in res.carried}
    rev = by_name["reverse vs plain: deliberation"]
    assert abs(rev["diff"] - (np.mean([0.5, 0.52, 0.49, 0.51]) - np.mean(shares["plain"]))) < 1e-9
    assert rev["n"] == [4, 5] and rev["p_holm"] < 0.05
    assert np.isnan(by_name["shaping vs more_samples: deliberation"]["p"])
    assert np.isnan(res.per_seed["reverse"]["share/deliberation"][4])
    assert "shares carried that differ (Holm): reverse vs plain: deliberation" in res.verdict
