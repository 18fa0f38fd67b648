"""A third, tiny task family: count how often a symbol occurs in a list.

A problem is ``<bos> count x s1 s2 ... sk =`` over an alphabet of letters; its difficulty knob is the
list length k and its answer the number of i with s_i = x. A completion is either

* deliberate: ``<think> s1 c1 s2 c2 ... sk ck </think> ck <eos>``, each step the symbol then the
  running count, so a step depends only on the two tokens before it and on x;
* direct: ``ck <eos>``, the answer alone.

As in arithmetic, the first completion word is the mode decision, the reward is 1 iff the completion is
well formed and its answer right, and a direct answer really solves only the shortest lists (k = 1: one
comparison). Answering the list's length instead of the count is the family's "answer copied from the
prompt". The word ``count`` opens every prompt, which is how a vocabulary names the family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from experiments.harness.tasks.family import (
    BOS,
    END_THINK,
    EOS,
    EQUALS,
    SPECIAL_TOKENS,
    THINK,
    Family,
    Mode,
    Target,
    skipped_in_order,
    trace_targets,
)

COUNT = "count"
LETTERS = "abcdefgh"
SHORTCUT_K = 1
"""Longest list a direct answer is expected to really count (one comparison); beyond it a right one is luck."""


@dataclasses.dataclass(frozen=True)
class CountSpec:
    """What defines the language: alphabet size and longest list."""

    n_symbols: int = 3
    """Letters in the alphabet (the first of ``LETTERS``)."""
    max_items: int = 12
    """Longest list; numbers are 0..max_items."""

    def __post_init__(self) -> None:
        if not 2 <= self.n_symbols <= len(LETTERS) or self.max_items < 1:
            raise ValueError(
                f"need 2 <= n_symbols <= {len(LETTERS)} and max_items >= 1, got {self.n_symbols}, {self.max_items}"
            )

    @property
    def vocab(self) -> tuple[str, ...]:
        """Every word; the order fixes token ids."""
        return (
            *SPECIAL_TOKENS,
            EQUALS,
            THINK,
            END_THINK,
            COUNT,
            *LETTERS[: self.n_symbols],
            *map(str, range(self.max_items + 1)),
        )


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A completion read against its list; every field is defined for any input."""

    mode: Mode | None
    answer: int | None
    correct: bool
    format_error: bool
    n_skipped_steps: int
    """List items the trace never wrote (greedy in-order alignment of the written symbols)."""
    n_wrong_steps: int
    """Written steps whose count is not the previous written count plus (symbol == x)."""
    copied_answer: bool
    """Wrong answer equal to the list's length: reading the prompt's size, not counting."""
    length: int
    lucky_success: bool = False

    @property
    def reward(self) -> float:
        return float(self.correct)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One list ``s1 .. sk`` and the symbol ``x`` to count in it."""

    pid: str
    target: str
    symbols: tuple[str, ...]

    @property
    def k(self) -> int:
        return len(self.symbols)

    @property
    def running(self) -> tuple[int, ...]:
        """c_i: occurrences of x among s_1..s_i; the last is the answer."""
        return tuple(np.cumsum([s == self.target for s in self.symbols]).tolist())

    @property
    def difficulty(self) -> int:
        return self.k

    @property
    def key(self) -> str:
        return f"{COUNT}|{self.target}|{''.join(self.symbols)}"

    def as_record(self) -> dict:
        return {"pid": self.pid, "k": self.k, "target": self.target, "symbols": list(self.symbols)}

    def prompt_words(self) -> list[str]:
        return [BOS, COUNT, self.target, *self.symbols, EQUALS]

    def completion_words(self, mode: Mode) -> list[str]:
        answer = [str(self.running[-1]), EOS]
        if mode == "direct":
            return answer
        return [THINK, *(w for s, c in zip(self.symbols, self.running) for w in (s, str(c))), END_THINK, *answer]

    def trace_prefix(self, j: int) -> list[str]:
        """``<think>`` and the first j steps ``s c`` (j = 0: nothing)."""
        return self.completion_words("deliberate")[: 1 + 2 * j] if j else []

    def parse(self, words: Sequence[str]) -> Parsed:
        words = list(words)
        mode: Mode | None = "deliberate" if words[:1] == [THINK] else "direct" if words and words[0].isdigit() else None
        error = Parsed(mode, None, False, True, self.k, 0, False, len(words))
        if mode is None or len(words) < 2 or words[-1] != EOS or EOS in words[:-1] or not words[-2].isdigit():
            return error
        answer, skipped, wrong = int(words[-2]), self.k, 0
        if mode == "direct" and len(words) != 2:
            return error
        if mode == "deliberate":
            body = words[1:-3]
            if len(words) < 4 or words[-3] != END_THINK or len(body) % 2 or END_THINK in body:
                return error
            pairs = list(zip(body[::2], body[1::2]))
            if not all(s in LETTERS and c.isdigit() for s, c in pairs):
                return error
            skipped, wrong = skipped_in_order(self.symbols, [s for s, _ in pairs]), _wrong(pairs, self.target)
        correct = answer == self.running[-1]
        lucky = correct and (skipped + wrong > 0 if mode == "deliberate" else self.k > SHORTCUT_K)
        return Parsed(mode, answer, correct, False, skipped, wrong, not correct and answer == self.k, len(words), lucky)

    def roles(self, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        """The symbol to count is the operator, list items operands, running counts intermediates."""
        roles, steps = (
            ["special", "special", "operator"] + ["operand"] * self.k + ["special"],
            [-1, -1, -1, *range(1, self.k + 1), -1],
        )
        inside, step = False, 0
        for w in completion:
            if w in (THINK, END_THINK) or not (w.isdigit() or w in LETTERS):
                inside, role, at = w == THINK, "special", -1
            elif not inside:
                role, at = ("answer" if w.isdigit() else "operand"), -1
            else:
                step += w in LETTERS
                role, at = ("intermediate" if w.isdigit() else "operand"), step
            roles.append(role)
            steps.append(at)
        return roles, steps

    def targets(self, shortcut_k: int) -> list[Target]:
        """shortcut: the direct count where one comparison gives it; mode: ``<think>`` at the decision;
        computation: each running count among the numbers; deliberation: every other trace word."""
        numbers = tuple(str(n) for n in range(max(self.k, 1) + 1))
        out = [Target("shortcut", "direct", 0, str(self.running[-1]), numbers)] if self.k <= shortcut_k else []
        out.append(Target("mode", "direct", 0, THINK, numbers))
        out += trace_targets(self.completion_words("deliberate"), numbers, lambda c: c <= 2 * self.k and c % 2 == 0)
        return out


def _wrong(pairs: Sequence[tuple[str, str]], target: str) -> int:
    wrong, prev = 0, 0
    for s, c in pairs:
        wrong += int(c) != prev + (s == target)
        prev = int(c)
    return wrong


@dataclasses.dataclass(frozen=True)
class Counting:
    """Counting a symbol in a list; k is the list length."""

    spec: CountSpec = CountSpec()
    name: str = "counting"
    shortcut_k: int = SHORTCUT_K
    knob_name: str = "list length"
    ability: str = "counting"
    variant: tuple[str, str] | None = None

    @property
    def params(self) -> dict[str, Any]:
        return {"task": self.name, "n_symbols": self.spec.n_symbols, "max_items": self.spec.max_items}

    @property
    def chance(self) -> float:
        return 1 / (self.spec.max_items + 1)

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.spec.vocab

    @property
    def stream_key(self) -> tuple[int, ...]:
        return (self.spec.n_symbols, self.spec.max_items)

    def knobs(self, k_max: int, k_min: int = 1) -> tuple[int, ...]:
        return tuple(range(max(k_min, 1), min(k_max, self.spec.max_items) + 1))

    def n_distinct(self, k: int) -> int:
        return self.spec.n_symbols ** (k + 1)

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> Problem:
        letters = LETTERS[: self.spec.n_symbols]
        target, *symbols = (letters[i] for i in rng.integers(len(letters), size=k + 1))
        return Problem(pid, target, tuple(symbols))

    def problems(self, seed: int, k: int, n: int) -> list[Problem]:
        """n lists of length k, a pure function of (seed, k, n, spec); the first m equal ``problems(seed, k, m)``."""
        rng = np.random.Generator(np.random.PCG64([seed, k, *self.stream_key]))
        return [self.draw(rng, k, f"s{seed}-k{k}-{i}") for i in range(n)]

    def from_record(self, rec: Mapping[str, Any]) -> Problem:
        return Problem(rec["pid"], rec["target"], tuple(rec["symbols"]))


def _speaks(vocab: Collection[str]) -> Counting | None:
    if COUNT not in vocab:
        return None
    return Counting(CountSpec(sum(w in vocab for w in LETTERS), max(int(w) for w in vocab if w.isdigit())))


FAMILY = Family(
    "counting",
    make=lambda f: Counting(CountSpec(f.get("n_symbols", 3), f.get("max_items", 12))),
    speaks=_speaks,
    # A tiny toy: its default is the smoke scale of every stage, pretraining on lists up to 6 of the 8 evaluated.
    presets={
        "pretrain": {
            p: dict(
                task="counting",
                k_train_max=6,
                k_eval_max=8,
                k_weighting="uniform",
                steps=300,
                batch_size=64,
                lr=3e-3,
                warmup=20,
                d_model=64,
                n_layers=2,
                d_mlp=128,
                eval_per_k=16,
                checkpoint_every=100,
            )
            for p in ("smoke", "default")
        },
        **{
            stage: {p: ("smoke", {}) for p in ("smoke", "default")}
            for stage in ("bands", "grpo", "train_sae", "export")
        },
    },
)
