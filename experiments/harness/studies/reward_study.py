"""The skeleton both reward studies share (``experiments.calibration``, ``experiments.utility``).

On a run pretrained with a hedge (``hedged_task``) whose bands are measured: GRPO runs on one band's pool, one
per arm and seed (the stage that trains them comes in as ``train``: library code imports no stage); then the
base model and every final checkpoint sample ``eval_samples`` completions at T = 1 per held-out problem (the
band table's eval set; one sampling stream for every model), and the study reads what it needs from each model,
cached per model in ``samples/``; then the study's own analysis gives a typed result, written as
``results.json`` with its ``report.md``. Every stage's time goes to the study's ``profile.jsonl``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from experiments.harness import cli
from experiments.harness.rundir import check_writable, init_run, write_json
from experiments.harness.tasks.family import Problem, Task
from experiments.harness.tasks.registry import hedged_task
from experiments.harness.training.rollout import Rollout, sampled_rollouts
from probes.layout import RewardStudyLayout, RunLayout, checkpoint_dir, read_json
from probes.models import load_hf, load_tokenizer


class StudyArgs(Protocol):
    """What the skeleton reads from a reward study's Args."""

    run: Path
    band: str
    seeds: tuple[int, ...]
    grpo_steps: int
    eval_samples: int
    device: str

    def grpo_args(self, arm: str, seed: int) -> Any:
        """The GRPO stage's Args of one arm's run (its ``out`` directory holds the checkpoints)."""


class StudyResult(Protocol):
    verdict: str

    def to_json(self) -> dict: ...


R = TypeVar("R", bound=StudyResult)


@dataclasses.dataclass(frozen=True)
class RewardStudy:
    """What tells one reward study from another."""

    name: str
    """``calibration`` or ``utility``: outputs in ``<run>/<name>/<band>/`` (``RunLayout.<name>``), progress lines
    so named."""
    needs: str
    """The hedge the run must be pretrained with (``hedged_task``): ``confidence`` or ``abstain``."""
    arms: tuple[str, ...]
    """The arms, each trained once per seed; their models are read as ``<arm>/seed<s>``."""
    arm_kind: str
    """What the progress line calls the arms (``rewards``, ``arms``)."""
    eval_seed: int
    """The sampling stream of the held-out samples (the same random numbers for every model)."""
    reading: str
    """The reading stage's progress line."""


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The band table's eval set, which every model is read on."""

    task: Task
    problems: list[Problem]
    k_P: np.ndarray
    """Each held-out problem's knob."""
    k_train_max: int
    """The largest knob in pretraining: in distribution up to it, beyond it above."""

    @classmethod
    def of_run(cls, task: Task, layout: RunLayout) -> HeldOut:
        records = read_json(layout.band_table)["eval_set"]
        k_train_max = read_json(layout.config)["stages"]["pretrain"]["k_train_max"]
        return cls(task, [task.from_record(r) for r in records], np.array([r["k"] for r in records]), k_train_max)


@dataclasses.dataclass(frozen=True)
class Sampled:
    """One model (``base`` or ``<arm>/seed<s>``) loaded, with its samples on the held-out problems (problem-major)."""

    path: Path
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    rollouts: list[Rollout]


def in_and_beyond(k_P: np.ndarray, k_train_max: int, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The held-out ``rows`` (default: all) split by knob: ``in distribution`` (k <= k_train_max) and ``beyond``;
    a split without rows is left out."""
    rows = np.arange(k_P.size) if rows is None else rows
    splits = {"in distribution": rows[k_P[rows] <= k_train_max], "beyond": rows[k_P[rows] > k_train_max]}
    return {name: r for name, r in splits.items() if r.size}


class JsonFields:
    """``to_json``/``from_json`` for a frozen result dataclass whose fields are plain JSON values."""

    def to_json(self) -> dict:
        """The dict ``results.json`` holds (``write_json`` writes its non-finite floats as null)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, d: Mapping):
        """From ``to_json``'s dict or from ``results.json`` (where a null is nan again); a missing field is refused."""
        return cls(**{f.name: nan_for_null(d[f.name]) for f in dataclasses.fields(cls)})


def nan_for_null(obj: Any) -> Any:
    """A reward study's result as read back from its JSON: ``write_json`` wrote every float that was not finite
    (an empty bin's accuracy, a metric without samples) as null, and these results hold no other null, so each
    null is nan again, recursively."""
    if obj is None:
        return math.nan
    if isinstance(obj, dict):
        return {k: nan_for_null(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_for_null(v) for v in obj]
    return obj


def run(
    args: StudyArgs,
    study: RewardStudy,
    train: Callable[[Any], object],
    read: Callable[[Sampled, HeldOut], Any],
    analyse: Callable[[Mapping[str, Any], HeldOut], R],
    write_report: Callable[[RewardStudyLayout, R], None],
) -> R:
    """Train (or resume) every arm's run per seed with ``train`` (the GRPO stage's ``main``), ``read`` the base
    model and every final checkpoint (what it returns is cached per model, as JSON), ``analyse`` the reads, write
    ``results.json`` and the report; the result."""
    task, layout = hedged_task(args.run, study.needs, f"the {study.name} study"), RunLayout(args.run)
    out: RewardStudyLayout = getattr(layout, study.name)(args.band)
    check_writable(out.root)
    init_run(args.run, f"{study.name}/{args.band}", args)
    stage = cli.StageClock(study.name, out.profile)
    n_runs = f"{len(study.arms)} {study.arm_kind} x {len(args.seeds)} seeds"
    stage(f"GRPO: {n_runs} on the {args.band} pool, {args.grpo_steps} steps")
    for arm in study.arms:
        for seed in args.seeds:
            train(args.grpo_args(arm, seed))
    stage(study.reading)
    held = HeldOut.of_run(task, layout)
    models = {"base": layout.base}
    for arm in study.arms:
        models |= {f"{arm}/seed{s}": checkpoint_dir(args.grpo_args(arm, s).out, args.grpo_steps) for s in args.seeds}
    reads = {}
    for name, path in tqdm(models.items(), desc=f"{study.name}: reading"):
        cache = out.samples(name)
        if cache.exists():
            reads[name] = read_json(cache)
        else:
            reads[name] = read(sample(path, held.problems, args, study.eval_seed), held)
            write_json(cache, reads[name])
    stage("statistics, figures and report")
    result = analyse(reads, held)
    write_json(out.results, result.to_json())
    stage.finish()
    write_report(out, result)
    print(result.verdict)
    return result


def sample(path: Path, problems: list[Problem], args: StudyArgs, seed: int) -> Sampled:
    """The model at ``path`` and its ``eval_samples`` completions at T = 1 per problem, from stream ``seed``."""
    model, tokenizer = load_hf(path, args.device), load_tokenizer(path)
    return Sampled(path, model, tokenizer, sampled_rollouts(model, tokenizer, problems, args.eval_samples, seed))
