"""Reward variants for GRPO over parsed completions: what a completion is paid.

* ``binary``: 1 for a right answer, else 0 (the task's own reward; a stated confidence is ignored).
* ``brier`` (RLCR, Damani et al. 2025): ``c - (q - c)^2`` with c = 1[right] and q the stated confidence,
  in [-1, 1]. A bounded proper scoring rule: for a given answer, the expected reward is largest at q =
  P(right), so calibration and accuracy are optimised together.
* ``log``: ``c + ln(q)`` if right, ``c + ln(1 - q)`` if wrong, the unbounded contrast; q is clipped to
  [``LOG_FLOOR``, 1 - ``LOG_FLOOR``] because the stated levels include 0 and 1 (ln 0 = -inf), so a
  confidently wrong answer costs ln(0.01) = -4.6 where Brier charges 1.
* ``utility``: a decision's payoff (``probes.calibration.Utility``): right, wrong, or abstained.

Under ``brier`` and ``log`` a completion without a well-formed confidence is a format error and gets
the variant's floor (wrong, stated with full confidence); under every variant an abstention is not an
answer (0, or the utility's abstain payoff).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from probes.calibration import Utility

Reward = Literal["binary", "brier", "log", "utility"]
REWARDS: tuple[Reward, ...] = ("binary", "brier", "log", "utility")
LOG_FLOOR = 0.01
DEFAULT_PAYOFFS = (1.0, -3.0, 0.0)
"""Right +1, wrong -3, abstain 0: answering pays only above P(right) = 0.75."""
DEFAULT_UTILITY = Utility(*DEFAULT_PAYOFFS)


def reward(outcome: Any, variant: Reward, utility: Utility = DEFAULT_UTILITY) -> float:
    """What ``outcome`` (a parsed completion; hedged ones carry ``q`` and ``abstained``) is paid."""
    if variant not in REWARDS:
        raise ValueError(f"reward: must be one of {', '.join(REWARDS)}, got {variant!r}")
    abstained = getattr(outcome, "abstained", False)
    c = float(outcome.correct)
    if variant == "binary":
        return float(outcome.reward)  # the task's own (1 for a right answer)
    if variant == "utility":
        return utility.abstain if abstained else utility.right if c else utility.wrong
    if abstained:
        return 0.0
    q = getattr(outcome, "q", None)
    if variant == "brier":
        return c - (q - c) ** 2 if q is not None else -1.0
    if q is None:  # log
        return math.log(LOG_FLOOR)
    q = min(max(q, LOG_FLOOR), 1 - LOG_FLOOR)
    return c + math.log(q if c else 1 - q)
