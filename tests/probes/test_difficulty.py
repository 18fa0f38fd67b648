import math
import types

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from probes.difficulty import (
    forgetting_events,
    grand,
    learnability,
    ledger_scores,
    ledger_visits,
    memorization,
    teacher_forced,
)
from probes.stats import binned_means, quadratic_fit, spearman

V, BIG, X = 3, 20.0, -100


def onehot_logits(rows: list[list[int]], v: int = V) -> torch.Tensor:
    """[B, L, v] logits that put BIG on the given token at each position (None -> all zero)."""
    out = torch.zeros(len(rows), len(rows[0]), v)
    for b, row in enumerate(rows):
        for t, tok in enumerate(row):
            if tok is not None:
                out[b, t, tok] = BIG
    return out


def test_learnability__zero_at_ends_quarter_at_half_and_elementwise():
    assert learnability(0.0) == 0.0 and learnability(1.0) == 0.0 and learnability(0.5) == 0.25
    np.testing.assert_allclose(learnability(np.array([0.0, 0.1, 0.5, 1.0])), [0.0, 0.09, 0.25, 0.0])


def test_teacher_forced__logits_at_t_predict_label_at_t_plus_1():
    # targets 1 (at pos 1) and 2 (at pos 2): logits at pos 0 predict 1, at pos 1 predict 2; pos 2 unused.
    tf = teacher_forced(onehot_logits([[1, 2, 0]]), torch.tensor([[X, 1, 2]]))
    assert tf.loss.item() == pytest.approx(0.0, abs=1e-6) and tf.el2n.item() == pytest.approx(0.0, abs=1e-6)
    assert tf.correct.tolist() == [True]
    shifted = teacher_forced(onehot_logits([[0, 1, 2]]), torch.tensor([[X, 1, 2]]))  # "logits at t predict t"
    assert shifted.loss.item() == pytest.approx(BIG, abs=1e-3) and shifted.correct.tolist() == [False]


def test_teacher_forced__confidently_wrong_token_has_el2n_sqrt2():
    tf = teacher_forced(onehot_logits([[0, 0, 0], [1, 0, 0]]), torch.tensor([[X, X, 2], [X, 1, 2]]))
    # row 0: one target, predicted 0 instead of 2. row 1: one right (~0) and one wrong (sqrt 2) target.
    np.testing.assert_allclose(tf.el2n.numpy(), [math.sqrt(2), math.sqrt(2) / 2], atol=1e-6)
    np.testing.assert_allclose(tf.loss.numpy(), [BIG, BIG / 2], atol=1e-3)
    assert tf.correct.tolist() == [False, False]


@pytest.mark.parametrize("v", [2, 3, 5])
def test_teacher_forced__uniform_gives_log_v_and_el2n_sqrt_1_minus_1_over_v(v):
    tf = teacher_forced(torch.zeros(1, 3, v), torch.tensor([[X, 1, v - 1]]))
    assert tf.loss.item() == pytest.approx(math.log(v), rel=1e-6)
    assert tf.el2n.item() == pytest.approx(math.sqrt(1 - 1 / v), rel=1e-6)


def test_teacher_forced__non_target_positions_are_ignored():
    labels = torch.tensor([[X, X, 2, X]])
    base = teacher_forced(onehot_logits([[None, 2, None, None]]), labels)
    # change the logits at every position that predicts a -100 (pos 0, 2) and the last one (pos 3),
    # and the label at pos 0, which nothing predicts.
    other = teacher_forced(onehot_logits([[0, 2, 1, 1]]), torch.tensor([[1, X, 2, X]]))
    for a, b in ((base.loss, other.loss), (base.el2n, other.el2n)):
        assert a.item() == pytest.approx(b.item(), abs=1e-6)
    assert base.correct.tolist() == other.correct.tolist() == [True]
    assert base.loss.item() == pytest.approx(0.0, abs=1e-6)


def test_teacher_forced__mean_over_two_target_tokens():
    logits = onehot_logits([[None, 1, None, None]])  # pos 0 uniform (target 2), pos 1 right (target 1)
    tf = teacher_forced(logits, torch.tensor([[X, 2, 1, X]]))
    assert tf.loss.item() == pytest.approx(math.log(V) / 2, abs=1e-6)
    assert tf.el2n.item() == pytest.approx(math.sqrt(1 - 1 / V) / 2, abs=1e-6)


