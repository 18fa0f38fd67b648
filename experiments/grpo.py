"""GRPO on one difficulty band: ``python -m experiments.grpo --run runs/NAME --band medium --seed 0``.

Trains from the run's base model on that band's pool only (bands/table.json) and writes
``runs/NAME/bands/<band>/seed<s>/``: ``metrics.jsonl`` (one line per update, eval lines
every few steps), ``ledger.jsonl`` (one line per prompt visit) and ``checkpoint-<step>/`` (HF
model dirs with the optimizer state beside the weights).

The update loop is ``experiments.harness.training.rl``. Every random draw of update t comes from
generators seeded with (seed, t) (``experiments.harness.seeds.grpo_step``), so a run
resumed from ``checkpoint-s`` repeats exactly what an uninterrupted run does after step s.
``args.json`` beside the run records its resolved arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from experiments.harness import cli, seeds
from experiments.harness.reading.sources import model_identity
from experiments.harness.rundir import (
    append_jsonl,
    init_run,
    resolved,
    truncate_jsonl,
    write_json,
    write_jsonl,
    write_text,
)
from experiments.harness.tasks.family import Problem, Task
from experiments.harness.tasks.registry import hedged_task, task_of_table, with_families
from experiments.harness.tasks.reverse_curriculum import poser
from experiments.harness.training import rl
from experiments.harness.training.model import save_model
from experiments.harness.training.rewards import DEFAULT_PAYOFFS, Reward
from experiments.harness.training.rl_loss import LossAgg
from experiments.harness.training.rollout import eval_metrics, sampled_rollouts
from experiments.harness.training.shaping import Shaper
from experiments.harness.training.train_state import load_state, save_state
from probes.bands import BANDS, Band
from probes.layout import (
    INGESTED,
    LEDGER,
    METRICS,
    RUN_ARGS,
    TRAINER_STATE,
    RunDirError,
    RunLayout,
    checkpoint_dir,
    checkpoints,
    latest_checkpoint,
    point_name,
    read_json,
)
from probes.models import load_hf, load_tokenizer


@dataclasses.dataclass(frozen=True)
class GRPOArgs:
    """GRPO from the base model on one band's pool, with per-step metrics and a per-prompt ledger."""

    run: Path = Path("runs/default")
    """Run directory with base/ and bands/table.json."""
    band: Band = "medium"
    """Which band's pool to train on."""
    seed: int = 0
    """Seeds prompt order, sampling and evaluation; one run per (band, seed)."""
    study: str = ""
    """Runs another study makes (with another reward, say) live in <run>/<study>/seed<s>, the study's path naming
    the band and arm; empty: the band study's bands/<band>/seed<s>."""
    preset: str = "default"
    """Named defaults (smoke, default, gpu; for mazes maze-smoke, maze, maze-gpu)."""
    steps: int = 60
    """Policy updates (the fixed budget, equal for every band)."""
    prompts_per_step: int = 16
    """Distinct prompts per update."""
    group_size: int = 8
    """Completions sampled per prompt (G)."""
    lr: float = 1e-4
    """AdamW learning rate (no weight decay)."""
    clip_eps: float = 0.2
    """PPO ratio clip."""
    inner_updates: int = 1
    """Gradient steps per sampled batch; > 1 makes the ratio clip active."""
    scale_std: bool = True
    """Divide group-centred rewards by the group std (GRPO); off gives Dr.GRPO-style centring only."""
    kl_coef: float = 0.0
    """Weight of the k3 KL penalty to the base model (KL is logged either way)."""
    dynamic_sampling: bool = False
    """Drop groups with zero reward variance and refill with fresh prompts (DAPO)."""
    max_refills: int = 3
    """With dynamic sampling, extra prompt draws per update before training on what is there."""
    temperature: float = 1.0
    """Sampling temperature of rollouts."""
    rollout_batch: int = 64
    """Completions sampled at once (the sampler's per-token cost is paid per batch: a GPU wants them all at once).
    Which batch a completion lands in sets its random draws, so this is part of what a run is."""
    loss_agg: LossAgg = "token_mean"
    """Loss aggregation: token_mean (DAPO: every completion token weighs the same), seq_mean (original
    GRPO: per-sequence mean, a 1/|o| length bias), constant (Dr. GRPO: sum / batch constant)."""
    reward: Reward = "binary"
    """What a completion is paid (``experiments.harness.training.rewards``): binary (right answer), brier (RLCR: right
    minus the squared error of the stated confidence), log (right plus the log score: unbounded), utility (the
    payoffs below; abstaining pays). brier and log need a run pretrained with --confidence."""
    payoffs: tuple[float, float, float] = DEFAULT_PAYOFFS
    """The utility reward's payoffs for a right answer, a wrong one and an abstention."""
    reverse_curriculum: float = 0.0
    """Reverse curriculum (``experiments.harness.tasks.reverse_curriculum``): the share of the run's updates over which
    each drawn problem is posed with all but one of its trace steps already written, falling linearly to none
    (0: off, every problem as drawn). The reward is the task's own on the full problem."""
    shaping: str = ""
    """Feature-guided credit (``experiments.harness.training.shaping``): a band study's ``sae/<name>/features.json``,
    whose group pays failed rollouts for the share of their tokens where it fires (empty: off; binary reward only)."""
    shaping_group: str = "deliberation"
    """The feature group that pays (one of the features file's groups)."""
    shaping_weight: float = 0.1
    """A failed rollout's bonus when the group fires on all its tokens (fixed December 2026, before any result)."""
    eval_every: int = 20
    """Steps between evaluations on the shared held-out set (also at step 0 and the end). One evaluation
    costs about 10 updates on 2 CPU cores; the band study measures steps in between only where matching needs them."""
    eval_samples: int = 4
    """Sampled completions per held-out problem in an evaluation; every evaluation of a run uses the same draws. With
    4 x 480 problems the sampling SE of a measured gain (the matched metric) is near 0.012; 8 put it near 0.009 at
    twice the cost of every evaluation, matching replay and gain-attribution pass (halved in December 2026, for time,
    before the new default's results were read)."""
    checkpoint_every: int = 10
    """Steps between checkpoints (checkpoint-<step>/); the last step is always saved."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        for name in (
            "steps",
            "prompts_per_step",
            "rollout_batch",
            "eval_every",
            "checkpoint_every",
            "inner_updates",
            "eval_samples",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.reverse_curriculum <= 1.0:
            raise ValueError(f"reverse_curriculum: must lie in [0, 1], got {self.reverse_curriculum}")
        if self.shaping and self.reward != "binary":
            raise ValueError(
                f"shaping: needs the binary reward (a bonus below a success's), got reward {self.reward!r}"
            )
        if not 0.0 < self.shaping_weight < 1.0:
            raise ValueError(f"shaping_weight: must lie in (0, 1), got {self.shaping_weight}")
        if self.band not in BANDS:
            raise ValueError(f"band: must be one of {BANDS}, got {self.band!r}")
        self.policy  # noqa: B018 -- validate the derived policy spec now

    @property
    def pose(self) -> Callable[[Problem, int], Problem] | None:
        """How update t poses a drawn problem (None: as drawn)."""
        return poser(round(self.reverse_curriculum * self.steps)) if self.reverse_curriculum else None

    def shaper(self) -> Shaper | None:
        """The feature-guided credit this run pays (None: off), or a one-line RunDirError naming what is missing."""
        if not self.shaping:
            return None
        return Shaper.of(Path(self.shaping), self.shaping_group, self.shaping_weight, self.device)

    @property
    def out(self) -> Path:
        return RunLayout(self.run).band_run(self.band, self.seed, self.study)

    @property
    def stage(self) -> str:
        """The run's section name in config.json."""
        return "/".join(["grpo", *([self.study] if self.study else [self.band]), f"seed{self.seed}"])

    @property
    def policy(self) -> rl.PolicySpec:
        return cli.spec_of(rl.PolicySpec, self)


