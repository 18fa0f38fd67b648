"""The default task family: chained modular arithmetic over Z_p with a real shortcut.

A problem is ``x0 op1 x1 op2 x2 ... opk xk =`` over Z_p; its difficulty knob is k.
A completion is either

* deliberate: ``<think> r0 op1 x1 r1 ... opk xk rk </think> rk <eos>`` — each step
  repeats the operation and operand, then writes the running result, so a step
  depends only on the three tokens before it (local steps learn fast, docs/DESIGN.md);
* direct: ``rk <eos>`` — the answer alone.

The choice between the two is the first completion token (``<think>`` or a number),
which makes "did the model deliberate?" a single-token decision. The reward is 1 iff
the completion is well formed and its final answer is right; a blind guess succeeds
with probability 1/p.
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

ALL_OPS = ("+", "-", "*")

SHORTCUT_K = 1
"""Longest chain a direct answer can really solve: pretraining teaches direct answers at k = 1
only; beyond it they were measured at chance (1/p), so a right one there is luck."""


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What defines the task's language: modulus and operation set."""

    p: int = 11
    """Prime modulus; numbers are 0..p-1 and a blind guess is right with probability 1/p."""
    ops: tuple[str, ...] = ALL_OPS
    """Operations a chain may use, a subset of ('+', '-', '*')."""

    def __post_init__(self) -> None:
        if not is_prime(self.p):
            raise ValueError(f"p: {self.p} is not prime")
        if not self.ops or set(self.ops) - set(ALL_OPS) or len(set(self.ops)) != len(self.ops):
            raise ValueError(f"ops: must be distinct members of {ALL_OPS}, got {self.ops}")

    @property
    def numbers(self) -> tuple[str, ...]:
        return tuple(str(i) for i in range(self.p))

    @property
    def vocab(self) -> tuple[str, ...]:
        """Every word of the language; the order fixes token ids."""
        return (*SPECIAL_TOKENS, EQUALS, THINK, END_THINK, *self.ops, *self.numbers)


