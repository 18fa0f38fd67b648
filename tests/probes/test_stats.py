import math

import numpy as np
import pytest

from probes import stats
from probes.stats import bootstrap_mean, cosine, noise_floor, seeds_then_rows


def test_bootstrap_mean__interval_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap_mean(rng.normal(1.0, 1.0, 5))
    large = bootstrap_mean(rng.normal(1.0, 1.0, 500))
    for est in (small, large):
        assert est.ci95[0] <= est.mean <= est.ci95[1]
    assert large.ci95[1] - large.ci95[0] < small.ci95[1] - small.ci95[0]
    assert large.excludes(0.0) and not large.excludes(1.0)


def test_bootstrap_mean__covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = sum(not bootstrap_mean(rng.normal(0.0, 1.0, 30), n_boot=500, seed=i).excludes(0.0) for i in range(200))
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_mean__degenerate_inputs():
    one = bootstrap_mean([0.3])
    assert one.mean == one.ci95[0] == one.ci95[1] == 0.3
    assert math.isnan(bootstrap_mean([]).mean)


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_t_mean__keeps_its_coverage_at_a_few_seeds_where_the_percentile_bootstrap_does_not(n_seeds):
    """4000 simulated studies of n seeds each (normal, sd 1): the t interval covers the true mean about 95% of
    the time, the percentile bootstrap (which was used over seeds) visibly less."""
    rng = np.random.default_rng(n_seeds)
    draws = rng.normal(0.3, 1.0, size=(4000, n_seeds))
    t_cover = np.mean([not stats.t_mean(x).excludes(0.3) for x in draws])
    boot_cover = np.mean([not bootstrap_mean(x, n_boot=400, seed=i).excludes(0.3) for i, x in enumerate(draws[:1000])])
    assert abs(t_cover - 0.95) < 0.012  # 3.5 SE of a 4000-draw coverage
    assert boot_cover < 0.90


def test_t_mean__degenerate_inputs_and_nan():
    one = stats.t_mean([0.3, float("nan")])
    assert one.mean == one.ci95[0] == one.ci95[1] == 0.3 and one.n == 1
    assert math.isnan(stats.t_mean([]).mean) and stats.t_mean([]).n == 0
    two = stats.t_mean([0.0, 1.0])
    assert two.ci95 == pytest.approx((0.5 - 12.706 * 0.5, 0.5 + 12.706 * 0.5), abs=1e-3)  # t(1) quantile 12.706, se 0.5


def test_noise_floor__mean_abs_within_band_seed_difference():
    assert noise_floor([[0.1, 0.3], [0.0, 0.0, 0.6]]) == pytest.approx((0.2 + 0.0 + 0.6 + 0.6) / 4)


def test_cosine():
    assert cosine([1, 0], [0, 2]) == 0.0 and cosine([1, 1], [2, 2]) == pytest.approx(1.0)
    assert math.isnan(cosine([0, 0], [1, 0]))


def test_permutation_test__exact_p_values_and_their_floor():
    from probes.stats import permutation_test

    apart = permutation_test([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert apart.diff == -5 and apart.p == pytest.approx(2 / 252) and apart.min_p == pytest.approx(2 / 252)
    assert permutation_test([1, 2, 3], [4, 5, 6]).p == pytest.approx(0.1)  # 3 seeds: never below 0.1
    assert permutation_test([1, 1], [1, 1]).p == 1.0
    assert math.isnan(permutation_test([], [1.0]).p)


def test_permutation_test__keeps_its_level_under_the_null():
    from probes.stats import permutation_test

    rng = np.random.default_rng(0)
    ps = np.array([permutation_test(rng.normal(size=5), rng.normal(size=5)).p for _ in range(3000)])
    for alpha in (0.05, 0.1, 0.2):
        assert (ps <= alpha).mean() <= alpha + 0.015


def test_holm__step_down_adjustment():
    from probes.stats import holm

    adjusted = holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])


def test_spearman_gap__finds_a_planted_decoupling_and_keeps_its_level_under_the_null():
    rng = np.random.default_rng(0)
    x = rng.normal(size=150)
    gap, lo, hi = stats.spearman_gap(x, x + 0.1 * rng.normal(size=150), x, rng.normal(size=150), n_boot=400)
    assert gap > 0.8 and lo > 0.6  # tracks in one sample, independent in the other
    covered = 0
    for i in range(200):  # two samples from one population (rho 0.6): the interval should cover 0 ~95% of the time
        a, b = rng.normal(size=(2, 60)), rng.normal(size=(2, 60))
        a[1], b[1] = 0.6 * a[0] + 0.8 * a[1], 0.6 * b[0] + 0.8 * b[1]
        _, lo, hi = stats.spearman_gap(a[0], a[1], b[0], b[1], n_boot=300, seed=i)
        covered += lo <= 0 <= hi
    assert 0.88 <= covered / 200 <= 0.995, covered
    assert np.isnan(stats.spearman_gap([1, 2, 3], [1, 1, 1], [1, 2, 3], [1, 2, 3])[0])  # constant side: no rho


