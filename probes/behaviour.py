"""Behaviour rates over parsed completions (plain data in, plain numbers out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class ParsedLike(Protocol):
    """What a parsed completion exposes, in every task family (arithmetic's and the mazes' parsers)."""

    mode: str | None
    correct: bool
    format_error: bool
    n_skipped_steps: int
    n_wrong_steps: int
    copied_answer: bool
    length: int
    lucky_success: bool


def behaviour_rates(parsed: Sequence[ParsedLike]) -> dict[str, float]:
    """Accuracy, mode shares and error rates; step-level rates are among deliberate completions.

    ``skipped_step_rate`` and ``wrong_step_rate`` are the fractions of deliberate traces with
    at least one skipped / wrong step (nan when there are none); ``mean_length`` is in tokens,
    ``trace_length`` the mean length of the deliberate completions; ``lucky_success_rate`` the
    share of all completions that are right without a right computation.
    """
    if not parsed:
        return {}
    deliberate = [p for p in parsed if p.mode == "deliberate" and not p.format_error]

    def share(xs) -> float:
        return float(np.mean(xs)) if len(xs) else float("nan")

    return {
        "accuracy": share([p.correct for p in parsed]),
        "deliberate_rate": share([p.mode == "deliberate" for p in parsed]),
        "direct_rate": share([p.mode == "direct" for p in parsed]),
        "format_error_rate": share([p.format_error for p in parsed]),
        "skipped_step_rate": share([p.n_skipped_steps > 0 for p in deliberate]),
        "wrong_step_rate": share([p.n_wrong_steps > 0 for p in deliberate]),
        "copied_answer_rate": share([p.copied_answer for p in parsed]),
        "mean_length": share([p.length for p in parsed]),
        "trace_length": share([p.length for p in deliberate]),
        "lucky_success_rate": share([p.lucky_success for p in parsed]),
    }
