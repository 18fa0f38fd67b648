import math

import pytest
import torch

from experiments.harness.training.rl_loss import (
    aggregate,
    clipped_policy_loss,
    denominator,
    group_advantages,
    kl_k3,
    row_terms,
    token_logprobs,
)


def test_group_advantages__one_lucky_success_gets_a_large_advantage():
    rewards = torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0]])
    adv = group_advantages(rewards, scale_std=True)
    assert adv[0, 0].item() == pytest.approx(7 / math.sqrt(8), rel=1e-4)  # 2.47
    assert adv[0, 1:].tolist() == pytest.approx([-1 / math.sqrt(8)] * 7, rel=1e-4)
    assert adv.sum().item() == pytest.approx(0.0, abs=1e-5)
    # without std scaling the same success is worth only 7/8
    assert group_advantages(rewards, scale_std=False)[0, 0].item() == pytest.approx(7 / 8)


def test_group_advantages__zero_variance_groups_carry_no_signal():
    rewards = torch.tensor([[1.0, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]])
    for scale in (True, False):
        adv = group_advantages(rewards, scale_std=scale)
        assert adv[:2].abs().max().item() == 0.0
        assert adv[2].abs().min().item() > 0


def test_group_advantages__are_per_group():
    rewards = torch.tensor([[1.0, 0], [3.0, 1.0]])
    adv = group_advantages(rewards, scale_std=False)
    assert adv.tolist() == [[0.5, -0.5], [1.0, -1.0]]


def test_clipped_policy_loss__gradient_raises_logprob_of_positive_advantage():
    logp = torch.tensor([[-1.0, -2.0], [-1.5, -0.5]], requires_grad=True)
    mask = torch.tensor([[True, True], [True, False]])
    adv = torch.tensor([1.0, -1.0])
    loss = clipped_policy_loss(logp, logp.detach(), adv, mask, clip_eps=0.2)
    loss.backward()
    # descending the loss raises log-probs with positive advantage, lowers negative ones,
    # and ignores masked tokens; token-level mean over the 3 unmasked tokens
    assert logp.grad.flatten().tolist() == pytest.approx([-1 / 3, -1 / 3, 1 / 3, 0.0])


def test_clipped_policy_loss__clip_stops_the_gradient_beyond_the_trust_region():
    logp = torch.tensor([[0.5]], requires_grad=True)  # ratio e^0.5 = 1.65 > 1.2
    loss = clipped_policy_loss(logp, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1, dtype=torch.bool), 0.2)
    loss.backward()
    assert loss.item() == pytest.approx(-1.2)
    assert logp.grad.item() == 0.0


def test_kl_k3__zero_at_equality_positive_otherwise():
    a = torch.tensor([[-1.0, -2.0]])
    assert kl_k3(a, a).abs().max().item() == 0.0
    assert (kl_k3(a, a + torch.tensor([[0.3, -0.4]])) > 0).all()


def test_token_logprobs__match_log_softmax_of_next_token():
    logits = torch.randn(2, 5, 7)
    ids = torch.randint(0, 7, (2, 5))
    lp = token_logprobs(logits, ids)
    assert lp.shape == (2, 4)
    assert lp[1, 2].item() == pytest.approx(torch.log_softmax(logits[1, 2], -1)[ids[1, 3]].item(), rel=1e-5)
    assert aggregate(lp, torch.zeros_like(lp, dtype=torch.bool), "token_mean").item() == 0.0  # no tokens: 0


def test_aggregate__token_mean_seq_mean_and_constant_weigh_lengths_as_documented():
    """Two completions with per-token loss 1: one of length 1, one of length 3 (mask width 4)."""
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    weights = {}
    for agg in ("token_mean", "seq_mean", "constant"):
        (grad,) = torch.autograd.grad(aggregate(x, mask, agg), x)
        weights[agg] = (grad[0, 0].item(), grad[1, 0].item())  # weight of a token of the short, the long one
    assert weights["token_mean"] == pytest.approx((1 / 4, 1 / 4))  # every token the same
    assert weights["seq_mean"] == pytest.approx((1 / 2, 1 / 6))  # 1/|o|: short completions' tokens weigh more
    assert weights["constant"] == pytest.approx((1 / 8, 1 / 8))  # a constant: no length reweighting
    assert aggregate(x, mask, "token_mean").item() == pytest.approx(x[mask].mean().item())
    with pytest.raises(ValueError):
        aggregate(x, mask, "mean")


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean", "constant"])
def test_aggregate__chunks_of_rows_padded_to_their_own_longest_sum_to_the_whole_batch(agg):
    """Rows of lengths 1..6 padded to 6; split in two chunks, each cut to its own longest row, and each chunk's
    row terms divided by the whole batch's denominator: the sum is the one-batch aggregate."""
    torch.manual_seed(0)
    lengths = torch.tensor([3, 1, 6, 2, 5, 4])
    mask_BT = torch.arange(6)[None] < lengths[:, None]
    x_BT = torch.randn(6, 6)
    den = denominator(agg, int(mask_BT.sum()), 6, 6)
    parts = [torch.tensor([1, 3, 0]), torch.tensor([5, 4, 2])]  # short rows, long rows
    chunked = sum(
        row_terms(x_BT[i, : int(lengths[i].max())], mask_BT[i, : int(lengths[i].max())], agg).sum() / den for i in parts
    )
    assert chunked.item() == pytest.approx(aggregate(x_BT, mask_BT, agg).item(), rel=1e-6)
