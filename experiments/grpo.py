"""GRPO on one difficulty band: ``python -m experiments.grpo --run runs/NAME --band medium --seed 0``.

Trains from the run's base model on that band's pool only (bands/table.json) and writes
``runs/NAME/bands/<band>/seed<s>/``: ``metrics.jsonl`` (one line per update, eval lines
every few steps), ``ledger.jsonl`` (one line per prompt visit) and ``ckpt-<step>/`` (HF
model dirs with the optimizer state beside the weights).

Every random draw of update t comes from generators seeded with (seed, t), so a run
resumed from ``ckpt-s`` repeats exactly what an uninterrupted run does after step s.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from experiments import cli
from experiments.bands import BANDS, Band
from experiments.evaluate import Rollout, eval_metrics, rollouts
from experiments.grpo_loss import (
    clipped_policy_loss,
    group_advantages,
    kl_k3,
    masked_mean,
    token_entropy,
    token_logprobs,
)
from experiments.model import save_model
from experiments.rundir import RunDirError, atomic_write_text, init_run, read_json
from experiments.sampling import right_pad
from experiments.task import Problem
from experiments.train_state import load_state, save_state
from probes.behaviour import behaviour_rates
from probes.models import load_hf, load_tokenizer
from probes.runs import read_jsonl


@dataclasses.dataclass(frozen=True)
class GRPOArgs:
    """GRPO from the base model on one band's pool, with per-step metrics and a per-prompt ledger."""

    run: Path = Path("runs/default")
    """Run directory with base/ and bands/table.json."""
    band: Band = "medium"
    """Which band's pool to train on."""
    seed: int = 0
    """Seeds prompt order, sampling and evaluation; one run per (band, seed)."""
    preset: str = "default"
    """Named defaults (smoke, default, gpu)."""
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
    eval_every: int = 10
    """Steps between evaluations on the shared held-out set (also at step 0 and the end)."""
    checkpoint_every: int = 10
    """Steps between checkpoints (ckpt-<step>/); the last step is always saved."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "eval_every", "checkpoint_every", "inner_updates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError(f"group_size: group-relative advantages need >= 2, got {self.group_size}")
        if self.band not in BANDS:
            raise ValueError(f"band: must be one of {BANDS}, got {self.band!r}")
        if not (self.lr > 0 and self.clip_eps > 0 and self.temperature > 0 and self.kl_coef >= 0):
            raise ValueError("lr, clip_eps, temperature: must be > 0; kl_coef: must be >= 0")

    @property
    def out(self) -> Path:
        return self.run / "bands" / self.band / f"seed{self.seed}"


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(steps=4, prompts_per_step=4, group_size=4, eval_every=2, checkpoint_every=2),
    "gpu": dict(steps=200, prompts_per_step=64, group_size=16, eval_every=20, checkpoint_every=20, device="cuda"),
}


TRAINER_STATE = "trainer_state.safetensors"
"""Optimizer state beside a checkpoint's weights; its presence marks the checkpoint complete."""