def test_seeds_then_rows__differences_are_paired_on_rows_and_seed_spread_widens_intervals():
    """Rows differ a lot, arms by a planted +0.1 on every row: each arm's interval is wide, the paired
    difference's narrow around 0.1; spreading an arm's seeds apart widens its interval."""
    rng = np.random.default_rng(0)
    x_P = rng.normal(0, 1, 300)
    mean = lambda v: {"mean": float(v.mean())}  # noqa: E731
    arms = {
        "a": [(x_P + rng.normal(0, 0.01, 300),) for _ in range(3)],
        "b": [(x_P + 0.1 + rng.normal(0, 0.01, 300),) for _ in range(3)],
    }
    out = seeds_then_rows(arms, np.arange(300), mean, reference="a", n_boot=300)
    b = out["b"]["mean"]
    assert (
        b["ci"][1] - b["ci"][0] > 0.15
        and b["diff"]["ci"][0] < 0.1 < b["diff"]["ci"][1]
        and b["diff"]["ci"][1] - b["diff"]["ci"][0] < 0.02
    )
    assert out["a"]["mean"]["diff"] == {"mean": 0.0, "ci": [0.0, 0.0]}
    spread = {**arms, "b": [(x_P + 0.1 + off,) for off in (-0.3, 0.0, 0.3)]}
    wide = seeds_then_rows(spread, np.arange(300), mean, reference="a", n_boot=300)["b"]["mean"]["diff"]
    assert wide["ci"][1] - wide["ci"][0] > 0.2


def _seed_accuracies(rng, p_R: np.ndarray, n_seeds: int, seed_sd: float) -> np.ndarray:
    """Held-out accuracy of n_seeds trained models: each seed shifts every problem's chance by a common amount."""
    return np.array(
        [(rng.random(p_R.size) < np.clip(p_R + rng.normal(0, seed_sd), 0, 1)).mean() for _ in range(n_seeds)]
    )


def test_welch_interval__keeps_its_level_under_the_null_where_a_seed_bootstrap_does_not():
    """Two arms with the same accuracy distribution, three seeds each, training noise (seed sd 0.06) on top of 400
    held-out problems: the Welch interval at 97.5% excludes 0 at most at its nominal 2.5% (plus simulation error);
    the two-level bootstrap over three seeds, at the same level, does so far more often (it underestimates the
    seed-level variance): why the pruning study's crossover contrasts use Welch."""
    rng = np.random.default_rng(0)
    p_R = rng.uniform(0.2, 0.9, 400)
    welch_hits = boot_hits = 0
    for i in range(400):
        a, b = (_seed_accuracies(rng, p_R, 3, 0.06) for _ in range(2))
        lo, hi = stats.welch_interval(a, b, 0.975)[1]
        welch_hits += lo > 0 or hi < 0
        if i < 150:  # the bootstrap is slower; 150 draws show its excess
            runs = {
                name: [((rng.random(400) < np.clip(p_R + rng.normal(0, 0.06), 0, 1)).astype(float),) for _ in range(3)]
                for name in "ab"
            }
            ci = seeds_then_rows(runs, np.arange(400), lambda c: {"acc": float(c.mean())}, "b", 0.975, 200, seed=i)[
                "a"
            ]["acc"]["diff"]["ci"]
            boot_hits += ci[0] > 0 or ci[1] < 0
    assert welch_hits / 400 <= 0.025 + 2 * math.sqrt(0.025 * 0.975 / 400)
    assert boot_hits / 150 > 0.05


def test_welch_interval__finds_a_planted_difference_and_handles_zero_spread():
    rng = np.random.default_rng(1)
    p_R = rng.uniform(0.2, 0.9, 400)
    better = _seed_accuracies(rng, np.clip(p_R + 0.15, 0, 1), 3, 0.02)
    d, (lo, hi) = stats.welch_interval(better, _seed_accuracies(rng, p_R, 3, 0.02), 0.975)
    assert lo > 0 and lo < d < hi and abs(d - 0.15) < 0.05
    assert stats.welch_interval([0.5, 0.5], [0.25, 0.25]) == (0.25, (0.25, 0.25))
    with pytest.raises(ValueError, match="two values a side"):
        stats.welch_interval([0.5], [0.2, 0.3])
