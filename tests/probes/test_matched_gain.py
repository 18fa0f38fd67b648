import pytest

from probes.matched_gain import (
    GainCurve,
    bisect,
    first_reaching,
    gain_curve,
    largest_common_gain,
    match,
    matchable_common_gain,
)


def rows(accs, every=10, key="eval/acc/all/sampled"):
    return [{"step": i * every, key: a} for i, a in enumerate(accs)] + [{"step": 3, "grpo/reward_mean": 0.5}]


def test_gain_curve__relative_to_step_zero_and_filtered_to_checkpoints():
    c = gain_curve(rows([0.4, 0.5, 0.7]))
    assert c.steps == (0, 10, 20) and c.gains == pytest.approx((0.0, 0.1, 0.3))
    assert gain_curve(rows([0.4, 0.5, 0.7]), steps={20}).steps == (0, 20)


def test_gain_curve__needs_a_base_row():
    with pytest.raises(ValueError, match="step-0"):
        gain_curve([{"step": 10, "eval/acc/all/sampled": 0.5}])


def test_first_reaching__first_checkpoint_within_tolerance_or_not_reached():
    c = gain_curve(rows([0.4, 0.45, 0.52, 0.6]))
    assert first_reaching(c, 0.1).step == 20
    assert first_reaching(c, 0.13, tol=0.02).step == 20
    missed = first_reaching(c, 0.5)
    assert not missed.reached and missed.step is None and missed.max_gain == pytest.approx(0.2)


def test_match__default_target_is_the_largest_gain_every_run_reaches():
    curves = {
        "easy": gain_curve(rows([0.5, 0.55, 0.56])),
        "medium": gain_curve(rows([0.4, 0.6, 0.7])),
        "hard": gain_curve(rows([0.4, 0.35, 0.3])),  # regresses
    }
    assert largest_common_gain(curves) == pytest.approx(-0.05)
    m = match({k: v for k, v in curves.items() if k != "hard"})
    assert m.target == pytest.approx(0.06)
    assert m.points["easy"].step == 20 and m.points["medium"].step == 10
    fixed = match(curves, target=0.1)
    assert not fixed.points["easy"].reached and not fixed.points["hard"].reached and fixed.points["medium"].reached


def test_matchable_common_gain__a_band_that_never_improves_does_not_lower_the_others_target():
    """Two seeds per band; best gains: easy 0.10 and 0.08, medium 0.20 and 0.15, hard 0.01 and -0.05."""
    best = {"easy/0": 0.10, "easy/1": 0.08, "medium/0": 0.20, "medium/1": 0.15, "hard/0": 0.01, "hard/1": -0.05}
    curves = {name: GainCurve((0, 10), (0.0, g)) for name, g in best.items()}
    band_of = {name: name.split("/")[0] for name in best}
    assert matchable_common_gain(curves, band_of, floor=0.03) == pytest.approx(0.08)
    assert matchable_common_gain(curves, band_of, floor=0.09) == pytest.approx(0.15)  # one easy run falls short
    assert matchable_common_gain(curves, band_of, floor=-1.0) == pytest.approx(largest_common_gain(curves))
    assert matchable_common_gain(curves, band_of, floor=0.5) == pytest.approx(-0.05)  # no band: every run's


def test_bisect__pins_the_first_crossing_on_a_synthetic_gain_curve():
    """Stored checkpoints every 10 steps; the true gain rises 0.01 per step. Bisection measures
    steps inside the first bracket only, and the matched step is the first within the tolerance."""
    true = {s: 0.01 * s for s in range(41)}
    curve = GainCurve((0, 10, 20, 30, 40), tuple(true[s] for s in (0, 10, 20, 30, 40)))
    measured = []

    def measure(step):
        measured.append(step)
        return true[step]

    refined = bisect(curve, target=0.134, tol=0.005, measure=measure)
    point = first_reaching(refined, 0.134, 0.005)
    assert point.step == 13 and point.within_tol and point.gain == pytest.approx(0.13)
    assert all(10 < s < 20 for s in measured) and len(measured) <= 4
    assert bisect(refined, 0.134, 0.005, lambda s: pytest.fail("re-measured a known step")) == refined


def test_bisect__overshoot_in_one_step_is_reported_outside_tolerance():
    curve = GainCurve((0, 10), (0.0, 0.2))
    jump = bisect(curve, 0.1, 0.01, lambda s: 0.0 if s < 7 else 0.2)
    point = first_reaching(jump, 0.1, 0.01)
    assert point.reached and point.step == 7 and not point.within_tol
