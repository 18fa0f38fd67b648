"""Calibration and decision statistics of stated confidences: ECE, Brier, AUROC, reliability bins,
confidence-weighted voting, and the utility of answering or abstaining at a threshold.

Pure functions of arrays. ``q`` is a stated confidence in [0, 1] per answer, ``correct`` whether the
answer was right. ECE uses ``N_BINS`` equal-width bins of q, [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]
(the last closed): with confidences stated in tenths, 0.9 and 1.0 share the top bin.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np
from jaxtyping import Bool, Float

from probes.stats import weighted_auroc

N_BINS = 10


def _bins(q_N: Float[np.ndarray, " N"], n_bins: int) -> np.ndarray:
    # a stated 0.3 lands in [0.3, 0.4) despite float error (0.3 * 10 = 2.9999...)
    return np.clip(np.floor(np.asarray(q_N, dtype=float) * n_bins + 1e-9), 0, n_bins - 1).astype(int)


@dataclasses.dataclass(frozen=True)
class ReliabilityBin:
    lo: float
    hi: float
    n: int
    confidence: float
    """Mean stated confidence in the bin (nan when empty)."""
    accuracy: float
    """Share right in the bin (nan when empty)."""


def reliability_bins(
    q_N: Float[np.ndarray, " N"], correct_N: Bool[np.ndarray, " N"], n_bins: int = N_BINS
) -> list[ReliabilityBin]:
    """The reliability diagram's points: per equal-width bin of q, its mean q and its accuracy."""
    q, c, b = np.asarray(q_N, dtype=float), np.asarray(correct_N, dtype=float), _bins(q_N, n_bins)
    out = []
    for i in range(n_bins):
        sel = b == i
        n = int(sel.sum())
        out.append(
            ReliabilityBin(
                i / n_bins,
                (i + 1) / n_bins,
                n,
                float(q[sel].mean()) if n else np.nan,
                float(c[sel].mean()) if n else np.nan,
            )
        )
    return out


def ece(q_N: Float[np.ndarray, " N"], correct_N: Bool[np.ndarray, " N"], n_bins: int = N_BINS) -> float:
    """Expected calibration error: the bins' |accuracy - mean confidence|, weighted by their share of answers."""
    bins, n = reliability_bins(q_N, correct_N, n_bins), len(q_N)
    return float(sum(b.n / n * abs(b.accuracy - b.confidence) for b in bins if b.n)) if n else float("nan")


def brier(q_N: Float[np.ndarray, " N"], correct_N: Bool[np.ndarray, " N"]) -> float:
    """Mean squared error of the stated confidence against correctness (0 best, 1 worst)."""
    q, c = np.asarray(q_N, dtype=float), np.asarray(correct_N, dtype=float)
    return float(np.mean((q - c) ** 2)) if q.size else float("nan")


def auroc(q_N: Float[np.ndarray, " N"], correct_N: Bool[np.ndarray, " N"]) -> float:
    """P(q of a right answer > q of a wrong one), ties counting half; nan without both kinds."""
    c = np.asarray(correct_N, dtype=float)
    return float(weighted_auroc(np.asarray(q_N, dtype=float)[:, None], c, 1.0 - c)[0])


def calibration_summary(q: Sequence[float | None], correct: Sequence[bool]) -> dict[str, float]:
    """ECE, Brier and AUROC over the answers that state a confidence (q not None), and the share that do."""
    stated = np.array([v is not None for v in q], dtype=bool)
    q_N = np.array([v for v in q if v is not None], dtype=float)
    c_N = np.asarray(correct, dtype=bool)[stated] if len(q) else np.zeros(0, bool)
    return {
        "ece": ece(q_N, c_N),
        "brier": brier(q_N, c_N),
        "auroc": auroc(q_N, c_N) if q_N.size else float("nan"),
        "stated": float(stated.mean()) if len(q) else float("nan"),
    }


def weighted_vote(answers: Sequence[Hashable], weights: Sequence[float]) -> Hashable:
    """The answer with the largest summed weight (plain majority voting: equal weights); ties go to the
    answer seen first, so the outcome is a function of the samples alone."""
    total: dict[Hashable, float] = defaultdict(float)
    for a, w in zip(answers, weights):
        total[a] += w
    return max(total, key=lambda a: total[a])  # max keeps the first of equal keys, in insertion order


@dataclasses.dataclass(frozen=True)
class Utility:
    """Payoffs of one decision: answer right, answer wrong, or abstain."""

    right: float = 1.0
    wrong: float = -3.0
    abstain: float = 0.0

    def __post_init__(self) -> None:
        if not self.wrong < self.abstain < self.right:
            raise ValueError(f"Utility: need wrong < abstain < right, got {self}")

    @property
    def threshold(self) -> float:
        """The probability of being right above which answering has the larger expected utility."""
        return (self.abstain - self.wrong) / (self.right - self.wrong)

    def of(self, answered_N: Bool[np.ndarray, " N"], correct_N: Bool[np.ndarray, " N"]) -> Float[np.ndarray, " N"]:
        """Per decision, its payoff (``correct`` is ignored where the model abstained)."""
        answered, correct = np.asarray(answered_N, dtype=bool), np.asarray(correct_N, dtype=bool)
        return np.where(answered, np.where(correct, self.right, self.wrong), self.abstain)


def best_threshold(p_N: Float[np.ndarray, " N"], correct_N: Bool[np.ndarray, " N"], utility: Utility) -> float:
    """The threshold t (answer iff p >= t) with the largest mean utility on these answers: fitted on one
    split, used on another. Candidates are the distinct p values and just above 1 (abstain always); of
    equally good ones, the lowest."""
    order = np.argsort(np.asarray(p_N, dtype=float), kind="stable")
    p = np.asarray(p_N, dtype=float)[order]
    gain = np.where(np.asarray(correct_N, dtype=bool)[order], utility.right, utility.wrong) - utility.abstain
    answering_from = np.append(np.cumsum(gain[::-1])[::-1], 0.0)  # [i]: summed gain of answering p[i:]
    starts = np.append(np.flatnonzero(np.r_[True, p[1:] != p[:-1]]), p.size)
    i = int(starts[np.argmax(answering_from[starts])])
    return float(p[i]) if i < p.size else float(np.nextafter(1.0, 2.0))
