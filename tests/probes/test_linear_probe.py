import numpy as np

from probes.linear_probe import probe


def test_probe__reads_a_planted_variable_and_the_shuffled_control_cannot():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    x = rng.normal(size=(400, 6))
    x[:, 2] += 3.0 * y  # one latent carries the class
    res = probe(x[:300], y[:300], x[300:], y[300:], seed=0)
    assert res.accuracy > 0.8 and res.shuffled_accuracy < 0.45  # Bayes accuracy here is about 0.89
    assert res.n_train == 300 and res.n_test == 100
    noise = probe(x[:300, [0, 1]], y[:300], x[300:, [0, 1]], y[300:], seed=0)  # latents that carry nothing
    assert noise.accuracy < 0.45


def test_probe__an_empty_group_scores_the_majority_class():
    y = np.array([1, 1, 1, 0])
    res = probe(np.zeros((4, 0)), y, np.zeros((4, 0)), y, seed=0)
    assert res.accuracy == res.shuffled_accuracy == res.majority == 0.75
