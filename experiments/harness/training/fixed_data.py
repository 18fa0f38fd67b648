"""Supervised training on a fixed list of examples: the unit of work of the data-selection studies.

The pruning study trains fresh models on the kept part of a dataset; the refinement study
fine-tunes the student on refined traces. Both run the pretraining loop (``supervised.fit``)
with an empty recipe stream: each step's batch is the next ``batch_size`` examples of a
per-epoch shuffle of the dataset, a pure function of (seed, step), so runs are reproducible
and every example is presented exactly once per epoch (what forgetting events count over).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Int

from experiments.harness import seeds
from experiments.harness.tasks.family import Mode, Problem
from experiments.harness.training.model import build_tokenizer
from experiments.harness.training.rollout import EVAL_BATCH, rollouts
from experiments.harness.training.supervised import Example, Recipe, fit
from probes.difficulty import teacher_forced


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long and how fast a run on a fixed dataset trains."""

    steps: int
    """Updates (equal for every arm of a study: equal compute, not equal epochs)."""
    batch_size: int
    """Examples per update."""
    lr: float
    """Peak AdamW learning rate (the recipe's warmup-then-cosine shape over ``steps``)."""
    warmup: int = 0
    """Linear-warmup updates."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0 or not 0 <= self.warmup < self.steps:
            raise ValueError(f"schedule: need steps >= 1, batch_size >= 1, lr > 0, 0 <= warmup < steps; got {self}")


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> Int[np.ndarray, " B"]:
    """Dataset rows of ``step``'s batch: consecutive slices of per-epoch permutations drawn from (seed, epoch)."""
    start = step * batch_size
    epochs = range(start // n, (start + batch_size - 1) // n + 1)
    order = np.concatenate([seeds.rng("fixed_data_order", seed, e).permutation(n) for e in epochs])
    offset = start - epochs[0] * n
    return order[offset : offset + batch_size]


def train(
    recipe: Recipe,
    data: Sequence[Example],
    schedule: Schedule,
    seed: int,
    *,
    model: torch.nn.Module | None = None,
    presented: Callable[[np.ndarray, Bool[np.ndarray, " B"]], None] | None = None,
    before: Callable[[torch.nn.Module, int], None] | None = None,
    desc: str = "fixed data",
) -> torch.nn.Module:
    """Train on ``data`` for ``schedule.steps`` updates; returns the model in eval mode.

    ``model`` is fine-tuned in place (None: a fresh one, initialised from ``seed``, of the recipe's
    shape). ``presented(rows, correct)`` sees, for each batch before its update, which dataset rows it
    held and whether the model got every target token of each right; ``before(model, step)`` runs
    before each update (reading scores early)."""
    run = dataclasses.replace(
        recipe, seed=seed, batch_size=0, steps=schedule.steps, lr=schedule.lr, warmup=schedule.warmup
    )
    tokenizer = build_tokenizer(recipe.task)
    vocab = tokenizer.get_vocab()
    if model is None:
        model, opt = run.init(tokenizer)
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=recipe.weight_decay)
    rows = lambda step: batch_indices(len(data), schedule.batch_size, seed, step)  # noqa: E731

    def observe(step: int, logits, labels) -> None:
        presented(rows(step), teacher_forced(logits, labels).correct.cpu().numpy())

    fit(
        model,
        opt,
        run,
        vocab,
        range(schedule.steps),
        extra=lambda step: [data[i] for i in rows(step)],
        observe=observe if presented else None,
        before=(lambda step: before(model, step)) if before else None,
        desc=desc,
    )
    return model.eval()


def greedy_correct(model, tokenizer, problems: Sequence[Problem], mode: Mode | None = None) -> Bool[np.ndarray, " N"]:
    """Whether the model's greedy completion of each problem is right (free choice, or forced into ``mode``)."""
    return np.array(
        [
            r.parsed.correct
            for r in rollouts(model, tokenizer, problems, mode=mode, temperature=0.0, batch_size=EVAL_BATCH)
        ]
    )
