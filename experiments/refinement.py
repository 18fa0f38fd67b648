"""Does teacher-refined data beyond the student's frontier hurt it, and does its own filter keep the compatible
refinements? ``python -m experiments.refinement --run runs/NAME``.

Selective Reflection-Tuning (Li et al. 2024, arXiv 2402.10110) refines instruction data with a strong teacher and
lets the student keep only the refinements it can learn from: IFD = ppl(A | Q) / ppl(A) below 1 and reverse IFD
ppl(Q | A) / ppl(Q) no higher than the original sample's (``probes.selection``). Here, on an arithmetic run:

* the student is the run's base model (pretrained on k <= k_train_max); the teacher is the same recipe trained on
  from the student's weights for ``teacher_steps`` more updates on k <= ``teacher_k_max`` (``refinement/teacher/``);
* the original dataset gives every training problem (k = 1..teacher_k_max, none in the held-out set) an unreliable
  trace (``original_error`` per-step chance of a wrong written result): mediocre existing data;
* the teacher's greedy deliberate trace of each problem, kept where its answer is right, yields three refinements
  of graded sophistication: ``full`` (as written), ``compressed`` (every second step done in the head), ``direct``
  (the answer alone);
* the student reads every sample (IFD, r-IFD, its filter) and samples each problem ``n_pass`` times (distance
  beyond its frontier = 1 - pass rate), cached in ``samples.json``;
* arms fine-tune a fresh copy of the student for the same ``ft_steps`` updates (equal compute, not equal epochs) on
  (a) the originals, (b) all refinements, (c) those the student keeps, (d) a random subset of (b) of (c)'s size,
  and on each quantile bin of (b) by distance beyond the frontier (subsampled to the smallest bin's size);
  each arm and seed writes its greedy free-choice correctness on the held-out set to ``arms/<arm>/seed<s>.json``.

The verdict tests "self-filtering helps" ((c) - (d) beyond the student's range) and "beyond the frontier hurts"
(furthest bin - nearest bin, in range and beyond) with Welch intervals over the seeds, Bonferroni-adjusted over the
three tests. Every setting was fixed before any result was seen; a rerun resumes from what exists.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int
from tqdm.auto import tqdm

from experiments.analysis.refinement_report import write_report
from experiments.analysis.refinement_results import (
    LEVELS,
    FrontierBin,
    RefinementResult,
    analyse,
    frontier_arm,
    frontier_bins,
)
from experiments.harness import cli, seeds
from experiments.harness.rundir import cached_json, check_writable, init_run, write_json
from experiments.harness.studies.refinements import (
    by_k,
    check_fits,
    eval_problems,
    random_subset,
    sample_rows,
    student_reads,
    teacher_traces,
    train_problems,
)
from experiments.harness.tasks.arith import Arithmetic
from experiments.harness.tasks.family import Problem
from experiments.harness.tasks.registry import run_task
from experiments.harness.training import fixed_data
from experiments.harness.training.fixed_data import Schedule, greedy_correct
from experiments.harness.training.model import save_model
from experiments.harness.training.rollout import sampled_completions
from experiments.harness.training.supervised import Example, Recipe, example, fit
from probes.layout import RefinementLayout, RunDirError, RunLayout, read_json
from probes.models import load_hf, load_tokenizer


@dataclasses.dataclass(frozen=True)
class RefinementArgs:
    """Teacher-refined traces beyond the student's frontier, and the student's own IFD / r-IFD filter of them."""

    run: Path = Path("runs/default")
    """Arithmetic run directory with a pretrained base model (the student); the study lives in <run>/refinement/."""
    preset: str = "default"
    """Named defaults (smoke, default, gpu)."""
    seed: int = 0
    """Seeds the problems (held-out set: the refinement_eval stream, disjoint from every pretrain_eval set where the
    problem space allows), the original traces' errors, the teacher's batches, the student's sampling and the random
    subsets."""
    teacher_k_max: int = 10
    """The teacher trains on, and the study draws problems at, k = 1..teacher_k_max (must exceed the run's
    k_train_max)."""
    teacher_steps: int = 400
    """Updates of the pretraining recipe, from the student's weights, that make the teacher."""
    teacher_warmup: int = 20
    """Linear-warmup updates of the teacher's run (the recipe's peak lr, then cosine decay)."""
    train_per_k: int = 40
    """Training problems per k (each gets an original trace and up to three refinements)."""
    eval_per_k: int = 40
    """Held-out problems per k in 1..teacher_k_max."""
    original_error: float = 0.2
    """Per-step chance that an original trace writes a wrong result (later steps follow it)."""
    n_pass: int = 8
    """Free-choice samples at T = 1 per training problem for the student's pass rate."""
    ft_steps: int = 150
    """Fine-tuning updates of every arm (equal compute whatever the arm's dataset size)."""
    ft_batch: int = 32
    """Examples per fine-tuning update."""
    ft_lr: float = 3e-4
    """Peak AdamW learning rate of fine-tuning (warmup, then cosine decay to 10%)."""
    ft_warmup: int = 10
    """Linear-warmup updates of fine-tuning."""
    frontier_bins: int = 3
    """Quantile bins of the refinements by their problem's distance beyond the student's frontier."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Fine-tuning seeds per arm (batch order; random subsets are redrawn per seed)."""
    n_boot: int = 1000
    """Bootstrap resamples per interval."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        for name in ("teacher_steps", "train_per_k", "eval_per_k", "n_pass", "ft_steps", "ft_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.teacher_k_max < 2:
            raise ValueError(f"teacher_k_max: must be >= 2, got {self.teacher_k_max}")
        if not 0 <= self.teacher_warmup < self.teacher_steps:
            raise ValueError(f"teacher_warmup: must lie in [0, teacher_steps), got {self.teacher_warmup}")
        if not 0.0 <= self.original_error < 1.0:
            raise ValueError(f"original_error: must lie in [0, 1), got {self.original_error}")
        if self.frontier_bins < 2:
            raise ValueError(f"frontier_bins: must be >= 2, got {self.frontier_bins}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds: need distinct non-negative seeds, got {self.seeds}")
        if self.n_boot < 10:
            raise ValueError(f"n_boot: must be >= 10, got {self.n_boot}")
        self.schedule  # noqa: B018 -- validate the fine-tuning schedule now

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.ft_steps, self.ft_batch, self.ft_lr, self.ft_warmup)


PRESETS: dict[str, dict] = {
    # Measured on 2 CPU cores against a default run (see the README's wall times); counts chosen for time alone.
    "default": {},
    # The conftest smoke run (Z_5, '+', k <= 3): beyond is k = 4..6; the smoke band study's (k <= 5): k = 6.
    "smoke": dict(
        teacher_k_max=6,
        teacher_steps=60,
        teacher_warmup=5,
        train_per_k=6,
        eval_per_k=8,
        n_pass=4,
        ft_steps=8,
        ft_batch=8,
        ft_warmup=2,
        frontier_bins=2,
        seeds=(0, 1),
        n_boot=50,
    ),
    "gpu": dict(
        teacher_steps=2000,
        teacher_warmup=50,
        train_per_k=200,
        eval_per_k=200,
        n_pass=16,
        ft_steps=600,
        ft_batch=64,
        ft_warmup=30,
        seeds=(0, 1, 2, 3, 4),
        device="cuda",
    ),
}

ORIGINAL, PASS, TEACHER, SUBSET, BINS = range(1, 6)
"""Purposes of the study's draws from the "refinement" stream, keyed (seed, 0, purpose, ...); problem draws use
(seed, k) with k >= 1."""


def draws(args: RefinementArgs, purpose: int, *key: int) -> np.random.Generator:
    return seeds.rng("refinement", args.seed, 0, purpose, *key)


def draw_seed(args: RefinementArgs, purpose: int, *key: int) -> int:
    """An integer seed from the study's stream (for APIs that take one; ``seeds.seed_of``)."""
    return seeds.seed_of("refinement", args.seed, 0, purpose, *key)


