"""The held-out evaluation's standard error."""

import numpy as np
import pytest

from experiments.harness.rollout import sampling_se


def test_sampling_se__matches_the_spread_of_repeated_evaluations():
    """Per-problem success probabilities p_i, n draws each: the SE estimated from one evaluation
    agrees with the standard deviation of the accuracy over many repeated evaluations."""
    rng = np.random.default_rng(0)
    p = rng.choice([0.0, 1.0, 0.5, 0.2, 0.9], size=480)
    n = 8
    accs, ses = [], []
    for _ in range(400):
        rate = rng.binomial(n, p) / n
        accs.append(rate.mean())
        ses.append(sampling_se(rate, n))
    assert np.mean(ses) == pytest.approx(np.std(accs), rel=0.1)
    assert 0.004 < np.mean(ses) < 0.007  # 8 samples x 480 problems: about 0.005
    assert sampling_se(np.array([1.0, 0.0]), 1) == pytest.approx(np.sqrt(0.25 / 2))
