"""Per-example difficulty metrics, and how well a metric ranks examples by their value.

Every score is per example and plain data: pass rates and learnability from sampled
completions or the GRPO ledger; teacher-forced loss, EL2N, correctness and GraNd from a
model's logits on a target completion; forgetting events from a sequence of
presentations. ``spearman`` and ``quadratic_fit`` relate a metric to a measured value.

Sequence conventions (as in Hugging Face): ``labels_BL`` is aligned with the input ids,
-100 marks positions that are not targets (prompt, padding), and the logits at position
t predict the label at t + 1. A sequence's score averages over its target tokens.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from probes.padding import NOT_TARGET


def learnability(pass_rate: np.ndarray | float) -> np.ndarray:
    """p(1 - p): the variance of a 0/1 reward, which bounds the expected policy improvement.

    It is 0 for problems always or never solved (no group-relative signal) and peaks at 1/4."""
    p = np.asarray(pass_rate, dtype=float)
    return p * (1 - p)


@dataclasses.dataclass(frozen=True)
class TeacherForced:
    """Per-sequence scores of a model on given target completions."""

    loss: Float[Tensor, " B"]
    """Mean negative log-likelihood of the target tokens."""
    el2n: Float[Tensor, " B"]
    """Mean over target tokens of ||softmax(logits_t) - onehot(y_t)||_2 (0 = certain and right, at most sqrt 2)."""
    correct: Bool[Tensor, " B"]
    """The argmax is the target at every target token."""


def teacher_forced(logits_BLV: Float[Tensor, "B L V"], labels_BL: Int[Tensor, "B L"]) -> TeacherForced:
    """Loss, EL2N and all-tokens-correct of each sequence (see the module docstring for alignment)."""
    logits_BTV, labels_BT = logits_BLV[:, :-1].float(), labels_BL[:, 1:]
    mask_BT = labels_BT != NOT_TARGET
    safe_BT = labels_BT.clamp(min=0)
    logp_BTV = torch.log_softmax(logits_BTV, -1)
    nll_BT = -logp_BTV.gather(-1, safe_BT[..., None]).squeeze(-1)
    onehot_BTV = torch.nn.functional.one_hot(safe_BT, logits_BTV.shape[-1]).float()
    err_BT = (logp_BTV.exp() - onehot_BTV).norm(dim=-1)
    hit_BT = logits_BTV.argmax(-1) == safe_BT
    n_B = mask_BT.sum(1).clamp(min=1)
    return TeacherForced(
        loss=(nll_BT * mask_BT).sum(1) / n_B,
        el2n=(err_BT * mask_BT).sum(1) / n_B,
        correct=(hit_BT | ~mask_BT).all(1),
    )


def grand(model: torch.nn.Module, ids_BL: Int[Tensor, "B L"], labels_BL: Int[Tensor, "B L"]) -> Float[Tensor, " B"]:
    """GraNd: the L2 norm of the gradient of each sequence's mean target-token loss over all
    trainable parameters, one backward pass per sequence (gradients are left cleared).

    Right padding is harmless: with causal attention later positions never reach earlier ones.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    norms = []
    for ids_1L, labels_1L in zip(ids_BL.split(1), labels_BL.split(1)):
        loss = teacher_forced(model(input_ids=ids_1L).logits, labels_1L).loss.sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        norms.append(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
    return torch.stack(norms).detach()


def forgetting_events(correct_NE: Bool[np.ndarray, "N E"]) -> Float[np.ndarray, " N"]:
    """Correct -> incorrect flips between consecutive presentations, per example; inf for an
    example never correct at any presentation (never learned ranks as the most forgettable)."""
    c = np.asarray(correct_NE, dtype=bool)
    flips = (c[:, :-1] & ~c[:, 1:]).sum(1).astype(float)
    return np.where(c.any(1), flips, math.inf)


def ledger_visits(ledger: Sequence[Mapping]) -> dict[str, list[float]]:
    """Per prompt, the success rate of each sampled group in step order (one GRPO run's ledger)."""
    visits: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in ledger:
        visits[row["pid"]].append((row["step"], row["successes"] / row["group_size"]))
    return {pid: [rate for _, rate in sorted(v, key=lambda sv: sv[0])] for pid, v in visits.items()}


def ledger_scores(ledgers: Sequence[Sequence[Mapping]], solved_at: float = 0.5) -> dict[str, dict[str, float]]:
    """Per prompt, over the GRPO runs that visited it (each run's ledger separately):

    * ``learnability``: mean over visits of p_v(1 - p_v), p_v the visit's group success rate
      (the group-relative signal the prompt actually gave);
    * ``pass_rate_end``: success rate of its last visit, averaged over runs;
    * ``forgetting``: flips from solved (p_v >= ``solved_at``) to unsolved between consecutive
      visits, averaged over runs; inf when some run never solved it.
    """
    per_pid: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for ledger in ledgers:
        for pid, rates in ledger_visits(ledger).items():
            solved = np.array(rates)[None] >= solved_at
            per_pid[pid].append((float(learnability(rates).mean()), rates[-1], float(forgetting_events(solved)[0])))
    return {
        pid: dict(zip(("learnability", "pass_rate_end", "forgetting"), np.mean(runs, axis=0).tolist()))
        for pid, runs in per_pid.items()
    }


def memorization(in_RN: Bool[np.ndarray, "R N"], score_RN: Float[np.ndarray, "R N"]) -> Float[np.ndarray, " N"]:
    """Mean score over runs trained with the example minus over runs without it (nan if either is empty)."""
    inc, score = np.asarray(in_RN, dtype=bool), np.asarray(score_RN, dtype=float)
    n_in, n_out = inc.sum(0), (~inc).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_in > 0) & (n_out > 0), (score * inc).sum(0) / n_in - (score * ~inc).sum(0) / n_out, np.nan)