# Smoke: enough prompts and updates for a tiny model to gain measurably (lr 1e-3 collapsed it); 4 eval samples, as the
# default.
_SMOKE = dict(steps=8, prompts_per_step=8, group_size=8, lr=3e-4, eval_every=4, checkpoint_every=2)
_GPU = dict(
    steps=200, prompts_per_step=64, group_size=16, rollout_batch=1024, eval_every=20, checkpoint_every=20, device="cuda"
)
PRESETS: dict[str, dict] = with_families(
    "grpo",
    {
        "default": {},
        "smoke": _SMOKE,
        "gpu": _GPU,
    },
)


def save_checkpoint(out: Path, step: int, model, tokenizer, opt, band: Band) -> None:
    ckpt = checkpoint_dir(out, step)
    save_model(model, tokenizer, ckpt, meta={"stage": "grpo", "band": band, "step": step})
    save_state(ckpt / TRAINER_STATE, opt, step)  # written last: marks the checkpoint complete


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """What a band run trains and evaluates on, read from the run directory."""

    pool: list[Problem]
    eval_set: list[dict]
    task: Task

    @classmethod
    def read(cls, args: GRPOArgs) -> RunInputs:
        layout = RunLayout(args.run)
        if not layout.band_table.exists():
            raise RunDirError(f"{layout.band_table}: missing; run experiments.bands first")
        table = read_json(layout.band_table)
        task = task_of_table(table)
        return cls([task.from_record(r) for r in table["pools"][args.band]], table["eval_set"], task)

    def eval_per_k(self, n: int) -> RunInputs:
        """The same inputs with only the first n held-out problems of each chain length."""
        count: Counter = Counter()
        return dataclasses.replace(
            self, eval_set=[r for r in self.eval_set if count.update([r["k"]]) or count[r["k"]] <= n]
        )


