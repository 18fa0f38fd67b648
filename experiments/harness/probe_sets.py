"""Labelled token sequences for reading a model: canonical traces, direct answers, own samples.

For each problem: the teacher-forced canonical deliberate trace, the canonical direct
answer, and ``n_samples`` of the model's own completions (temperature 1, free choice of
mode). Every token gets a role from the task grammar (operand, operator, intermediate
result, answer, special) and the chain step it belongs to; every sequence gets the
problem id, k, band, mode, source, correctness and split. ``probes.activations`` takes
these as plain data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from experiments.harness import seeds
from experiments.harness.rollout import rollouts
from experiments.harness.task import (
    ALL_OPS,
    END_THINK,
    MODES,
    THINK,
    Problem,
    TaskSpec,
    completion_words,
    prompt_words,
)
from probes.activations import LabelledSequence


@dataclasses.dataclass(frozen=True)
class ProbeSetSpec:
    """Which problems and completions a probe set holds."""

    stream: str = "sae_probe"
    """Named problem stream (experiments.harness.seeds) the problems come from."""
    seed: int = 0
    """Seeds the problems and the sampled completions."""
    k_min: int = 1
    """Shortest chain."""
    k_max: int = 8
    """Longest chain (beyond the pretraining range on purpose: hard problems)."""
    per_k: int = 200
    """Problems per k."""
    n_samples: int = 2
    """Model completions sampled per problem at temperature 1."""
    eval_every: int = 5
    """Every eval_every-th problem of each k goes to the eval split."""

    def __post_init__(self) -> None:
        if not 1 <= self.k_min <= self.k_max:
            raise ValueError(f"k_min/k_max: need 1 <= k_min <= k_max, got {self.k_min}, {self.k_max}")
        if self.stream not in seeds.PROBLEM_STREAMS:
            raise ValueError(f"stream: unknown problem stream {self.stream!r}")
        if self.per_k < 1 or self.n_samples < 0 or self.eval_every < 2:
            raise ValueError("per_k must be >= 1, n_samples >= 0, eval_every >= 2")


def task_spec_of(tokenizer: PreTrainedTokenizerBase) -> TaskSpec:
    """The task a checkpoint speaks, read from its vocabulary (numbers 0..p-1 and the ops)."""
    vocab = tokenizer.get_vocab()
    p = sum(1 for w in vocab if w.isdigit())
    return TaskSpec(p=p, ops=tuple(op for op in ALL_OPS if op in vocab))


def probe_problems(spec: ProbeSetSpec, task: TaskSpec) -> list[tuple[Problem, str]]:
    """(problem, split) pairs; splits are whole problems."""
    out = []
    for k in range(spec.k_min, spec.k_max + 1):
        for i, pr in enumerate(seeds.problems(spec.stream, spec.seed, k, spec.per_k, task)):
            out.append((pr, "eval" if i % spec.eval_every == spec.eval_every - 1 else "train"))
    return out


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


def labelled(
    problem: Problem,
    tokenizer,
    completion: Sequence[str],
    *,
    mode: str,
    source: str,
    correct: bool,
    band: str,
    split: str,
) -> LabelledSequence:
    prompt = prompt_words(problem)
    p_roles, p_steps = prompt_roles(problem)
    c_roles, c_steps = completion_roles(completion)
    return LabelledSequence(
        token_ids=tuple(tokenizer.convert_tokens_to_ids(prompt + list(completion))),
        roles=tuple(p_roles + c_roles),
        steps=tuple(p_steps + c_steps),
        n_prompt=len(prompt),
        pid=problem.pid,
        k=problem.k,
        band=band,
        mode=mode,
        source=source,
        correct=correct,
        split=split,
    )


def build_probe_set(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    spec: ProbeSetSpec,
    bands: Mapping[str, str] | None = None,
) -> list[LabelledSequence]:
    """Canonical traces and direct answers for every problem, then the model's own samples.

    ``bands`` maps problem ids to band names (from a band assignment); others get 'unbanded'.
    """
    bands = bands or {}
    pairs = probe_problems(spec, task_spec_of(tokenizer))
    out = []
    for pr, split in pairs:
        for mode in MODES:
            out.append(
                labelled(
                    pr,
                    tokenizer,
                    completion_words(pr, mode),
                    mode=mode,
                    source="canonical",
                    correct=True,
                    band=bands.get(pr.pid, "unbanded"),
                    split=split,
                )
            )
    gen = seeds.sampler(spec.seed)
    repeated = [pair for pair in pairs for _ in range(spec.n_samples)]
    samples = rollouts(model, tokenizer, [pr for pr, _ in repeated], mode=None, temperature=1.0, generator=gen)
    for (pr, split), r in zip(repeated, samples):
        words = tokenizer.convert_ids_to_tokens(list(r.completion_ids))
        mode = r.parsed.mode if r.parsed.mode and not r.parsed.format_error else "malformed"
        out.append(
            labelled(
                pr,
                tokenizer,
                words,
                mode=mode,
                source="sampled",
                correct=r.parsed.correct,
                band=bands.get(pr.pid, "unbanded"),
                split=split,
            )
        )
    return out


def eval_problems(spec: ProbeSetSpec, tokenizer: PreTrainedTokenizerBase) -> list[Problem]:
    """The eval-split problems (used for spliced task accuracy)."""
    return [pr for pr, split in probe_problems(spec, task_spec_of(tokenizer)) if split == "eval"]
