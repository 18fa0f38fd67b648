"""What every task family shares: the special words, the two completion modes, and the protocol.

A task family is one module (``arith`` for chained modular arithmetic, ``maze`` for A* maze search, ...)
that defines its problems, a ``Task`` that makes them, and a ``FAMILY`` record;
``experiments.harness.tasks.registry.FAMILIES`` registers it in one line. Code that handles given
problems (rollouts, probe sets, read-outs) never names a family. A family provides:

* problems from a seed and a difficulty knob ``k`` (a pure function of (seed, k, n, params)),
  and the knob values the family has;
* prompt and completion words for a deliberate mode (a trace, then the answer) and a direct
  mode (the answer alone), the mode decided by the first completion word;
* a parser that never raises and reports the same behaviour flags for every family (format
  error, skipped and wrong trace steps, answer copied from the prompt, length, lucky success);
* the vocabulary, and each token's role (``probes.activations.ROLES``) and trace step for
  activation caches and feature labels;
* problem records for run directories, and the parameters a run's ``config.json`` records
  (its ``task`` section: the family's name, then its own fields; ``tasks.run_task`` reads it back);
* its stages' presets beside the default family's (``<name>-smoke``, ``<name>``, ``<name>-gpu``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

from probes.behaviour import ParsedLike

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
THINK, END_THINK, EQUALS = "<think>", "</think>", "="
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)

Mode = Literal["deliberate", "direct"]
MODES: tuple[Mode, ...] = ("deliberate", "direct")


class Target(NamedTuple):
    """One read-out target on a problem's canonical completion (``experiments.harness.reading.readouts``)."""

    kind: str
    """Feature group it is about: shortcut, computation, deliberation or mode."""
    mode: Mode
    """Which canonical completion it reads."""
    index: int
    """Completion word it predicts (the row before it reads it)."""
    word: str
    """The word the group should make likely (mode: ``<think>``)."""
    support: tuple[str, ...] | None
    """Words it competes with (None: the whole vocabulary)."""


def trace_targets(words: Sequence[str], numbers: tuple[str, ...], computed: Callable[[int], bool]) -> list[Target]:
    """Targets on a deliberate completion's trace words after the mode choice (word 0), up to ``<eos>``: computation
    at the positions ``computed`` names (among ``numbers``), deliberation at every other (against the whole
    vocabulary)."""
    return [
        Target("computation", "deliberate", c, w, numbers)
        if computed(c)
        else Target("deliberation", "deliberate", c, w, None)
        for c, w in enumerate(words[1:], start=1)
        if w != EOS
    ]


class Outcome(ParsedLike, Protocol):
    """A parsed completion (``task.Parsed``, ``maze.MazeParsed``): the behaviour flags every family reports, and its
    reward."""

    @property
    def reward(self) -> float: ...


