"""The pruning study's datasets and their difficulty scores, read the way their papers define them.

A dataset is a fixed list of (problem, mode) examples drawn like the pretraining recipe's batches
(knob by the recipe's weighting, mode by its direct fraction), canonical completions, none of them
in the held-out set; datasets of several sizes are prefixes of one stream, so smaller ones nest.

Every scoring run trains a fresh model on a random half of the dataset (so each example is
inside some runs and outside others) with the same schedule as the pruning runs, and reads:

* EL2N and GraNd of every example after ``score_step`` updates (early, as Paul et al. 2021);
* forgetting events of each inside example over its presentations, one per epoch (Toneva et al.
  2019; never correct = inf);
* whether each example's completion is right (every target token the argmax) after the last
  update: memorization = mean over runs with the example minus mean over runs without (Feldman and
  Zhang 2020), from the same runs.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from experiments.harness import seeds
from experiments.harness.studies.sft_scores import read_scores
from experiments.harness.tasks.family import MODES, Problem
from experiments.harness.training import fixed_data
from experiments.harness.training.fixed_data import Schedule
from experiments.harness.training.model import build_tokenizer
from experiments.harness.training.supervised import Recipe, collate, example
from probes.difficulty import forgetting_events, memorization, teacher_forced

SCORE_METRICS = ("el2n", "grand", "forgetting", "memorization", "k")
"""Difficulty scores, each oriented so that a higher score is a harder example."""


def draw_dataset(recipe: Recipe, n: int, seed: int, exclude: set[str]) -> list[dict]:
    """``n`` example records (the problem's record plus ``mode``), drawn like the recipe's batches,
    skipping problems whose content is in ``exclude`` (the held-out set)."""
    rng = seeds.rng("pruning_data", seed)
    out: list[dict] = []
    while len(out) < n:
        problem = recipe.task.draw(rng, int(rng.choice(recipe.ks, p=recipe.k_probs)), pid=f"prune-s{seed}-{len(out)}")
        mode = MODES[1] if rng.random() < recipe.direct_frac else MODES[0]
        if problem.key not in exclude:
            out.append({**problem.as_record(), "mode": mode})
    return out


def examples(recipe: Recipe, records: Sequence[dict]) -> list:
    """Token ids of each record's prompt and canonical completion in its mode."""
    vocab = build_tokenizer(recipe.task).get_vocab()
    return [example(recipe.task.from_record(r), r["mode"], vocab) for r in records]


def scoring_run(recipe: Recipe, records: Sequence[dict], schedule: Schedule, seed: int, score_step: int) -> dict:
    """One scoring run on a random half of ``records`` (see the module docstring)."""
    data = examples(recipe, records)
    inside = np.sort(seeds.rng("pruning_halves", seed, len(data)).permutation(len(data))[: len(data) // 2])
    seen: dict[int, list[bool]] = defaultdict(list)
    vocab = build_tokenizer(recipe.task).get_vocab()
    ids_NL, labels_NL = (t.to(recipe.device) for t in collate(data, vocab))
    early: dict[str, list[float]] = {}

    def presented(rows: np.ndarray, correct: np.ndarray) -> None:
        for row, c in zip(inside[rows], correct):
            seen[int(row)].append(bool(c))

    def read_early(model, step: int) -> None:
        if step == score_step:
            early.update(read_scores(model, ids_NL, labels_NL))

    model = fixed_data.train(
        recipe,
        [data[i] for i in inside],
        schedule,
        seed,
        presented=presented,
        before=read_early,
        desc=f"scoring n={len(data)} s{seed}",
    )
    forgetting = [forgetting_events(np.array([seen[i]]))[0] if seen[i] else math.nan for i in range(len(data))]
    never = [math.isinf(f) for f in forgetting]  # JSON has no inf: never learned is a flag of its own
    end = teacher_forced(model(input_ids=ids_NL).logits.detach(), labels_NL).correct.tolist()
    mask = np.zeros(len(data), dtype=bool)
    mask[inside] = True
    return {
        "inside": mask.tolist(),
        "el2n": early["el2n"],
        "grand": early["grand"],
        "forgetting": [0.0 if n else f for f, n in zip(forgetting, never)],
        "never_learned": never,
        "correct_end": end,
    }


def combine(records: Sequence[dict], runs: Sequence[dict]) -> dict[str, list[float]]:
    """Per example, over scoring runs: mean EL2N and GraNd (every run), median forgetting over the runs it was
    inside (nan if none), memorization (nan when some example was inside every run or none), and k."""
    el2n, grand = (np.mean([r[m] for r in runs], axis=0) for m in ("el2n", "grand"))
    inside_RN = np.array([r["inside"] for r in runs])
    forget_RN = np.array([[math.nan if f is None else f for f in r["forgetting"]] for r in runs], dtype=float)
    forget_RN[np.array([r["never_learned"] for r in runs])] = math.inf
    forget_RN[~inside_RN] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an example inside no run: all-nan column
        forgetting = np.nanmedian(forget_RN, axis=0)
    memo = memorization(inside_RN, np.array([r["correct_end"] for r in runs], dtype=float))
    return {
        "el2n": el2n.tolist(),
        "grand": grand.tolist(),
        "forgetting": forgetting.tolist(),
        "memorization": memo.tolist(),
        "k": [float(r["k"]) for r in records],
    }


SPACE_PER_HELD_OUT = 20
"""A knob value's held-out problems are kept out of the training data only where its problem space holds at least
this many problems per held-out one: a smaller space (k = 1 over Z_5 has 75 chains) would lose most of its
content to the exclusion, so there the held-out set shares content with training data (results say where)."""


def held_out(recipe: Recipe, per_k: int, seed: int) -> list[Problem]:
    """The held-out problems every pruning run is evaluated on: ``per_k`` at each knob value."""
    return [pr for k in recipe.ks.tolist() for pr in seeds.problems("pretrain_eval", seed, int(k), per_k, recipe.task)]


def excluded(recipe: Recipe, problems: Sequence[Problem], per_k: int) -> set[str]:
    """Content keys of the held-out problems the training data must not contain (see ``SPACE_PER_HELD_OUT``)."""
    return {pr.key for pr in problems if recipe.task.n_distinct(pr.k) >= SPACE_PER_HELD_OUT * per_k}