def step_generators(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Prompt-choice and sampling generators of one update, a pure function of (seed, step)."""
    return np.random.Generator(np.random.PCG64([seed, step, 7])), torch.Generator().manual_seed(seed * 1_000_003 + step)


def sample_groups(model, tokenizer, pool, args: GRPOArgs, rng, gen) -> tuple[list[list[Rollout]], int]:
    """G rollouts per drawn prompt; with dynamic sampling, only groups with reward variance.

    Returns the groups to train on and how many groups were drawn in total."""
    kept, drawn = [], 0
    for _ in range(1 + (args.max_refills if args.dynamic_sampling else 0)):
        need = args.prompts_per_step - len(kept)
        idx = rng.choice(len(pool), size=need, replace=len(pool) < need)
        batch = [pool[i] for i in idx for _ in range(args.group_size)]
        res = rollouts(model, tokenizer, batch, mode=None, temperature=args.temperature, generator=gen)
        groups = [res[i : i + args.group_size] for i in range(0, len(res), args.group_size)]
        drawn += len(groups)
        kept += [g for g in groups if not args.dynamic_sampling or len({r.parsed.correct for r in g}) > 1]
        if len(kept) >= args.prompts_per_step:
            break
    return kept, drawn


@dataclasses.dataclass(frozen=True)
class GroupBatch:
    """Sampled groups as one right-padded batch, with what the policy loss needs."""

    ids_BL: Int[Tensor, "B L"]
    mask_BL: Int[Tensor, "B L"]
    comp_BT: Bool[Tensor, "B L-1"]
    """Targets that are completion tokens (the loss runs over these only)."""
    adv_B: Float[Tensor, " B"]


def group_batch(groups: list[list[Rollout]], scale_std: bool, device: str) -> GroupBatch:
    rewards_NG = torch.tensor([[r.parsed.reward for r in g] for g in groups])
    flat = [r for g in groups for r in g]
    ids_BL, mask_BL = (t.to(device) for t in right_pad([list(r.prompt_ids) + list(r.completion_ids) for r in flat]))
    n_prompt = torch.tensor([len(r.prompt_ids) for r in flat], device=device)
    pos_L = torch.arange(1, ids_BL.shape[1], device=device)
    comp_BT = (pos_L[None] >= n_prompt[:, None]) & mask_BL[:, 1:].bool()
    return GroupBatch(ids_BL, mask_BL, comp_BT, group_advantages(rewards_NG, scale_std).flatten().to(device))


def policy_update(model, ref_model, opt, groups: list[list[Rollout]], args: GRPOArgs) -> dict[str, float]:
    """One or more clipped policy-gradient steps on the sampled groups; returns loss stats."""
    b = group_batch(groups, args.scale_std, args.device)
    ids_BL, mask_BL, comp_BT, adv_B = b.ids_BL, b.mask_BL, b.comp_BT, b.adv_B
    logp_old_BT = None
    with torch.no_grad():
        logp_ref_BT = token_logprobs(ref_model(input_ids=ids_BL, attention_mask=mask_BL).logits, ids_BL)
        if args.inner_updates > 1:
            logp_old_BT = token_logprobs(model(input_ids=ids_BL, attention_mask=mask_BL).logits, ids_BL)
    for _ in range(args.inner_updates):
        logits_BLV = model(input_ids=ids_BL, attention_mask=mask_BL).logits
        logp_BT = token_logprobs(logits_BLV, ids_BL)
        old_BT = logp_BT.detach() if logp_old_BT is None else logp_old_BT
        pg = clipped_policy_loss(logp_BT, old_BT, adv_B, comp_BT, args.clip_eps)
        kl = masked_mean(kl_k3(logp_BT, logp_ref_BT), comp_BT)
        loss = pg + args.kl_coef * kl
        if not torch.isfinite(loss):
            raise FloatingPointError(f"grpo: loss is {loss.item()}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    entropy = masked_mean(token_entropy(logits_BLV.detach()), comp_BT)
    return {"grpo/loss": loss.item(), "grpo/kl": kl.item(), "grpo/entropy": entropy.item(), "grpo/grad_norm": grad_norm.item()}


def rollout_metrics(groups: list[list[Rollout]], drawn: int) -> dict[str, float]:
    rewards_NG = np.array([[r.parsed.reward for r in g] for g in groups])
    flat = [r.parsed for g in groups for r in g]
    return {
        "grpo/reward_mean": float(rewards_NG.mean()),
        "grpo/reward_std": float(rewards_NG.std()),
        "grpo/frac_zero_std": float((rewards_NG.std(1) == 0).mean()),
        "grpo/groups_drawn": drawn,
        **{f"behaviour/{k}": v for k, v in behaviour_rates(flat).items()},
    }


def ledger_rows(step: int, groups: list[list[Rollout]]) -> list[dict]:
    rows = []
    for g in groups:
        modes = [r.parsed.mode or "invalid" for r in g]
        rows.append({
            "step": step, "pid": g[0].problem.pid, "k": g[0].problem.k,
            "successes": sum(r.parsed.correct for r in g), "group_size": len(g),
            "mean_length": float(np.mean([r.parsed.length for r in g])),
            "modes": {m: modes.count(m) for m in ("deliberate", "direct", "invalid")},
        })  # fmt: skip
    return rows


def latest_checkpoint(out: Path) -> int:
    """Step of the newest complete checkpoint (0 when there is none)."""
    steps = [int(p.name.split("-")[1]) for p in out.glob("ckpt-*") if (p / TRAINER_STATE).exists()]
    return max(steps, default=0)


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep rows with step <= max_step: what a resumed run will write again is dropped."""
    if path.exists():
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in read_jsonl(path) if r["step"] <= max_step))


