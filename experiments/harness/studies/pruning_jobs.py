"""The pruning study's units of work, each a job for an executor: a scoring run on a dataset, a supervised run on a
kept set, and a GRPO run on a kept pool; each writes its own file, so a rerun resumes."""

import dataclasses
import functools
from pathlib import Path

from experiments.harness import seeds
from experiments.harness.rundir import write_json
from experiments.harness.studies.pruning_scores import examples, scoring_run
from experiments.harness.tasks.family import Problem
from experiments.harness.training import fixed_data, rl
from experiments.harness.training.fixed_data import Schedule
from experiments.harness.training.model import build_tokenizer
from experiments.harness.training.supervised import Recipe
from probes.models import load_hf, load_tokenizer


@dataclasses.dataclass(frozen=True)
class ScoringJob:
    """One scoring run on a dataset, written to ``out``."""

    recipe: Recipe
    records: list[dict]
    schedule: Schedule
    seed: int
    score_step: int
    out: Path


def run_scoring(job: ScoringJob) -> None:
    write_json(job.out, scoring_run(job.recipe, job.records, job.schedule, job.seed, job.score_step))


@dataclasses.dataclass(frozen=True)
class SupervisedJob:
    """One pruning run: train a fresh model on ``records`` and write its held-out correctness to ``out``."""

    recipe: Recipe
    records: list[dict]
    rows: list[int]
    """Which rows of the dataset ``records`` are (written with the result)."""
    schedule: Schedule
    seed: int
    problems: list[Problem]
    out: Path


def run_supervised(job: SupervisedJob) -> None:
    model = fixed_data.train(
        job.recipe, examples(job.recipe, job.records), job.schedule, job.seed, desc=job.out.parent.name
    )
    correct = fixed_data.greedy_correct(model, build_tokenizer(job.recipe.task), job.problems)
    write_json(job.out, {"correct": correct.tolist(), "n_train": len(job.records), "rows": job.rows})


@dataclasses.dataclass(frozen=True)
class RLJob:
    """One GRPO run from the base model on a kept pool, evaluated on the band eval set."""

    base: Path
    pool: list[Problem]
    policy: rl.PolicySpec
    steps: int
    seed: int
    stream: int
    """Key of the run's draw stream (a hash of the arm's name: stable whatever else the grid holds)."""
    problems: list[Problem]
    out: Path


def run_rl(job: RLJob) -> None:
    model, ref, tokenizer = (
        load_hf(job.base, job.policy.device),
        load_hf(job.base, job.policy.device),
        load_tokenizer(job.base),
    )
    generators = functools.partial(seeds.pruning_rl_step, job.seed, job.stream)
    for _ in rl.train(
        model, ref, rl.optimizer(model, job.policy), tokenizer, job.pool, job.policy, generators, range(job.steps)
    ):
        pass
    correct = fixed_data.greedy_correct(model, tokenizer, job.problems)
    write_json(job.out, {"correct": correct.tolist(), "n_train": len(job.pool), "pids": [pr.pid for pr in job.pool]})