class Problem(Protocol):
    """One problem of some family (``task.Problem``, ``maze.Maze``)."""

    pid: str

    @property
    def k(self) -> int:
        """The generator's difficulty knob."""
        ...

    @property
    def key(self) -> str:
        """What the problem is, whatever its id: two problems with one key are the same problem."""
        ...

    @property
    def difficulty(self) -> int:
        """The intrinsic difficulty: the operations a correct trace performs (chain length, A* op count)."""
        ...

    def prompt_words(self) -> list[str]: ...

    def completion_words(self, mode: Mode) -> list[str]:
        """The canonical (correct) completion in ``mode``."""
        ...

    def parse(self, words: Sequence[str]) -> Outcome:
        """Read a completion (the words after the prompt, ``<eos>`` included); never raises."""
        ...

    def roles(self, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        """Role and trace step (-1: none) of every prompt word, then of every completion word."""
        ...

    def targets(self, shortcut_k: int) -> list[Target]:
        """Read-out targets on the canonical completions (shortcut ones only where k <= shortcut_k)."""
        ...

    def as_record(self) -> dict:
        """JSON-ready fields."""
        ...


class Task(Protocol):
    """One task family with its parameters: what makes its problems."""

    name: str
    knob_name: str
    """What the difficulty knob k is, in words (reports)."""
    ability: str
    """verl's free-form ``ability`` tag for the family's data (math, planning, ...)."""
    variant: tuple[str, str] | None
    """A generator parameter whose other values make out-of-distribution settings of the same knob (its field
    name, its label in reports), or None."""

    @property
    def params(self) -> dict[str, Any]:
        """The family's fields as a run records them (``task`` and its parameters)."""
        ...

    @property
    def vocab(self) -> tuple[str, ...]:
        """Every word, in token-id order."""
        ...

    @property
    def shortcut_k(self) -> int:
        """Largest knob at which a direct answer is expected to really solve problems (beyond it, luck)."""
        ...

    @property
    def chance(self) -> float:
        """Success rate of a blind guess."""
        ...

    @property
    def stream_key(self) -> tuple[int, ...]:
        """Integers that seed problem streams beside (seed, k): problems of another language differ."""
        ...

    def knobs(self, k_max: int, k_min: int = 1) -> tuple[int, ...]:
        """The family's knob values in [k_min, k_max]."""
        ...

    def n_distinct(self, k: int) -> int:
        """How many distinct problems there are at knob k (a lower bound where counting is hard)."""
        ...

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> Problem:
        """One problem at knob ``k`` from ``rng``."""
        ...

    def problems(self, seed: int, k: int, n: int) -> list[Problem]:
        """n problems at knob k, a pure function of (seed, k, n, params); the first m equal ``problems(seed, k, m)``."""
        ...

    def from_record(self, rec: Mapping[str, Any]) -> Problem: ...


class Posed:
    """Base of a problem posed another way around ``inner`` (hedged, primed): what the problem is (its id, knob,
    key, difficulty, record and read-out targets) is ``inner``'s; the subclass changes its words."""

    inner: Problem

    @property
    def pid(self) -> str:
        return self.inner.pid

    @property
    def k(self) -> int:
        return self.inner.k

    @property
    def key(self) -> str:
        return self.inner.key

    @property
    def difficulty(self) -> int:
        return self.inner.difficulty

    def targets(self, shortcut_k: int) -> list[Target]:
        return self.inner.targets(shortcut_k)

    def as_record(self) -> dict:
        return self.inner.as_record()


def skipped_in_order(truth: Sequence, written: Sequence) -> int:
    """Items of ``truth`` a trace never wrote: written items are matched to it in order, greedily (each to the next
    equal item not yet passed), and matching stops at the first written item with none left."""
    matched, i = 0, 0
    for item in written:
        while i < len(truth) and truth[i] != item:
            i += 1
        if i == len(truth):
            break
        matched, i = matched + 1, i + 1
    return len(truth) - matched


@runtime_checkable
class NoisyTraces(Protocol):
    """A task whose deliberate traces can be written with wrong steps (pretraining's ``trace_error``)."""

    def noisy_trace(self, problem: Problem, rng: np.random.Generator, error_rate: float) -> list[str]:
        """The deliberate completion with each written result wrong with chance ``error_rate`` (later steps follow)."""
        ...


@dataclasses.dataclass(frozen=True)
class Family:
    """What a family module registers (``experiments.harness.tasks.registry.FAMILIES``)."""

    name: str
    """As ``--task`` and ``config.json`` spell it."""
    make: Callable[[Mapping[str, Any]], Task]
    """The task that a run's task fields define (the family's own parameters, defaults for those missing)."""
    speaks: Callable[[Collection[str]], Task | None]
    """The family's task whose language a vocabulary is, or None."""
    presets: Mapping[str, Mapping[str, dict | tuple[str, dict]]] = dataclasses.field(default_factory=dict)
    """Per stage module (pretrain, bands, grpo, train_sae, export): preset name (smoke, default, gpu) -> its fields,
    or (one of the stage's own presets, fields that update it); registered in the stage as ``<name>-smoke``,
    ``<name>``, ``<name>-gpu`` (``tasks.stage_preset``)."""
