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
from experiments.harness.tasks.family import MODES, Problem, Task
from experiments.harness.training.rollout import rollouts
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


def probe_problems(spec: ProbeSetSpec, task: Task) -> list[tuple[Problem, str]]:
    """(problem, split) pairs; splits are whole problems."""
    out = []
    for k in task.knobs(spec.k_max, spec.k_min):
        for i, pr in enumerate(seeds.problems(spec.stream, spec.seed, k, spec.per_k, task)):
            out.append((pr, "eval" if i % spec.eval_every == spec.eval_every - 1 else "train"))
    return out


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
    prompt = problem.prompt_words()
    roles, steps = problem.roles(completion)
    return LabelledSequence(
        token_ids=tuple(tokenizer.convert_tokens_to_ids(prompt + list(completion))),
        roles=tuple(roles),
        steps=tuple(steps),
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
    task: Task,
    bands: Mapping[str, str] | None = None,
) -> list[LabelledSequence]:
    """Canonical traces and direct answers for every problem, then the model's own samples.

    ``bands`` maps problem ids to band names (from a band assignment); others get 'unbanded'.
    """
    bands = bands or {}
    pairs = probe_problems(spec, task)
    out = []
    for pr, split in pairs:
        for mode in MODES:
            out.append(
                labelled(
                    pr,
                    tokenizer,
                    pr.completion_words(mode),
                    mode=mode,
                    source="canonical",
                    correct=True,
                    band=bands.get(pr.pid, "unbanded"),
                    split=split,
                )
            )
    gen = seeds.probe_sampling(spec.seed)
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


def eval_problems(spec: ProbeSetSpec, task: Task) -> list[Problem]:
    """The eval-split problems (used for spliced task accuracy)."""
    return [pr for pr, split in probe_problems(spec, task) if split == "eval"]