class PositionWise(torch.nn.Module):
    """Embedding + linear: each position's logits depend on its own token only (no mixing)."""

    def __init__(self, v: int = 4, d: int = 5, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb, self.lin = torch.nn.Embedding(v, d), torch.nn.Linear(d, v)

    def forward(self, input_ids):
        return types.SimpleNamespace(logits=self.lin(self.emb(input_ids)))


def test_grand__equals_manual_autograd_norm_per_row():
    model = PositionWise()
    ids = torch.tensor([[0, 1, 2, 3], [3, 3, 1, 0]])
    labels = torch.tensor([[X, 1, 2, 3], [X, X, 1, X]])
    want = []
    for b in range(2):
        logits = model(ids[b : b + 1]).logits[0]
        ts = [t for t in range(3) if labels[b, t + 1] != X]
        loss = torch.nn.functional.cross_entropy(logits[ts], labels[b, [t + 1 for t in ts]])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        want.append(math.sqrt(sum(float((g**2).sum()) for g in grads)))
    got = grand(model, ids, labels)
    assert got.shape == (2,) and not got.requires_grad
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_grand__confident_right_row_has_much_smaller_norm_than_wrong_row():
    model = PositionWise(v=3, d=3)
    with torch.no_grad():  # logits at t = BIG * onehot(ids[t]): each token predicts itself next
        model.emb.weight.copy_(torch.eye(3))
        model.lin.weight.copy_(BIG * torch.eye(3))
        model.lin.bias.zero_()
    norms = grand(model, torch.tensor([[1, 1, 1], [1, 2, 0]]), torch.tensor([[X, 1, 1], [X, 2, 0]]))
    assert norms[1] > 1.0 and norms[0] < 1e-3 * norms[1]


def test_grand__right_padding_does_not_change_value_and_grads_stay_clear():
    # The model is position-wise, so padding cannot reach earlier positions (as with causal attention).
    model = PositionWise()
    alone = grand(model, torch.tensor([[1, 2, 3]]), torch.tensor([[X, 2, 3]]))
    padded = grand(
        model, torch.tensor([[1, 2, 3, 0, 0], [2, 1, 0, 3, 3]]), torch.tensor([[X, 2, 3, X, X], [X, 1, 0, 3, 3]])
    )
    assert padded[0].item() == pytest.approx(alone.item(), rel=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_forgetting_events__counts_correct_to_incorrect_flips_inf_if_never_correct():
    assert forgetting_events(np.array([[1, 0, 1, 0]])).tolist() == [2.0]
    np.testing.assert_array_equal(forgetting_events(np.array([[0, 0, 0], [0, 1, 1], [1, 1, 0]])), [math.inf, 0, 1])


def row(pid, step, successes, group_size=4):
    return {"pid": pid, "step": step, "successes": successes, "group_size": group_size}


def test_ledger_visits__sorts_rows_by_step_per_prompt():
    got = ledger_visits([row("a", 2, 3), row("b", 1, 0, 2), row("a", 0, 1), row("a", 1, 4)])
    assert got == {"a": [0.25, 1.0, 0.75], "b": [0.0]}


def test_ledger_scores__one_run():
    # rates in step order: 0.25, 0.75, 0.5, 0.25 -> solved (>= 0.5): F, T, T, F -> one flip
    got = ledger_scores([[row("a", 3, 1), row("a", 0, 1), row("a", 2, 2), row("a", 1, 3)]])
    assert got["a"]["learnability"] == pytest.approx((0.1875 + 0.1875 + 0.25 + 0.1875) / 4)
    assert got["a"]["pass_rate_end"] == 0.25 and got["a"]["forgetting"] == 1.0


def test_ledger_scores__averages_runs_and_never_solved_gives_inf():
    run1 = [row("a", 0, 2), row("a", 1, 0), row("b", 0, 1)]
    run2 = [row("a", 5, 4), row("b", 0, 4), row("c", 0, 2)]
    got = ledger_scores([run1, run2])
    assert got["a"] == pytest.approx({"learnability": (0.125 + 0.0) / 2, "pass_rate_end": 0.5, "forgetting": 0.5})
    assert got["b"]["forgetting"] == math.inf and got["b"]["pass_rate_end"] == pytest.approx(0.625)
    assert got["c"] == pytest.approx({"learnability": 0.25, "pass_rate_end": 0.5, "forgetting": 0.0})


def test_memorization__mean_in_minus_mean_out_nan_if_always_or_never_in():
    inc = np.array([[1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 1, 0], [0, 1, 1, 0]], dtype=bool)
    score = np.array([[0.9, 0.5, 1, 1], [0.7, 0.1, 2, 2], [0.2, 0.6, 3, 3], [0.4, 0.3, 4, 4]])
    got = memorization(inc, score)
    np.testing.assert_allclose(got[:2], [0.8 - 0.3, 0.2 - 0.55])
    assert np.isnan(got[2]) and np.isnan(got[3])


def test_spearman__monotone_gives_plus_or_minus_one():
    x = np.linspace(-2, 2, 9)
    up, down = spearman(x, x**3), spearman(x, -(x**3))
    assert (up.mean, up.ci95, up.n) == (pytest.approx(1.0), pytest.approx((1.0, 1.0)), 9)
    assert down.mean == pytest.approx(-1.0)


def test_spearman__drops_nan_pairs_ranks_inf_highest_and_degenerate_gives_nan():
    kept = spearman([1, 2, math.nan, 3, 4], [1, math.nan, 5, 9, 16])
    assert kept.n == 3 and kept.mean == pytest.approx(1.0)
    few = spearman([1, 2, math.nan], [1, 2, 3])
    assert math.isnan(few.mean) and few.n == 2
    assert math.isnan(spearman([1, 2, 3, 4], [5, 5, 5, 5]).mean)
    assert spearman([1, 2, math.inf], [1, 2, 3]).mean == pytest.approx(1.0)
    assert spearman([math.inf, 1, 2], [1, 2, 3]).mean == pytest.approx(-0.5)


def test_spearman__matches_scipy_with_ties_and_ci_contains_rho():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 30)
    y = x + rng.integers(0, 3, 30)
    assert spearman(x, y).mean == pytest.approx(spearmanr(x, y)[0], abs=1e-12)
    x = rng.normal(size=40)
    est = spearman(x, x + rng.normal(size=40))
    assert est.ci95[0] < est.mean < est.ci95[1] and est.n == 40


def test_quadratic_fit__exact_parabola_recovers_curvature_and_vertex():
    x = np.linspace(0, 1, 20)
    fit = quadratic_fit(x, -((x - 0.3) ** 2))
    assert fit.curvature.mean == pytest.approx(-1.0) and fit.vertex.mean == pytest.approx(0.3)
    assert fit.coef == pytest.approx((-0.09, 0.6, -1.0), abs=1e-9)
    assert fit.curvature.ci95 == pytest.approx((-1.0, -1.0), abs=1e-6)
    assert fit.vertex.ci95 == pytest.approx((0.3, 0.3), abs=1e-6) and fit.curvature.n == 20


def test_quadratic_fit__linear_has_curvature_near_zero_and_too_few_points_nan():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 40)
    fit = quadratic_fit(x, 2 * x + 1 + 0.01 * rng.normal(size=40))
    assert abs(fit.curvature.mean) < 0.05 and not fit.curvature.excludes(0.0)
    small = quadratic_fit([0, 1, 2], [0, 1, 4])
    assert math.isnan(small.curvature.mean) and math.isnan(small.vertex.mean) and small.curvature.n == 3


def test_binned_means__half_open_bins_last_closed_empty_bin_nan():
    x = [0.0, 0.2, 0.5, 0.9, 1.0, 1.5]
    y = [1.0, 3.0, 10.0, 20.0, 30.0, 99.0]
    got = binned_means(x, y, [0.0, 0.5, 0.7, 1.0])
    assert [(b["lo"], b["hi"], b["n"]) for b in got] == [(0.0, 0.5, 2), (0.5, 0.7, 1), (0.7, 1.0, 2)]
    assert [b["mean"] for b in got] == pytest.approx([2.0, 10.0, 25.0])
    empty = binned_means([0.1, 0.9], [1.0, 2.0], [0.0, 0.4, 0.6, 1.0])[1]
    assert empty["n"] == 0 and math.isnan(empty["mean"])
