"""Reliability of seed-averaged measurements: Spearman-Brown, ceilings, disattenuation, and the
permutation p-value of Spearman's rho, on synthetic data whose reliability is known."""

import math

import numpy as np
import pytest

from probes.stats import disattenuated, paired_spearman_difference, reliability, spearman_brown, spearman_p


def parallel(rng, n: int, m: int, noise_var: float) -> tuple[np.ndarray, np.ndarray]:
    """A true value per example and m seeds of it with independent noise: Pearson reliability 1 / (1 + noise_var)."""
    true = rng.normal(size=n)
    return true, true + rng.normal(scale=math.sqrt(noise_var), size=(m, n))


def spearman_of_pearson(r: float) -> float:
    """Spearman's rho of a bivariate normal pair with Pearson correlation r."""
    return 6 / math.pi * math.asin(r / 2)


def test_spearman_brown__known_values():
    assert spearman_brown(0.84, 2) == pytest.approx(2 * 0.84 / 1.84)
    assert math.sqrt(spearman_brown(0.84, 2)) == pytest.approx(0.955, abs=1e-3)  # the worked example
    assert spearman_brown(0.5, 1) == 0.5 and spearman_brown(1.0, 7) == 1.0
    assert math.isnan(spearman_brown(-1.0, 2)) and math.isnan(spearman_brown(-0.6, 3))  # a resample can give these


def test_reliability__recovers_a_planted_reliability_and_its_ceiling_caps_an_exact_predictor():
    rng = np.random.default_rng(0)
    true, values = parallel(rng, n=4000, m=3, noise_var=0.25)  # Pearson reliability 0.8 per seed
    rel = reliability(values, n_boot=200)
    single = spearman_of_pearson(0.8)
    assert rel.m == 3 and rel.single.mean == pytest.approx(single, abs=0.02)
    assert rel.of_mean.mean == pytest.approx(spearman_brown(rel.single.mean, 3))
    # The ceiling is what the true value itself reaches against the 3-seed mean.
    reached = np.corrcoef(np.argsort(np.argsort(true)), np.argsort(np.argsort(values.mean(0))))[0, 1]
    assert rel.ceiling.mean == pytest.approx(reached, abs=0.02)


def test_disattenuated__an_exact_predictor_scores_one_and_a_noisy_one_its_true_correlation():
    rng = np.random.default_rng(1)
    true, values = parallel(rng, n=4000, m=2, noise_var=0.5)
    assert disattenuated(true, values, n_boot=100).mean == pytest.approx(1.0, abs=0.03)
    proxy = true + rng.normal(scale=1.0, size=true.size)  # Pearson 1 / sqrt(2) with the true value
    est = disattenuated(proxy, values, n_boot=100)
    assert est.mean == pytest.approx(spearman_of_pearson(1 / math.sqrt(2)), abs=0.04)
    assert est.ci95[0] < est.mean < est.ci95[1]


def test_reliability__degenerate_inputs_are_nan():
    assert math.isnan(reliability(np.ones((1, 10))).single.mean)
    assert math.isnan(disattenuated([1.0, 2.0], np.ones((2, 2))).mean)


def test_spearman_p__keeps_its_level_under_the_null_and_finds_a_real_association():
    rng = np.random.default_rng(2)
    ps = [spearman_p(rng.normal(size=20), rng.normal(size=20), n_perm=199, seed=i) for i in range(400)]
    assert np.mean(np.array(ps) <= 0.05) == pytest.approx(0.05, abs=0.03)
    x = rng.normal(size=40)
    assert spearman_p(x, x + rng.normal(scale=0.5, size=40), n_perm=199) == pytest.approx(1 / 200)


def test_paired_spearman_difference__finds_a_planted_gap_and_none_between_equals():
    rng = np.random.default_rng(3)
    y = rng.normal(size=500)
    strong, weak = y + rng.normal(scale=0.3, size=500), y + rng.normal(scale=2.0, size=500)
    gap = paired_spearman_difference(strong, weak, y, n_boot=300)
    assert gap.ci95[0] > 0.3 and gap.mean > 0.4
    same = paired_spearman_difference(weak, weak + 1e-9 * rng.normal(size=500), y, n_boot=300)
    assert abs(same.mean) < 1e-3 and same.ci95[0] <= 0 <= same.ci95[1] + 1e-3