def append_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def save_checkpoint(out: Path, step: int, model, tokenizer, opt, band: Band) -> None:
    ckpt = out / f"ckpt-{step}"
    save_model(model, tokenizer, ckpt, meta={"stage": "grpo", "band": band, "step": step})
    save_state(ckpt / TRAINER_STATE, opt, step)  # written last: marks the checkpoint complete


def main(args: GRPOArgs) -> Path:
    """Train (or resume) one band run; returns its output directory."""
    table_path = args.run / "bands" / "table.json"
    if not table_path.exists():
        raise RunDirError(f"{table_path}: missing; run experiments.bands first")
    init_run(args.run, f"grpo/{args.band}/seed{args.seed}", args)
    table = read_json(table_path)
    pool = [Problem.from_record(r, table["p"]) for r in table["pools"][args.band]]
    eval_set = table["eval_set"]
    args.out.mkdir(parents=True, exist_ok=True)
    start = latest_checkpoint(args.out)
    if start >= args.steps:
        print(f"{args.out}: finished ({args.steps} steps)")
        return args.out
    src = args.out / f"ckpt-{start}" if start else args.run / "base"
    model, tokenizer = load_hf(src, args.device).train(), load_tokenizer(src)
    ref_model = load_hf(args.run / "base", args.device)  # KL to base is logged even when not penalised
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    if start:
        load_state(src / TRAINER_STATE, opt)
    metrics_path, ledger_path = args.out / "metrics.jsonl", args.out / "ledger.jsonl"
    for path in (metrics_path, ledger_path):
        truncate_jsonl(path, start)
    if start == 0:
        base_row = {"step": 0, **eval_metrics(model.eval(), tokenizer, eval_set, table["p"], args.seed)}
        atomic_write_text(metrics_path, json.dumps(base_row) + "\n")
        atomic_write_text(ledger_path, "")
    bar = tqdm(range(start, args.steps), desc=f"grpo {args.band} s{args.seed}", initial=start, total=args.steps)
    last_acc = math.nan
    for t in bar:
        rng, gen = step_generators(args.seed, t)
        groups, drawn = sample_groups(model.eval(), tokenizer, pool, args, rng, gen)
        row = {"step": t + 1, **rollout_metrics(groups, drawn)}
        if groups:
            row.update(policy_update(model.train(), ref_model, opt, groups, args))
        if (t + 1) % args.eval_every == 0 or t + 1 == args.steps:
            row.update(eval_metrics(model.eval(), tokenizer, eval_set, table["p"], args.seed + t + 1))
            last_acc = row["eval/acc/all/greedy"]
        append_jsonl(ledger_path, ledger_rows(t + 1, groups))
        append_jsonl(metrics_path, [row])
        if (t + 1) % args.checkpoint_every == 0 or t + 1 == args.steps:
            save_checkpoint(args.out, t + 1, model, tokenizer, opt, args.band)
        bar.set_postfix(reward=f"{row['grpo/reward_mean']:.2f}", acc=f"{last_acc:.2f}")
    return args.out


if __name__ == "__main__":
    cli.run(main, GRPOArgs, PRESETS)
