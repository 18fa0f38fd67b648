"""Reverse curriculum (a backward reformulation of hard problems): pose a problem with the first j steps of its
canonical trace already written in the prompt, so only the last steps remain (the reverse-curriculum idea of
Xi et al. 2024, "R³"), and anneal j to 0 over training.

A primed problem answers for its own words like any other (``experiments.harness.tasks.family.Problem``), so the
GRPO loop, the sampler and the ledger need nothing new: its prompt is the problem's prompt plus the given
steps, and it reads a completion as the given steps plus the completion, so the reward is the task's own on
the full problem. The schedule (``steps_given``) was fixed before any run used it: a problem whose correct
trace has n steps (its ``difficulty``: chain length, A* op count) gets n - 1 of them at update 0, falling
linearly to none at the end of the annealing part of the run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from experiments.harness.tasks.family import Mode, Outcome, Posed, Problem


@runtime_checkable
class Steppable(Protocol):
    """A problem whose canonical trace can be cut after any of its steps."""

    def trace_prefix(self, j: int) -> list[str]:
        """The deliberate completion's words up to and including trace step j (j = 0: none, not even ``<think>``)."""
        ...


@dataclasses.dataclass(frozen=True)
class Primed(Posed):
    """``inner`` posed with the first ``given`` steps of its canonical trace at the end of the prompt."""

    inner: Problem
    given: int

    @property
    def prefix(self) -> list[str]:
        return self.inner.trace_prefix(self.given)  # type: ignore[attr-defined]

    def prompt_words(self) -> list[str]:
        return self.inner.prompt_words() + self.prefix

    def completion_words(self, mode: Mode) -> list[str]:
        """What remains of the canonical completion (with steps given, only the deliberate one continues them)."""
        if not self.given:
            return self.inner.completion_words(mode)
        return self.inner.completion_words("deliberate")[len(self.prefix) :]

    def parse(self, words: Sequence[str]) -> Outcome:
        """The full completion (given steps, then ``words``) read against the problem: the task's own reward."""
        return self.inner.parse(self.prefix + list(words))

    def roles(self, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        return self.inner.roles(self.prefix + list(completion))


def steps_given(n: int, t: int, anneal_steps: int) -> int:
    """Trace steps given to a problem of n steps at update t: ceil((n - 1) (1 - t / anneal_steps)), so n - 1 at
    update 0 and none from update ``anneal_steps`` on (0 anneal steps: none ever)."""
    if anneal_steps <= 0 or t >= anneal_steps:
        return 0
    return math.ceil((n - 1) * (1 - t / anneal_steps))


def poser(anneal_steps: int) -> Callable[[Problem, int], Problem]:
    """``pose(problem, t)``: the problem as update t poses it (unchanged once nothing is given)."""

    def pose(problem: Problem, t: int) -> Problem:
        if not isinstance(problem, Steppable):
            raise TypeError(
                f"the reverse curriculum needs problems that can cut their trace; {type(problem).__name__} cannot"
            )
        j = steps_given(problem.difficulty, t, anneal_steps)
        return Primed(problem, j) if j else problem

    return pose
