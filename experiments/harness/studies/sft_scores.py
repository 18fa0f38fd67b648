"""Supervised difficulty scores (EL2N, GraNd, loss, forgetting) from fresh pretraining runs.

EL2N and GraNd are defined on a model *early in supervised training*, averaged over
independent seeds (Paul et al. 2021); forgetting events count right -> wrong flips over
the presentations of a whole training run (Toneva et al. 2019). Here the supervised
training is the run's own pretraining recipe (same task, architecture, data stream and
learning-rate schedule as base/), restarted from fresh initialisations. The scored
examples are made training examples: each is presented, in both modes (its canonical
deliberate and direct completions), ``presentations`` times at evenly spaced steps,
mixed into the ordinary batch. At each presentation the forward pass of that training
step (before the update) records whether every target token was the argmax. At each of
``read_steps`` (one early step is the headline; the others measure how much the read step
matters) EL2N, loss and GraNd of every example are read in eval mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from experiments.harness.tasks.family import MODES, Mode, Problem
from experiments.harness.training.model import build_tokenizer
from experiments.harness.training.supervised import Recipe, collate, example, fit
from probes.difficulty import grand, teacher_forced


def target_batch(problems: Sequence[Problem], mode: Mode, vocab: dict[str, int]) -> tuple[Tensor, Tensor]:
    """Right-padded prompt + canonical completion ids; labels are not targets outside the completion."""
    return collate([example(pr, mode, vocab) for pr in problems], vocab)


def presentation_steps(n: int, steps: int, presentations: int) -> Int[np.ndarray, "N E"]:
    """Step at which each of n examples is presented the e-th time: every epoch of
    steps // presentations steps shows each example once, spread over the epoch."""
    epoch = steps // presentations
    return np.arange(presentations)[None] * epoch + (np.arange(n) % epoch)[:, None]


def read_scores(model, ids_SL: Int[Tensor, "S L"], labels_SL: Int[Tensor, "S L"]) -> dict[str, list[float]]:
    """Teacher-forced loss and EL2N, and GraNd, of every sequence (the model is left in train mode)."""
    model.eval()
    with torch.no_grad():
        tf = teacher_forced(model(input_ids=ids_SL).logits, labels_SL)
    scores = {"loss": tf.loss.tolist(), "el2n": tf.el2n.tolist(), "grand": grand(model, ids_SL, labels_SL).tolist()}
    model.train()
    return scores


def scoring_run(
    recipe: Recipe, seed: int, problems: Sequence[Problem], steps: int, presentations: int, read_steps: Sequence[int]
) -> dict[str, list]:
    """One supervised run of ``steps`` steps from a fresh init; per mode, per example: correct at
    each presentation (``correct/<mode>``), and loss, EL2N and GraNd after each of ``read_steps``
    steps (``el2n/<mode>@<step>``)."""
    if not read_steps or not all(0 <= s <= steps for s in read_steps) or steps > recipe.steps:
        raise ValueError(f"need 0 <= read_steps ({list(read_steps)}) <= steps ({steps}) <= the recipe's {recipe.steps}")
    recipe = dataclasses.replace(recipe, seed=seed)  # the full recipe's lr schedule, stopped at ``steps``
    tokenizer = build_tokenizer(recipe.task)
    vocab = tokenizer.get_vocab()
    model, opt = recipe.init(tokenizer)
    targets = [example(pr, m, vocab) for m in MODES for pr in problems]  # S = 2N: both modes stacked
    ids_SL, labels_SL = (t.to(recipe.device) for t in collate(targets, vocab))
    when_SE = presentation_steps(len(targets), steps, presentations)
    correct_SE = np.zeros(when_SE.shape, dtype=bool)
    scores: dict[int, dict[str, list[float]]] = {}

    def read_early(step: int) -> None:
        if step in read_steps:
            scores[step] = read_scores(model, ids_SL, labels_SL)

    def presented(step: int) -> list:
        return [targets[i] for i in np.nonzero(when_SE == step)[0]]

    def record(step: int, logits: Tensor, labels: Tensor) -> None:
        rows, epochs = np.nonzero(when_SE == step)
        correct_SE[rows, epochs] = teacher_forced(logits, labels).correct.cpu().numpy()

    fit(
        model,
        opt,
        recipe,
        vocab,
        range(steps),
        before=read_early,
        extra=presented,
        observe=record,
        width=ids_SL.shape[1],
        desc=f"sft scores s{seed}",
    )
    if steps in read_steps:
        scores[steps] = read_scores(model, ids_SL, labels_SL)  # after the last update
    n = len(problems)
    by_mode = [(i, m) for i, m in enumerate(MODES)]  # the S rows are the N examples in each mode in turn
    out = {f"correct/{m}": correct_SE.tolist()[i * n : (i + 1) * n] for i, m in by_mode}
    for step, per in scores.items():
        out |= {f"{name}/{m}@{step}": values[i * n : (i + 1) * n] for name, values in per.items() for i, m in by_mode}
    return out