def apply_op(op: str, a: int, b: int, p: int) -> int:
    if op == "+":
        return (a + b) % p
    if op == "-":
        return (a - b) % p
    if op == "*":
        return (a * b) % p
    raise ValueError(f"unknown op {op!r}")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One chain ``start op1 x1 ... opk xk`` over Z_p."""

    pid: str
    p: int
    start: int
    ops: tuple[str, ...]
    operands: tuple[int, ...]

    @property
    def k(self) -> int:
        return len(self.ops)

    @property
    def running(self) -> tuple[int, ...]:
        """r0 = start, r_i = r_{i-1} op_i x_i; the last entry is the answer."""
        out = [self.start]
        for op, x in zip(self.ops, self.operands):
            out.append(apply_op(op, out[-1], x, self.p))
        return tuple(out)

    @property
    def answer(self) -> int:
        return self.running[-1]

    @property
    def difficulty(self) -> int:
        """The intrinsic difficulty: operations to compute (the chain length)."""
        return self.k

    @property
    def key(self) -> str:
        """What the problem is, whatever its id: two problems with one key are the same chain."""
        return f"{self.p}|{self.start}|{','.join(self.ops)}|{','.join(map(str, self.operands))}"

    def as_record(self) -> dict:
        """JSON-ready fields (the modulus is stored once per table, not per problem)."""
        return {
            "pid": self.pid,
            "k": self.k,
            "start": self.start,
            "ops": list(self.ops),
            "operands": list(self.operands),
        }

    @classmethod
    def from_record(cls, rec: dict, p: int) -> Problem:
        return cls(rec["pid"], p, rec["start"], tuple(rec["ops"]), tuple(rec["operands"]))

    # A problem answers for its own words (``experiments.harness.tasks.family.Problem``), so code that only
    # handles given problems never names their task family.
    def prompt_words(self) -> list[str]:
        return prompt_words(self)

    def completion_words(self, mode: Mode) -> list[str]:
        """The canonical (correct) completion in ``mode``."""
        return completion_words(self, mode)

    def parse(self, words: Sequence[str]) -> Parsed:
        return parse_completion(self, words)

    def trace_prefix(self, j: int) -> list[str]:
        """``<think> r0`` and the first j steps ``op x r`` (j = 0: nothing)."""
        return completion_words(self, "deliberate")[: 2 + 3 * j] if j else []

    def roles(self, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        """Role and trace step of every prompt word, then of every completion word."""
        (p_roles, p_steps), (c_roles, c_steps) = prompt_roles(self), completion_roles(completion)
        return p_roles + c_roles, p_steps + c_steps

    def targets(self, shortcut_k: int) -> list[Target]:
        """shortcut: the direct answer among the numbers, where a direct answer can solve the chain;
        mode: ``<think>`` against any number at the decision; computation: each running result r_i
        (i >= 1) among the numbers; deliberation: every other word of trace following."""
        numbers = tuple(str(v) for v in range(self.p))
        out = [Target("shortcut", "direct", 0, str(self.answer), numbers)] if self.k <= shortcut_k else []
        out.append(Target("mode", "direct", 0, THINK, numbers))
        # r_i sits at 1 + 3i
        out += trace_targets(completion_words(self, "deliberate"), numbers, lambda c: c >= 4 and (c - 1) % 3 == 0)
        return out


def draw_problem(rng: np.random.Generator, k: int, spec: TaskSpec, pid: str = "") -> Problem:
    """One random chain of k operations drawn from ``rng``."""
    start = int(rng.integers(spec.p))
    op_idx = rng.integers(len(spec.ops), size=k)
    operands = rng.integers(spec.p, size=k)
    ops = tuple(spec.ops[j] for j in op_idx)
    return Problem(pid=pid, p=spec.p, start=start, ops=ops, operands=tuple(int(x) for x in operands))


def generate_problems(seed: int, k: int, n: int, spec: TaskSpec) -> list[Problem]:
    """n problems of length k; a pure function of (seed, k, n, spec).

    PCG64 seeded with (seed, k, p) gives the same stream on every machine, and
    problems are drawn one at a time so the first m of n equal ``generate_problems(seed, k, m)``.
    """
    if k < 1 or n < 0:
        raise ValueError(f"need k >= 1 and n >= 0, got k={k}, n={n}")
    rng = np.random.Generator(np.random.PCG64([seed, k, spec.p]))
    return [draw_problem(rng, k, spec, pid=f"s{seed}-k{k}-{i}") for i in range(n)]


def prompt_words(problem: Problem) -> list[str]:
    words = [BOS, str(problem.start)]
    for op, x in zip(problem.ops, problem.operands):
        words += [op, str(x)]
    return words + [EQUALS]


def completion_words(problem: Problem, mode: Mode) -> list[str]:
    """The canonical (correct) completion in the given mode."""
    answer = [str(problem.answer), EOS]
    if mode == "direct":
        return answer
    running = problem.running
    trace = [THINK, str(running[0])]
    for op, x, r in zip(problem.ops, problem.operands, running[1:]):
        trace += [op, str(x), str(r)]
    return trace + [END_THINK] + answer


def unreliable_trace_words(problem: Problem, rng: np.random.Generator, error_rate: float) -> list[str]:
    """A deliberate completion whose every step, with probability ``error_rate``, writes a uniformly
    drawn wrong result; later steps compute from what was written, so the answer follows the trace.
    A model pretrained on such traces is right on a chain with probability about (1 - error_rate)^k."""
    r = problem.start
    words = [THINK, str(r)]
    for op, x in zip(problem.ops, problem.operands):
        r = apply_op(op, r, x, problem.p)
        if rng.random() < error_rate:
            r = (r + 1 + int(rng.integers(problem.p - 1))) % problem.p
        words += [op, str(x), str(r)]
    return [*words, END_THINK, str(r), EOS]


@dataclasses.dataclass(frozen=True)
class Step:
    op: str
    operand: int
    result: int


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A completion read against its problem; every field is defined for any input."""

    mode: Mode | None
    """'deliberate' if it opened with <think>, 'direct' if with a number, else None."""
    steps: tuple[Step, ...]
    """Trace steps as written (empty for direct answers and format errors)."""
    answer: int | None
    """Final answer as written, None when the completion is malformed."""
    correct: bool
    format_error: bool
    n_skipped_steps: int
    """Prompt steps the trace never wrote (greedy in-order alignment on (op, operand))."""
    n_wrong_steps: int
    """Written steps whose result is not the written previous result op operand (r0 included)."""
    copied_answer: bool
    """Wrong answer equal to the prompt's last operand: repeating the prompt, not computing."""
    length: int
    """Completion length in tokens, <eos> included."""
    lucky_success: bool = False
    """Right answer without a right computation: a trace with a wrong or skipped step, or a direct
    answer to a chain longer than SHORTCUT_K (where direct answering is at chance)."""

    @property
    def reward(self) -> float:
        return float(self.correct)


def _number(word: str, p: int) -> int | None:
    return int(word) if word.isdigit() and int(word) < p else None


def _parse_trace(body: Sequence[str], p: int) -> tuple[int, tuple[Step, ...]] | None:
    """``r0 (op x r)*`` -> (r0, steps), or None when the body is not of that shape."""
    if len(body) % 3 != 1 or _number(body[0], p) is None:
        return None
    steps = []
    for i in range(1, len(body), 3):
        op, x, r = body[i : i + 3]
        xv, rv = _number(x, p), _number(r, p)
        if op not in ALL_OPS or xv is None or rv is None:
            return None
        steps.append(Step(op, xv, rv))
    return _number(body[0], p), tuple(steps)


def _count_wrong(r0: int, steps: Sequence[Step], problem: Problem) -> int:
    wrong, prev = int(r0 != problem.start), r0
    for step in steps:
        wrong += step.result != apply_op(step.op, prev, step.operand, problem.p)
        prev = step.result
    return wrong