# --- the student's run ---------------------------------------------------------------------------------------------


def student_recipe(args: RefinementArgs) -> Recipe:
    """The run's pretraining recipe (the student's), or a one-line RunDirError naming what the study cannot use."""
    layout = RunLayout(args.run)
    if not layout.base_eval.exists():
        raise RunDirError(f"{layout.base}: no finished base model; run experiments.pretrain first")
    pretrain = read_json(layout.config).get("stages", {}).get("pretrain")
    if pretrain is None:
        raise RunDirError(f"{layout.config}: no pretrain stage recorded; run experiments.pretrain first")
    task = run_task(args.run)
    if not isinstance(task, Arithmetic):
        raise RunDirError(
            f"{args.run}: the refinement study rewrites arithmetic traces and needs a plain arithmetic run, not "
            f"{task.params}"
        )
    recipe = dataclasses.replace(Recipe.of(pretrain), device=args.device)
    if args.teacher_k_max <= recipe.k_train_max:
        raise RunDirError(
            f"{args.run}: teacher_k_max {args.teacher_k_max} must exceed the run's k_train_max {recipe.k_train_max}"
        )
    return recipe


# --- the teacher -----------------------------------------------------------------------------------------------------


def train_teacher(layout: RunLayout, recipe: Recipe, args: RefinementArgs) -> None:
    """The student's recipe continued on the wider k range, saved to ``refinement/teacher`` (kept if present)."""
    out = layout.refinement.teacher
    if (out / "model.safetensors").exists():  # save_model writes the directory atomically
        return
    run = dataclasses.replace(
        recipe,
        k_train_max=args.teacher_k_max,
        steps=args.teacher_steps,
        warmup=args.teacher_warmup,
        seed=draw_seed(args, TEACHER),
    )
    tokenizer, model = load_tokenizer(layout.base), load_hf(layout.base, args.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=run.weight_decay)
    fit(model, opt, run, tokenizer.get_vocab(), range(run.steps), desc="teacher")
    save_model(
        model.eval(),
        tokenizer,
        out,
        meta={
            "stage": "refinement teacher",
            "k_train_max": args.teacher_k_max,
            "steps": args.teacher_steps,
            "from": "base",
        },
    )