def evaluate(
    model, tokenizer, args: GRPOArgs, inputs: RunInputs, reference=None, greedy: bool = True, kl_if=None
) -> dict[str, float]:
    """The held-out evaluation of a run (the same sampling draws at every step: common random numbers); with the
    base model as ``reference``, also the KL to it (``rollout.eval_metrics``: ``greedy``, ``kl_if``)."""
    draws, n = seeds.eval_sampling(args.seed), args.eval_samples
    return eval_metrics(model.eval(), tokenizer, inputs.eval_set, inputs.task, draws, n, reference, greedy, kl_if)


def step0_evaluation(model, tokenizer, args: GRPOArgs, inputs: RunInputs) -> dict[str, float]:
    """``evaluate`` of the base model (its own KL reference), which every band run of one seed makes on the same
    draws: made by the first, read by the others from ``RunLayout.step0_eval`` (keyed by what it reads; NaN kept)."""
    path = RunLayout(args.run).step0_eval(args.seed)
    key = {
        "seed": args.seed,
        "eval_samples": args.eval_samples,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "base": model_identity(RunLayout(args.run).base),
        "eval_set": hashlib.sha256(json.dumps(inputs.eval_set, sort_keys=True).encode()).hexdigest(),
    }
    cached = json.loads(path.read_text()) if path.is_file() else {}
    if cached.get("key") != key:
        cached = {"key": key, "metrics": evaluate(model, tokenizer, args, inputs, model)}
        write_text(path, json.dumps(cached))
    return cached["metrics"]


def sampled_correct(
    model, tokenizer, args: GRPOArgs, inputs: RunInputs, n_samples: int, rows=None, on_batch=None
) -> np.ndarray:
    """Per sample row (problem-major), whether a free-choice completion at T = 1 on the held-out set is right,
    with the run's evaluation draws (every row its own random numbers, the same for every model), for all rows or
    only ``rows``; no greedy pass or behaviour rates. What a patched model is scored by."""
    problems = [inputs.task.from_record(r) for r in inputs.eval_set]
    res = sampled_rollouts(model.eval(), tokenizer, problems, n_samples, seeds.eval_sampling(args.seed), rows, on_batch)
    return np.array([r.parsed.correct for r in res], dtype=bool)


def sampled_accuracy(model, tokenizer, args: GRPOArgs, inputs: RunInputs, n_samples: int) -> float:
    """The mean of ``sampled_correct`` over every row."""
    return float(sampled_correct(model, tokenizer, args, inputs, n_samples).mean())


def load_at(args: GRPOArgs, step: int):
    """(model in train mode, tokenizer, optimizer) at a complete checkpoint, or the base model at step 0."""
    src = checkpoint_dir(args.out, step) if step else RunLayout(args.run).base
    model, tokenizer = load_hf(src, args.device).train(), load_tokenizer(src)
    opt = rl.optimizer(model, args.policy)
    if step:
        load_state(src / TRAINER_STATE, opt)
    return model, tokenizer, opt


