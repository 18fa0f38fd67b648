"""Does pruning by difficulty beat random pruning, and where? ``python -m experiments.pruning --run runs/NAME``.

Supervised part, on the run's pretraining task and recipe (Paul et al. 2021; Toneva et al. 2019; Sorscher
et al. 2022). Datasets of several sizes (prefixes of one stream) are scored by EL2N, GraNd, forgetting and
memorization from scoring runs on random halves (``experiments.harness.studies.pruning_scores``), by the
intrinsic difficulty k, and by nothing (random). Fresh models then train on the kept fraction f under
three policies: keep the hardest (highest score), the easiest, or a random subset. Every run trains for
the same number of updates (equal compute; the kept set is seen for more epochs the smaller it is) and
is evaluated on one held-out set (greedy, free choice). The crossover question: does keeping easy
examples win on small datasets and keeping hard ones on large (Sorscher's theory)?

RL part: the band study's pools (easy, medium and hard together) pruned by base pass rate and by
learnability p(1 - p), then GRPO from the base model on each kept pool, evaluated on the band eval set.

Every run writes its own file (``pruning/arms/<arm>/seed<s>.json``), so a rerun resumes; then
``results.json``, ``report.md`` and ``figures/`` in ``<run>/pruning/``.
"""

import dataclasses
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from experiments.analysis.pruning_report import write_report
from experiments.analysis.pruning_results import Design, analyse
from experiments.harness import cli, seeds
from experiments.harness.executors import EXECUTORS, run_jobs
from experiments.harness.rundir import cached_json, check_writable, init_run, write_json
from experiments.harness.studies.pruning_jobs import (
    RLJob,
    ScoringJob,
    SupervisedJob,
    run_rl,
    run_scoring,
    run_supervised,
)
from experiments.harness.studies.pruning_scores import (
    SCORE_METRICS,
    combine,
    draw_dataset,
    excluded,
    held_out,
)
from experiments.harness.tasks.arith import Arithmetic
from experiments.harness.tasks.family import Problem
from experiments.harness.tasks.registry import run_task
from experiments.harness.training import rl
from experiments.harness.training.fixed_data import Schedule
from experiments.harness.training.model import ModelSpec
from experiments.harness.training.supervised import Recipe
from probes.bands import BANDS
from probes.difficulty import learnability
from probes.layout import PruningLayout, RunDirError, RunLayout, read_json
from probes.selection import keep

RL_METRICS = ("failure_rate", "learnability")
"""RL pool scores: 1 - base pass rate (higher is harder) and p(1 - p) (higher is more learnable)."""


