import pytest

from probes.matched_gain import first_reaching, gain_curve, largest_common_gain, match


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