# --- samples: originals, refinements, the student's reads -----------------------------------------------------------


def read_samples(layout: RunLayout, recipe: Recipe, args: RefinementArgs, held_out: Sequence[Problem]) -> dict:
    """Everything the arms are built from: the training problems with the student's pass rates, every sample with
    the student's reads, and both models' competence per k on the held-out set."""
    tokenizer = load_tokenizer(layout.base)
    student, teacher = load_hf(layout.base, args.device), load_hf(layout.refinement.teacher, args.device)
    problems = train_problems(recipe.task, args.seed, args.teacher_k_max, args.train_per_k, held_out)
    traces = teacher_traces(teacher, tokenizer, problems)
    rows = sample_rows(problems, traces, draws(args, ORIGINAL), args.original_error)
    student_reads(student, tokenizer.get_vocab(), problems, rows)
    outcomes = sampled_completions(student, tokenizer, problems, args.n_pass, draw_seed(args, PASS))
    competence = {
        "student, deliberate": by_k(held_out, greedy_correct(student, tokenizer, held_out, "deliberate")),
        "teacher, deliberate": by_k(held_out, greedy_correct(teacher, tokenizer, held_out, "deliberate")),
        "student, free choice": by_k(held_out, greedy_correct(student, tokenizer, held_out)),
    }
    return {
        "problems": [
            {
                **pr.as_record(),
                "pass_rate": float(np.mean([o.correct for o in outs])),
                "teacher_verified": t is not None,
            }
            for pr, outs, t in zip(problems, outcomes, traces)
        ],
        "samples": rows,
        "competence": competence,
    }


# --- arms ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arms:
    """Which samples each arm trains on, per fine-tuning seed, and the frontier bins' make-up."""

    rows: dict[str, list[Int[np.ndarray, " n"]]]
    """Arm -> one array of sample indices per seed of ``args.seeds``."""
    bins: list[FrontierBin]
    """Per frontier bin: refinements in it, their mean distance beyond the frontier (1 - pass rate) and mean k."""