@dataclasses.dataclass(frozen=True)
class PruningArgs:
    """Prune datasets and RL pools by difficulty scores; compare with random pruning across data sizes."""

    # how it runs, not what: not recorded, free on resume
    HOW_TO_RUN: ClassVar[tuple[str, ...]] = ("executor", "workers")

    run: Path = Path("runs/default")
    """Run directory with base/ and config.json (the pretraining recipe); bands/table.json for the RL part."""
    preset: str = "default"
    """smoke (< 60 s, tests), default (2 CPU cores, <= 20 min), gpu (the full grid)."""
    seed: int = 0
    """Seeds the datasets, the held-out set and the random policies."""
    p: int = 5
    """Modulus of the arithmetic task the supervised part trains on (0: the run's own). A fresh model learns
    chains over Z_5 within this preset's 600 updates (0.73 greedy accuracy, k <= 4); over Z_11 it reached only
    0.14-0.27 (k <= 3) in 400-1200 (measured on unpruned data before any pruning run). The family, operations,
    mode mix and knob weighting stay the run's."""
    k_max: int = 4
    """Longest chain in the supervised datasets and held-out set (0: the run's k_train_max)."""
    d_model: int = 64
    """Width of the fresh models (smaller than the run's base model, so the grid fits the budget)."""
    n_layers: int = 2
    """Blocks of the fresh models."""
    sizes: tuple[int, ...] = (500, 1500, 4500)
    """Dataset sizes (spanning 9x; nested: each is a prefix of the next)."""
    fractions: tuple[float, ...] = (0.3, 0.5, 0.7, 1.0)
    """Kept fractions of the headline metric's grid (1.0 is the unpruned dataset)."""
    headline: str = "el2n"
    """The metric whose crossover the verdict tests, on the full fraction grid (pre-registered)."""
    metrics: tuple[str, ...] = ("grand", "forgetting", "memorization", "k")
    """Further metrics, at ``other_fractions`` only (the default's reduced grid)."""
    other_fractions: tuple[float, ...] = (0.5,)
    """Kept fractions of the further metrics."""
    other_sizes: tuple[int, ...] = (500, 4500)
    """Dataset sizes the further metrics run at (empty: every size); the default's are the crossover's two ends
    (chosen for time: the full default grid measured ~26 min on a busy host, before any result was read)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds of every pruning run (initialisation, data order and, for random, the kept subset)."""
    score_seeds: tuple[int, ...] = (0, 1, 2, 3)
    """Scoring runs per dataset, each on its own random half (EL2N and GraNd average over all of them)."""
    steps: int = 600
    """Updates of every supervised run, scoring runs included (equal steps, not equal epochs)."""
    batch_size: int = 32
    """Examples per update."""
    lr: float = 2e-3
    """Peak learning rate (warmup then cosine decay over ``steps``)."""
    score_step: int = 60
    """Update after which EL2N and GraNd are read: 10% of training, early as in Paul et al."""
    eval_per_k: int = 100
    """Held-out problems per k."""
    rl_fractions: tuple[float, ...] = (0.5,)
    """Kept fractions of the RL pool (empty: no RL part)."""
    rl_seeds: tuple[int, ...] = (0, 1)
    """GRPO seeds per RL arm."""
    rl_steps: int = 20
    """GRPO updates per RL run."""
    rl_prompts: int = 8
    """Prompts per GRPO update."""
    group_size: int = 8
    """Completions per prompt (G)."""
    rl_lr: float = 1e-4
    """GRPO learning rate (the band runs' default)."""
    n_boot: int = 1000
    """Bootstrap resamples."""
    executor: str = "pool"
    """Where the runs go: local (in order), pool (worker processes), ray."""
    workers: int = 2
    """Worker processes of the pool (each with this process's torch threads)."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        if (
            len(self.sizes) < 2
            or min(self.sizes) < 10
            or any(not 0 < f <= 1 for f in (*self.fractions, *self.other_fractions, *self.rl_fractions))
        ):
            raise ValueError("sizes: need at least two, each >= 10; fractions: must lie in (0, 1]")
        if not set(self.other_sizes) <= set(self.sizes):
            raise ValueError(f"other_sizes: {list(self.other_sizes)} must be among sizes {list(self.sizes)}")
        if self.headline in self.metrics or any(m not in SCORE_METRICS for m in (self.headline, *self.metrics)):
            raise ValueError(f"headline, metrics: must be distinct names from {SCORE_METRICS}")
        if not 0 <= self.score_step < self.steps or not self.seeds or not self.score_seeds:
            raise ValueError("score_step: must lie in [0, steps); seeds, score_seeds: need at least one each")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor: must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.steps, self.batch_size, self.lr, warmup=min(20, self.steps // 10))

    @property
    def design(self) -> Design:
        return Design(
            self.sizes,
            self.fractions,
            self.headline,
            self.metrics,
            self.other_fractions,
            self.other_sizes or self.sizes,
            self.seeds,
            self.rl_fractions,
            self.rl_seeds,
            self.n_boot,
        )


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(
        sizes=(40, 80),
        other_sizes=(),
        fractions=(0.5, 1.0),
        metrics=("grand", "forgetting", "memorization", "k"),
        seeds=(0, 1),
        score_seeds=(0, 1),
        steps=12,
        batch_size=8,
        score_step=2,
        eval_per_k=6,
        k_max=3,
        d_model=32,
        n_layers=1,
        rl_seeds=(0,),
        rl_steps=2,
        rl_prompts=2,
        group_size=4,
        n_boot=100,
        executor="local",
    ),
    "gpu": dict(
        p=0,
        k_max=0,
        d_model=128,
        n_layers=3,
        sizes=(2000, 4000, 8000, 16000),
        other_fractions=(0.3, 0.5, 0.7),
        other_sizes=(),
        seeds=(0, 1, 2, 3, 4),
        score_seeds=tuple(range(8)),
        steps=3000,
        batch_size=128,
        score_step=300,
        rl_fractions=(0.3, 0.5, 0.7),
        rl_seeds=(0, 1, 2),
        rl_steps=40,
        rl_prompts=16,
        device="cuda",
    ),
}


def study_recipe(args: PruningArgs, run: RunLayout) -> Recipe:
    """The run's pretraining recipe with this study's task modulus, chain range and model size."""
    recipe = Recipe.of(read_json(run.config)["stages"]["pretrain"])
    if not isinstance(recipe.task, Arithmetic):
        raise RunDirError(
            f"{run.root}: the pruning study's datasets are arithmetic chains; this run's task is {recipe.task.name}"
        )
    task = (
        dataclasses.replace(recipe.task, spec=dataclasses.replace(recipe.task.spec, p=args.p))
        if args.p
        else recipe.task
    )
    model = ModelSpec(
        recipe.model.arch, args.d_model, args.n_layers, recipe.model.n_heads, 2 * args.d_model, recipe.model.max_len
    )
    return dataclasses.replace(
        recipe, task=task, model=model, k_train_max=args.k_max or recipe.k_train_max, device=args.device
    )


def datasets(args: PruningArgs, recipe: Recipe, exclude: set[str]) -> dict[int, list[dict]]:
    """Every dataset (prefixes of the largest), scored by every scoring run not yet written."""
    out = RunLayout(args.run).pruning
    largest = cached_json(
        out.dataset(max(args.sizes)), lambda: draw_dataset(recipe, max(args.sizes), args.seed, exclude)
    )
    data = {size: largest[:size] for size in args.sizes}
    jobs = [
        ScoringJob(recipe, data[size], args.schedule, s, args.score_step, out.scores(size, s))
        for size in args.sizes
        for s in args.score_seeds
        if not out.scores(size, s).exists()
    ]
    run_jobs(run_scoring, jobs, args.executor, args.workers)
    return data


def supervised_jobs(
    args: PruningArgs, recipe: Recipe, data: dict[int, list[dict]], problems: list[Problem]
) -> list[SupervisedJob]:
    """One job per size x arm x seed not yet written."""
    out = RunLayout(args.run).pruning
    jobs = []
    for size, records in data.items():
        runs = [read_json(out.scores(size, s)) for s in args.score_seeds]
        scores = {**combine(records, runs), "random": np.zeros(size)}
        for metric, policy, f in [("random", "random", 1.0), *args.design.grid(size)]:
            for s in args.seeds:
                kept = keep(scores[metric], f, policy, seeds_of(args.seed, s, size, metric))
                path = out.arm(PruningLayout.arm_name(size, metric, policy, f), s)
                if not path.exists():
                    jobs.append(
                        SupervisedJob(
                            recipe, [records[i] for i in kept], kept.tolist(), args.schedule, s, problems, path
                        )
                    )
    return jobs


def seeds_of(seed: int, train_seed: int, size: int, metric: str) -> int:
    """Tiebreak / random-subset seed of one selection (each training seed draws its own random subset)."""
    return int(seeds.rng("pruning_keep", seed, train_seed, size, zlib.crc32(metric.encode())).integers(2**62))


def rl_jobs(args: PruningArgs, run: RunLayout) -> list[RLJob]:
    """One GRPO job per RL arm x seed not yet written (the base model's evaluation is a job of 0 updates)."""
    if not args.rl_fractions:
        return []
    if not run.band_table.exists():
        raise RunDirError(
            f"{run.band_table}: missing; the RL part prunes the band pools (run experiments.bands, or set "
            "--rl-fractions '')"
        )
    table, task = read_json(run.band_table), run_task(run.root)
    pool = [r for band in BANDS for r in table["pools"][band]]
    rate = np.array([r["pass_rate"] for r in pool])
    scores = {"failure_rate": 1 - rate, "learnability": learnability(rate), "random": np.zeros(len(pool))}
    problems, policy = (
        [task.from_record(r) for r in table["eval_set"]],
        rl.PolicySpec(args.rl_prompts, args.group_size, args.rl_lr, device=args.device),
    )
    arms = [("base", "random", 1.0), ("all", "random", 1.0)] + [("random", "random", f) for f in args.rl_fractions]
    arms += [(m, pol, f) for m in RL_METRICS for f in args.rl_fractions for pol in ("keep_high", "keep_low")]
    jobs = []
    for metric, pol, f in arms:
        name = "rl/base" if metric == "base" else PruningLayout.arm_name("rl", metric, pol, f)
        for s in (0,) if metric == "base" else args.rl_seeds:
            kept = keep(scores.get(metric, scores["random"]), f, pol, seeds_of(args.seed, s, len(pool), metric))
            if not run.pruning.arm(name, s).exists():
                jobs.append(
                    RLJob(
                        run.base,
                        [task.from_record(pool[i]) for i in kept],
                        policy,
                        0 if metric == "base" else args.rl_steps,
                        s,
                        zlib.crc32(name.encode()),
                        problems,
                        run.pruning.arm(name, s),
                    )
                )
    return jobs


def main(args: PruningArgs) -> dict:
    """Run or resume every stage; returns results.json's content."""
    run = RunLayout(args.run)
    if not run.config.exists() or not run.base.exists():
        raise RunDirError(
            f"{run.root}: needs base/ and config.json (run experiments.pretrain or experiments.band_study first)"
        )
    out = run.pruning
    check_writable(out.root)
    init_run(args.run, "pruning", args)
    stage = cli.StageClock("pruning", out.profile)
    recipe = study_recipe(args, run)
    problems = held_out(recipe, args.eval_per_k, args.seed)
    exclude = excluded(recipe, problems, args.eval_per_k)
    stage(f"datasets {list(args.sizes)} and their scores ({len(args.score_seeds)} scoring runs each)")
    data = datasets(args, recipe, exclude)
    jobs = supervised_jobs(args, recipe, data, problems)
    stage(f"supervised pruning runs ({len(jobs)} to train, {args.executor} executor)")
    run_jobs(run_supervised, jobs, args.executor, args.workers)
    stage("RL pools pruned by pass rate and learnability")
    rljobs = rl_jobs(args, run)
    run_jobs(run_rl, rljobs, args.executor, args.workers)
    stage("analysis and report")
    overlap = [pr.k for pr in problems if pr.key not in exclude]
    analysis = analyse(out.root, args.design, overlap)
    stage.finish()
    write_report(out, analysis)
    res = analysis.to_json()
    write_json(out.results, res)
    print(analysis.verdict)
    return res


if __name__ == "__main__":
    cli.run(main, PruningArgs, PRESETS)
