"""Choosing training data by a per-example score: pruning by difficulty, and a student's filter of refinements.

* ``keep``: the rows a pruning policy keeps (highest scores, lowest, or a random subset), ties broken at
  random so that a coarse score (k, forgetting counts) does not keep rows in dataset order.
* ``ifd`` and ``reverse_ifd``: Selective Reflection-Tuning's instruction-following difficulty,
  IFD = ppl(A | Q) / ppl(A), and its reverse, r-IFD = ppl(Q | A) / ppl(Q), from mean per-token
  negative log-likelihoods (perplexity = exp of the mean NLL). IFD < 1: the question makes the
  answer easier to predict; IFD >= 1: the model cannot relate the two. A low r-IFD: the answer
  tells the model what was asked (the sample is feasible for it to learn from).
* ``student_filter``: keep a refinement when its IFD is below 1 and its r-IFD is no higher than the
  original sample's (Li et al. 2024 choose the candidate with the lower r-IFD, among samples with IFD < 1).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from jaxtyping import Bool, Float, Int

Policy = Literal["keep_high", "keep_low", "random"]
POLICIES: tuple[Policy, ...] = ("keep_high", "keep_low", "random")


def keep(scores_N: Float[np.ndarray, " N"], fraction: float, policy: Policy, seed: int) -> Int[np.ndarray, " K"]:
    """Sorted indices of the round(fraction * N) rows ``policy`` keeps (nan scores rank as the median)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: must lie in (0, 1], got {fraction}")
    if policy not in POLICIES:
        raise ValueError(f"policy: must be one of {POLICIES}, got {policy!r}")
    s = np.asarray(scores_N, dtype=float)
    n_keep = max(1, round(fraction * s.size))
    rng = np.random.Generator(np.random.PCG64(seed))
    tiebreak = rng.permutation(s.size)
    if policy == "random":
        return np.sort(tiebreak[:n_keep])
    s = np.where(np.isnan(s), np.nanmedian(s) if np.isfinite(s).any() else 0.0, s)
    order = np.lexsort((tiebreak, -s if policy == "keep_high" else s))  # last key sorts first
    return np.sort(order[:n_keep])


def ifd(nll_answer_given_q: Float[np.ndarray, " N"], nll_answer: Float[np.ndarray, " N"]) -> Float[np.ndarray, " N"]:
    """ppl(A | Q) / ppl(A) from each sample's mean per-token NLL of the answer with and without its question."""
    return np.exp(np.asarray(nll_answer_given_q, dtype=float) - np.asarray(nll_answer, dtype=float))


def reverse_ifd(nll_q_given_answer: Float[np.ndarray, " N"], nll_q: Float[np.ndarray, " N"]) -> Float[np.ndarray, " N"]:
    """ppl(Q | A) / ppl(Q) from each sample's mean per-token NLL of the question after and without its answer."""
    return np.exp(np.asarray(nll_q_given_answer, dtype=float) - np.asarray(nll_q, dtype=float))


def student_filter(
    ifd_N: Float[np.ndarray, " N"], rifd_N: Float[np.ndarray, " N"], rifd_original_N: Float[np.ndarray, " N"]
) -> Bool[np.ndarray, " N"]:
    """Refinements the student keeps: IFD < 1 and r-IFD no higher than the original sample's."""
    return (np.asarray(ifd_N) < 1) & (np.asarray(rifd_N) <= np.asarray(rifd_original_N))
