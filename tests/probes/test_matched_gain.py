import pytest

from probes.matched_gain import GainCurve, bisect, common_target, first_reaching, gain_curve, quorum


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


def curves_of(best: dict[str, float]) -> tuple[dict[str, GainCurve], dict[str, str]]:
    return {name: GainCurve((0, 10), (0.0, g)) for name, g in best.items()}, {name: name.split("/")[0] for name in best}


def test_quorum__all_but_one_seed_and_at_least_the_minimum():
    assert [quorum(n, 3) for n in (2, 3, 4, 5, 8)] == [2, 3, 3, 4, 7]


def test_common_target__one_weak_seed_does_not_silence_its_band():
    """Five seeds per band; one easy seed barely moves (0.018, under the floor): the target is easy's 4th-best
    gain, not zero, and medium's reach is its 4th-best too."""
    best = {f"easy/{i}": g for i, g in enumerate((0.069, 0.031, 0.042, 0.018, 0.069))}
    best |= {f"medium/{i}": g for i, g in enumerate((0.20, 0.15, 0.18, 0.30, 0.16))}
    best |= {f"hard/{i}": g for i, g in enumerate((0.01, -0.05, 0.0, 0.02, -0.01))}  # never improves
    t = common_target(*curves_of(best), floor=0.027, min_runs=3)
    assert t.reach == pytest.approx({"easy": 0.031, "medium": 0.16, "hard": -0.01})
    assert t.matchable == ("easy", "medium") and t.gain == pytest.approx(0.031)


def test_common_target__two_weak_seeds_do_and_without_a_matchable_band_the_best_reach_is_reported():
    best = {f"easy/{i}": g for i, g in enumerate((0.069, 0.010, 0.042, 0.018, 0.069))}
    best |= {f"medium/{i}": g for i, g in enumerate((0.20, 0.15, 0.18, 0.30, 0.16))}
    t = common_target(*curves_of(best), floor=0.027, min_runs=3)
    assert t.matchable == ("medium",) and t.gain == pytest.approx(0.16)
    none = common_target(*curves_of(best), floor=0.5, min_runs=3)
    assert none.matchable == () and none.gain == pytest.approx(0.16)


def test_bisect__pins_the_first_crossing_on_a_synthetic_gain_curve():
    """Stored checkpoints every 10 steps; the true gain rises 0.01 per step. Bisection measures whole
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
    assert all(10 < s < 20 and float(s).is_integer() for s in measured) and len(measured) <= 4
    assert bisect(refined, 0.134, 0.005, lambda s: pytest.fail("re-measured a known step")) == refined


def test_bisect__recovers_the_fraction_of_an_overshooting_update_on_a_linear_path():
    """One update moves the gain by 0.04 against a tolerance far smaller: whole steps cannot hit 0.095. Along a
    linear path (gain 0.04 per update, as a blend of two checkpoints gives when accuracy is linear in the
    weights) bisecting inside the update recovers the exact crossing, step 2 + 3/8."""
    measured = []

    def measure(step):
        measured.append(step)
        return 0.04 * step

    curve = GainCurve((0, 10), (0.0, 0.4))
    refined = bisect(curve, target=0.095, tol=1e-9, measure=measure)
    point = first_reaching(refined, 0.095, 1e-9)
    assert point.within_tol and point.step == 2.375 and point.gain == pytest.approx(0.095)
    assert [s for s in measured if float(s).is_integer()] == [5, 2, 3]  # whole steps first
    assert [s for s in measured if not float(s).is_integer()] == [2.5, 2.25, 2.375]


def test_bisect__whole_steps_only_leaves_an_overshoot_outside_tolerance():
    curve = GainCurve((0, 10), (0.0, 0.2))
    jump = bisect(curve, 0.1, 0.01, lambda s: 0.0 if s < 7 else 0.2, max_halvings=0)
    point = first_reaching(jump, 0.1, 0.01)
    assert point.reached and point.step == 7 and not point.within_tol
    # With halvings a jump that is a true step function in the weights still cannot be hit: reported as such.
    refined = bisect(curve, 0.1, 0.01, lambda s: 0.0 if s < 6.5 else 0.2)
    stuck = first_reaching(refined, 0.1, 0.01)
    assert stuck.reached and not stuck.within_tol and 6.5 <= stuck.step <= 6.5 + 2**-8
    assert bisect(refined, 0.1, 0.01, lambda s: pytest.fail(f"re-measured at {s}")) == refined  # a rerun adds nothing
