"""GRPO's pure pieces: group-relative advantages, the clipped token-level loss, KL, entropy.

Kept apart from the trainer so each can be tested on hand-made tensors.
"""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


def group_advantages(
    rewards_NG: Float[Tensor, "N G"], scale_std: bool = True, eps: float = 1e-6
) -> Float[Tensor, "N G"]:
    """Reward minus its group mean, optionally divided by the group's (unbiased) std.

    A group whose rewards are all equal carries no signal: its advantages are exactly 0.
    With std scaling, one success among G otherwise failing samples gets advantage
    (G-1)/sqrt(G) (2.47 for G = 8): the rare lucky success on a hard problem is
    reinforced strongly.
    """
    centred_NG = rewards_NG - rewards_NG.mean(-1, keepdim=True)
    if not scale_std:
        return centred_NG
    std_N1 = rewards_NG.std(-1, keepdim=True) if rewards_NG.shape[-1] > 1 else torch.zeros_like(centred_NG)
    return torch.where(std_N1 > eps, centred_NG / (std_N1 + eps), torch.zeros_like(centred_NG))


def token_logprobs(logits_BLV: Float[Tensor, "B L V"], ids_BL: Int[Tensor, "B L"]) -> Float[Tensor, "B L-1"]:
    """log p(ids[t+1] | ids[:t+1]) for every position."""
    logp_BLV = torch.log_softmax(logits_BLV[:, :-1].float(), -1)
    return logp_BLV.gather(-1, ids_BL[:, 1:, None]).squeeze(-1)


def token_entropy(logits_BLV: Float[Tensor, "B L V"]) -> Float[Tensor, "B L-1"]:
    logp_BLV = torch.log_softmax(logits_BLV[:, :-1].float(), -1)
    return -(logp_BLV.exp() * logp_BLV).sum(-1)


LossAgg = Literal["token_mean", "seq_mean", "constant"]
LOSS_AGGS: tuple[LossAgg, ...] = ("token_mean", "seq_mean", "constant")


def aggregate(x_BT: Float[Tensor, "B T"], mask_BT: Bool[Tensor, "B T"], agg: LossAgg) -> Float[Tensor, ""]:
    """Reduce per-token terms to one number, the three ways GRPO variants do it:

    * ``token_mean`` (DAPO): mean over every completion token of the batch; each token weighs the same.
    * ``seq_mean`` (original GRPO): mean over each sequence's own tokens, then over sequences; a
      token of a completion of length |o| weighs 1/|o|, so short completions get larger per-token
      updates (a length bias, one mechanism behind length collapse).
    * ``constant`` (Dr. GRPO): sum over tokens divided by (sequences x mask width), a constant per
      batch shape, so no completion's tokens are reweighted by its length.

    It is ``row_terms(...).sum() / denominator(...)``: a batch split into chunks of rows gives the same number summed
    over its chunks, each divided by the whole batch's denominator.
    """
    return row_terms(x_BT, mask_BT, agg).sum() / denominator(agg, int(mask_BT.sum()), *mask_BT.shape)


def row_terms(x_BT: Float[Tensor, "B T"], mask_BT: Bool[Tensor, "B T"], agg: LossAgg) -> Float[Tensor, " B"]:
    """Each row's share of ``aggregate``'s numerator: its masked sum (its mean for seq_mean)."""
    sum_B = (x_BT * mask_BT).sum(1)
    return sum_B / mask_BT.sum(1).clamp(min=1) if agg == "seq_mean" else sum_B


def denominator(agg: LossAgg, n_tokens: int, n_rows: int, width: int) -> int:
    """``aggregate``'s divisor for a batch of ``n_rows`` rows, ``n_tokens`` of them unmasked, padded to ``width``."""
    if agg not in LOSS_AGGS:
        raise ValueError(f"loss aggregation: unknown {agg!r}, expected one of {LOSS_AGGS}")
    return {"token_mean": max(n_tokens, 1), "seq_mean": n_rows, "constant": n_rows * width}[agg]


def clipped_surrogate(
    logp_BT: Float[Tensor, "B T"], logp_old_BT: Float[Tensor, "B T"], adv_B: Float[Tensor, " B"], clip_eps: float
) -> Float[Tensor, "B T"]:
    """PPO's clipped surrogate per token (to be maximised)."""
    ratio_BT = torch.exp(logp_BT - logp_old_BT)
    adv_B1 = adv_B[:, None]
    return torch.minimum(ratio_BT * adv_B1, ratio_BT.clamp(1 - clip_eps, 1 + clip_eps) * adv_B1)


def clipped_policy_loss(
    logp_BT: Float[Tensor, "B T"],
    logp_old_BT: Float[Tensor, "B T"],
    adv_B: Float[Tensor, " B"],
    mask_BT: Bool[Tensor, "B T"],
    clip_eps: float,
    agg: LossAgg = "token_mean",
) -> Float[Tensor, ""]:
    """PPO-clipped surrogate over completion tokens, reduced by ``aggregate``."""
    return -aggregate(clipped_surrogate(logp_BT, logp_old_BT, adv_B, clip_eps), mask_BT, agg)


def kl_k3(logp_BT: Float[Tensor, "B T"], logp_ref_BT: Float[Tensor, "B T"]) -> Float[Tensor, "B T"]:
    """Per-token KL(policy || reference) estimate exp(d) - d - 1 with d = ref - policy (>= 0)."""
    d_BT = logp_ref_BT - logp_BT
    return torch.exp(d_BT) - d_BT - 1
