"""Hedged completions over any task family: a stated confidence after the answer, and abstaining.

``Hedged(task, confidence=True)`` speaks the family's language plus two completion forms:

* ``<completion without <eos>> conf q <eos>``: the family's completion, then a confidence q, one of
  ``LEVELS`` (0.0, 0.1, ..., 1.0), that the answer is right;
* ``abstain <eos>`` (with ``abstain=True``): no answer.

The new words come after the family's in the vocabulary, so a family's token ids do not move. The
parser never raises: a completion without a well-formed ``conf q`` tail reads as the family's own
parse with no confidence (``q is None``), which the confidence-scored rewards count as a format error
(``experiments.harness.training.rewards``); the family's parser then judges the rest.

Canonical completions state ``NEUTRAL`` (0.5): they are the right answers, and a canonical confidence
would have to claim to know how often the model is right. Pretraining draws q uniformly from ``LEVELS``
per example (``with_confidence``), which teaches the format and nothing about calibration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.harness.tasks.family import EOS, Mode, Posed

CONF = "conf"
ABSTAIN = "abstain"
LEVELS = tuple(f"{i / 10:.1f}" for i in range(11))
"""The confidences a completion can state, as words."""
NEUTRAL = "0.5"


def with_confidence(words: Sequence[str], q: str) -> list[str]:
    """A completion ending in <eos> with ``conf q`` before its <eos>."""
    return [*words[:-1], CONF, q, EOS]


def confidence_tail(words: Sequence[str]) -> float | None:
    """q of a completion ending ``conf q <eos>`` (q one of LEVELS), else None."""
    ok = len(words) >= 3 and words[-3] == CONF and words[-2] in LEVELS and words[-1] == EOS
    return float(words[-2]) if ok else None


@dataclasses.dataclass(frozen=True)
class HedgedOutcome:
    """A hedged completion read against its problem: the family's flags, the stated confidence, abstention."""

    inner: Any
    """The family's parse of the completion without its confidence tail (None when it abstained)."""
    q: float | None
    """Stated confidence, None when absent or malformed (or when it abstained)."""
    abstained: bool
    length: int
    """Completion length in tokens, the confidence tail and <eos> included."""

    @property
    def mode(self) -> str | None:
        return self.inner.mode if self.inner else None

    @property
    def correct(self) -> bool:
        return bool(self.inner and self.inner.correct)

    @property
    def format_error(self) -> bool:
        return bool(self.inner and self.inner.format_error)

    @property
    def n_skipped_steps(self) -> int:
        return self.inner.n_skipped_steps if self.inner else 0

    @property
    def n_wrong_steps(self) -> int:
        return self.inner.n_wrong_steps if self.inner else 0

    @property
    def copied_answer(self) -> bool:
        return bool(self.inner and self.inner.copied_answer)

    @property
    def lucky_success(self) -> bool:
        return bool(self.inner and self.inner.lucky_success)

    @property
    def reward(self) -> float:
        """The binary reward (right answer); ``experiments.harness.training.rewards`` scores the confidence."""
        return float(self.correct)


@dataclasses.dataclass(frozen=True)
class HedgedProblem(Posed):
    """A family's problem whose completions state a confidence and may abstain (its read-out targets are the
    family's: none reads <eos>, the only word the confidence tail moves)."""

    inner: Any
    confidence: bool = True
    abstain: bool = False

    def prompt_words(self) -> list[str]:
        return self.inner.prompt_words()

    def completion_words(self, mode: Mode) -> list[str]:
        words = self.inner.completion_words(mode)
        return with_confidence(words, NEUTRAL) if self.confidence else words

    def parse(self, words: Sequence[str]) -> HedgedOutcome:
        words = list(words)
        if self.abstain and words == [ABSTAIN, EOS]:
            return HedgedOutcome(None, None, True, len(words))
        q = confidence_tail(words) if self.confidence else None
        return HedgedOutcome(self.inner.parse(words[:-3] + [EOS] if q is not None else words), q, False, len(words))

    def roles(self, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        """The family's roles; the confidence tail's two words (and an abstention) are special."""
        completion = list(completion)
        if confidence_tail(completion) is None:
            return self.inner.roles(completion)
        roles, steps = self.inner.roles(completion[:-3] + [EOS])
        return roles[:-1] + ["special"] * 2 + roles[-1:], steps[:-1] + [-1, -1] + steps[-1:]


@dataclasses.dataclass(frozen=True)
class Hedged:
    """A task family whose completions state a confidence (``confidence``) and may abstain (``abstain``)."""

    inner: Any
    confidence: bool = True
    abstain: bool = False

    def __post_init__(self) -> None:
        if not (self.confidence or self.abstain):
            raise ValueError("Hedged: needs a confidence, abstaining, or both")

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def params(self) -> dict[str, Any]:
        return {**self.inner.params, "confidence": self.confidence, "abstain": self.abstain}

    @property
    def vocab(self) -> tuple[str, ...]:
        return (*self.inner.vocab, *((CONF, *LEVELS) if self.confidence else ()), *((ABSTAIN,) if self.abstain else ()))

    @property
    def shortcut_k(self) -> int:
        return self.inner.shortcut_k

    @property
    def knob_name(self) -> str:
        return self.inner.knob_name

    @property
    def ability(self) -> str:
        return self.inner.ability

    @property
    def variant(self) -> tuple[str, str] | None:
        return self.inner.variant

    @property
    def chance(self) -> float:
        return self.inner.chance

    @property
    def stream_key(self) -> tuple[int, ...]:
        return self.inner.stream_key  # the same problems as the family's

    def knobs(self, k_max: int, k_min: int = 1) -> tuple[int, ...]:
        return self.inner.knobs(k_max, k_min)

    def n_distinct(self, k: int) -> int:
        return self.inner.n_distinct(k)

    def wrap(self, problem: Any) -> HedgedProblem:
        return HedgedProblem(problem, self.confidence, self.abstain)

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> HedgedProblem:
        return self.wrap(self.inner.draw(rng, k, pid))

    def problems(self, seed: int, k: int, n: int) -> list[HedgedProblem]:
        return [self.wrap(p) for p in self.inner.problems(seed, k, n)]

    def from_record(self, rec: Mapping[str, Any]) -> HedgedProblem:
        return self.wrap(self.inner.from_record(rec))

    def pretraining_words(self, words: Sequence[str], rng: np.random.Generator, abstain_frac: float) -> list[str]:
        """A family completion as pretraining writes it: an abstention with probability ``abstain_frac``, else
        the completion with a q drawn uniformly from LEVELS (whatever the completion: format, not calibration)."""
        if self.abstain and rng.random() < abstain_frac:
            return [ABSTAIN, EOS]
        return with_confidence(words, LEVELS[int(rng.integers(len(LEVELS)))]) if self.confidence else list(words)