def parse_completion(problem: Problem, words: Sequence[str]) -> Parsed:
    """Read a completion (words after the prompt, up to and including <eos>).

    Never raises: anything that is not one of the two canonical shapes is a format error.
    """
    words = list(words)
    length = len(words)
    p = problem.p
    mode: Mode | None = None
    if words and words[0] == THINK:
        mode = "deliberate"
    elif words and _number(words[0], p) is not None:
        mode = "direct"
    error = Parsed(mode, (), None, False, True, problem.k, 0, False, length)
    if mode is None or len(words) < 2 or words[-1] != EOS or EOS in words[:-1]:
        return error
    if mode == "direct":
        if length != 2:
            return error
        answer, steps, skipped, wrong = _number(words[0], p), (), problem.k, 0
    else:
        if length < 5 or words[-3] != END_THINK or words[1:-3].count(END_THINK):
            return error
        trace = _parse_trace(words[1:-3], p)
        answer = _number(words[-2], p)
        if trace is None or answer is None:
            return error
        r0, steps = trace
        skipped = skipped_in_order(list(zip(problem.ops, problem.operands)), [(st.op, st.operand) for st in steps])
        wrong = _count_wrong(r0, steps, problem)
    correct = answer == problem.answer
    copied = not correct and answer == problem.operands[-1]
    lucky = correct and (skipped + wrong > 0 if mode == "deliberate" else problem.k > SHORTCUT_K)
    return Parsed(mode, steps, answer, correct, False, skipped, wrong, copied, length, lucky)


def prompt_roles(problem: Problem) -> tuple[list[str], list[int]]:
    """Roles and steps of ``<bos> x0 op1 x1 ... opk xk =`` (``<bos>`` and ``=`` are special)."""
    roles, steps = ["special", "operand"], [-1, 0]
    for i in range(1, problem.k + 1):
        roles += ["operator", "operand"]
        steps += [i, i]
    return roles + ["special"], steps + [-1]


def completion_roles(words: Sequence[str]) -> tuple[list[str], list[int]]:
    """Roles and steps of a completion by the grammar ``<think> r0 (op x r)* </think> a <eos>`` or ``a <eos>``.

    Works on malformed completions too: ops are operators, markers are special, and a
    number is read by its place (operand or intermediate inside a trace, answer outside).
    """
    roles, steps = [], []
    body = None  # index of the next word inside a trace, None outside one
    for w in words:
        role, step = "special", -1
        if w == THINK:
            body = 0
        elif w == END_THINK or not (w.isdigit() or w in ALL_OPS):
            body = None
        elif body is None:
            role = "operator" if w in ALL_OPS else "answer"
        else:
            step, slot = (0, 2) if body == 0 else ((body - 1) // 3 + 1, (body - 1) % 3)
            role = "operator" if w in ALL_OPS else "operand" if slot == 1 else "intermediate"
            body += 1
        roles.append(role)
        steps.append(step)
    return roles, steps


@dataclasses.dataclass(frozen=True)
class Arithmetic:
    """Chained modular arithmetic over Z_p; k is the chain length."""

    spec: TaskSpec = TaskSpec()
    name: str = "arith"
    shortcut_k: int = SHORTCUT_K
    knob_name: str = "chain length"
    ability: str = "math"
    variant: tuple[str, str] | None = None

    @property
    def params(self) -> dict[str, Any]:
        return {"task": self.name, "p": self.spec.p, "ops": list(self.spec.ops)}

    @property
    def chance(self) -> float:
        return 1 / self.spec.p

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.spec.vocab

    @property
    def stream_key(self) -> tuple[int, ...]:
        return (self.spec.p,)

    def knobs(self, k_max: int, k_min: int = 1) -> tuple[int, ...]:
        return tuple(range(max(k_min, 1), k_max + 1))

    def n_distinct(self, k: int) -> int:
        return self.spec.p ** (k + 1) * len(self.spec.ops) ** k

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> Problem:
        return draw_problem(rng, k, self.spec, pid)

    def problems(self, seed: int, k: int, n: int) -> list[Problem]:
        return generate_problems(seed, k, n, self.spec)

    def from_record(self, rec: Mapping[str, Any]) -> Problem:
        return Problem.from_record(dict(rec), self.spec.p)

    def noisy_trace(self, problem: Problem, rng: np.random.Generator, error_rate: float) -> list[str]:
        return unreliable_trace_words(problem, rng, error_rate)


def _speaks(vocab: Collection[str]) -> Arithmetic | None:
    """Arithmetic's language: numbers 0..p-1 and at least one operation."""
    if not any(op in vocab for op in ALL_OPS):
        return None
    return Arithmetic(TaskSpec(sum(w.isdigit() for w in vocab), tuple(op for op in ALL_OPS if op in vocab)))


FAMILY = Family(
    "arith", make=lambda f: Arithmetic(TaskSpec(f.get("p", 11), tuple(f.get("ops", ALL_OPS)))), speaks=_speaks
)  # the default family: its presets are every stage's plain ones (smoke, default, gpu)