def replay(args: GRPOArgs, step: int) -> Path:
    """The checkpoint after ``step`` updates of a finished run, regenerated if it was not stored: every update is a pure
    function of (seed, step), so replaying from the nearest earlier checkpoint gives the same weights."""
    start = max((s for s in checkpoints(args.out) if s <= step), default=0)
    if start < step and (args.out / INGESTED).is_file():
        raise RunDirError(f"{args.out}: ingested run has no checkpoint at step {step}; it cannot be replayed here")
    if start < step:
        inputs = RunInputs.read(args)
        model, tokenizer, opt = load_at(args, start)
        ref_model = load_hf(RunLayout(args.run).base, args.device)
        gens = functools.partial(seeds.grpo_step, args.seed)
        for _ in rl.train(
            model,
            ref_model,
            opt,
            tokenizer,
            inputs.pool,
            args.policy,
            gens,
            range(start, step),
            args.pose,
            args.shaper(),
        ):
            pass
        save_checkpoint(args.out, step, model, tokenizer, opt, args.band)
    return checkpoint_dir(args.out, step)


def blended(args: GRPOArgs, step: float):
    """The model after a fractional ``step`` = t + a: theta_t + a (theta_{t+1} - theta_t). With AdamW, no weight
    decay and one inner update per step this is update t taken at learning rate a * lr, a real trajectory
    (``probes.matched_gain``); with more inner updates it would be a blend, so it is refused."""
    if args.inner_updates != 1:
        raise RunDirError(f"{args.out}: a fractional step blends one update; inner_updates is {args.inner_updates}")
    t = math.floor(step)
    model, before = (
        load_hf(replay(args, t + 1), args.device),
        load_hf(replay(args, t) if t else RunLayout(args.run).base, args.device),
    )
    with torch.no_grad():
        for p_after, p_before in zip(model.parameters(), before.parameters(), strict=True):
            p_after.copy_(torch.lerp(p_before, p_after, step - t))
    return model.eval()


def at_step(args: GRPOArgs, step: float) -> Path:
    """The run's model after ``step`` updates as an HF directory: a stored or replayed checkpoint for a whole step,
    ``interp-<step>/`` (weights only, never resumed from) for a fractional one."""
    if float(step).is_integer():
        return replay(args, int(step))
    path = args.out / point_name(step)
    if not (path / "model.safetensors").exists():
        tokenizer = load_tokenizer(replay(args, math.floor(step) + 1))
        save_model(
            blended(args, step), tokenizer, path, meta={"stage": "grpo", "band": args.band, "step": step, "blend": True}
        )
    return path


def main(args: GRPOArgs) -> Path:
    """Train (or resume) one band run; returns its output directory (an ingested run is left as it is)."""
    if (args.out / INGESTED).is_file():
        print(f"{args.out}: ingested from {read_json(args.out / INGESTED)['engine']}; not trained here")
        return args.out
    inputs = RunInputs.read(args)
    if args.reward in ("brier", "log"):
        hedged_task(args.run, "confidence", f"the {args.reward} reward")
    init_run(args.run, args.stage, args)
    write_json(args.out / RUN_ARGS, resolved(args))
    start = latest_checkpoint(args.out)
    if start >= args.steps:
        print(f"{args.out}: finished ({args.steps} steps)")
        return args.out
    model, tokenizer, opt = load_at(args, start)
    ref_model = load_hf(RunLayout(args.run).base, args.device)  # KL to base is logged even when not penalised
    shaper = args.shaper()
    metrics_path, ledger_path = args.out / METRICS, args.out / LEDGER
    for path in (metrics_path, ledger_path):
        truncate_jsonl(path, start)
    if start == 0:
        write_jsonl(metrics_path, [{"step": 0, **step0_evaluation(model, tokenizer, args, inputs)}])
        write_jsonl(ledger_path, [])
    bar = tqdm(total=args.steps, initial=start, desc=args.stage)
    last_acc = math.nan
    gens = functools.partial(seeds.grpo_step, args.seed)
    for u in rl.train(
        model, ref_model, opt, tokenizer, inputs.pool, args.policy, gens, range(start, args.steps), args.pose, shaper
    ):
        row = {"step": u.step, **rl.rollout_metrics(u), **u.loss}
        if u.step % args.eval_every == 0 or u.step == args.steps:
            row.update(evaluate(model, tokenizer, args, inputs, ref_model))
            last_acc = row["eval/acc/all/sampled"]
        append_jsonl(ledger_path, rl.ledger_rows(u))
        append_jsonl(metrics_path, [row])
        if u.step % args.checkpoint_every == 0 or u.step == args.steps:
            save_checkpoint(args.out, u.step, model, tokenizer, opt, args.band)
        bar.update()
        bar.set_postfix(reward=f"{row['grpo/reward_mean']:.2f}", acc=f"{last_acc:.2f}")
    bar.close()
    return args.out


if __name__ == "__main__":
    cli.run(main, GRPOArgs, PRESETS)