def plan_arms(reads: Mapping, args: RefinementArgs) -> Arms:
    """(a)-(d) and the frontier bins, from the cached samples."""
    samples, problems = reads["samples"], reads["problems"]
    level = np.array([s["level"] for s in samples])
    original, refined = np.flatnonzero(level == "original"), np.flatnonzero(level != "original")
    if refined.size < args.frontier_bins:
        raise RunDirError(
            f"{args.run}: the teacher verified {refined.size // len(LEVELS)} traces, too few to study; train it longer "
            "(--teacher-steps)"
        )
    kept = refined[[bool(samples[i]["keep_by_student"]) for i in refined]]
    if kept.size == 0:
        raise RunDirError(f"{args.run}: the student's filter kept no refinement, so self-filtering cannot be compared")
    same = lambda rows: [rows] * len(args.seeds)  # noqa: E731
    out = {
        "original": same(original),
        "all_refinements": same(refined),
        "student_filtered": same(kept),
        "random_same_size": [random_subset(refined, kept.size, draw_seed(args, SUBSET, s)) for s in args.seeds],
    }
    pass_rate = np.array([problems[samples[i]["problem"]]["pass_rate"] for i in refined])
    bin_N = frontier_bins(pass_rate, args.frontier_bins, draw_seed(args, BINS))
    size = int(np.bincount(bin_N, minlength=args.frontier_bins).min())
    bins = []
    for b in range(args.frontier_bins):
        members = refined[bin_N == b]
        out[frontier_arm(b)] = [random_subset(members, size, draw_seed(args, BINS, b, s)) for s in args.seeds]
        bins.append(
            FrontierBin(
                frontier_arm(b),
                int(members.size),
                float(1 - pass_rate[bin_N == b].mean()),
                float(np.mean([samples[i]["k"] for i in members])),
            )
        )
    return Arms(out, bins)


def train_arm(
    path: Path,
    data: list[Example],
    seed: int,
    recipe: Recipe,
    layout: RunLayout,
    args: RefinementArgs,
    held_out: Sequence[Problem],
    tokenizer,
) -> None:
    """Fine-tune a fresh copy of the student on ``data``; write its held-out correctness (atomically)."""
    model = load_hf(layout.base, args.device)
    model = fixed_data.train(recipe, data, args.schedule, seed, model=model, desc=path.parent.name)
    write_json(path, {"correct": greedy_correct(model, tokenizer, held_out).tolist(), "n_train": len(data)})


def run_arms(
    plan: Arms, reads: Mapping, recipe: Recipe, layout: RunLayout, args: RefinementArgs, held_out: Sequence[Problem]
) -> dict[str, list[dict]]:
    """Train every arm x seed whose file is missing; returns each arm's files' contents in seed order."""
    out: RefinementLayout = layout.refinement
    tokenizer = load_tokenizer(layout.base)
    vocab, task = tokenizer.get_vocab(), recipe.task
    problems = [task.from_record(p) for p in reads["problems"]]
    samples = reads["samples"]
    todo = [(a, j) for a in plan.rows for j in range(len(args.seeds)) if not out.arm(a, args.seeds[j]).exists()]
    for a, j in tqdm(todo, desc="refinement: arms"):
        data = [example(problems[samples[i]["problem"]], samples[i]["words"], vocab) for i in plan.rows[a][j]]
        train_arm(out.arm(a, args.seeds[j]), data, args.seeds[j], recipe, layout, args, held_out, tokenizer)
    return {a: [read_json(out.arm(a, s)) for s in args.seeds] for a in plan.rows}


def main(args: RefinementArgs) -> RefinementResult:
    """Train (or reuse) the teacher, read the samples, fine-tune every arm, write results.json and report.md."""
    recipe, layout = student_recipe(args), RunLayout(args.run)
    held_out = eval_problems(recipe.task, args.seed, args.teacher_k_max, args.eval_per_k)
    check_fits(held_out, recipe.model.max_len)
    check_writable(layout.refinement.root)
    init_run(args.run, "refinement", args)
    stage = cli.StageClock("refinement", layout.refinement.profile)
    stage(f"teacher: {args.teacher_steps} more pretraining updates on k <= {args.teacher_k_max}")
    train_teacher(layout, recipe, args)
    stage("samples: teacher traces, original traces, the student's reads and pass rates")
    reads = cached_json(layout.refinement.samples, lambda: read_samples(layout, recipe, args, held_out))
    plan = plan_arms(reads, args)
    stage(f"fine-tune {len(plan.rows)} arms x {len(args.seeds)} seeds, {args.ft_steps} updates each")
    files = run_arms(plan, reads, recipe, layout, args, held_out)
    stage("statistics, figures and report")
    header = dict(
        preset=args.preset,
        teacher_k_max=args.teacher_k_max,
        seeds=list(args.seeds),
        ft=args.schedule,
        teacher_steps=args.teacher_steps,
    )
    k_P = np.array([pr.k for pr in held_out])
    result = analyse(files, plan.bins, reads, k_P, recipe.k_train_max, args.frontier_bins, args.n_boot, header)
    write_json(layout.refinement.results, result.to_json())
    stage.finish()
    write_report(layout.refinement, result)
    print(result.verdict)
    return result


if __name__ == "__main__":
    cli.run(main, RefinementArgs, PRESETS)
