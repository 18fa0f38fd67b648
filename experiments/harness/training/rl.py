"""The GRPO update loop, shared by band runs and the value study's one-sample runs.

Per update: draw prompts, sample G completions per prompt with the KV-cached sampler,
score them with the task's reward, turn rewards into group-relative advantages, and take
one or more PPO-clipped policy-gradient steps (``experiments.harness.training.rl_loss``) with an
optional k3 KL penalty to a reference model (always logged). Every random draw of
update t comes from generators the caller derives from (seed, t), so a resumed or
replayed run repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from experiments.harness import tally
from experiments.harness.tasks.family import Outcome, Problem
from experiments.harness.training.rewards import DEFAULT_PAYOFFS, DEFAULT_UTILITY, REWARDS, Reward, reward
from experiments.harness.training.rl_loss import (
    LOSS_AGGS,
    LossAgg,
    clipped_surrogate,
    denominator,
    group_advantages,
    kl_k3,
    row_terms,
    token_entropy,
    token_logprobs,
)
from experiments.harness.training.rollout import Rollout, rollouts
from experiments.harness.training.shaping import Shaper
from experiments.harness.training.supervised import CHUNK_ROWS, length_chunks
from probes.behaviour import behaviour_rates
from probes.calibration import Utility
from probes.padding import right_pad

Groups = list[list[Rollout]]
Generators = Callable[[int], tuple[np.random.Generator, torch.Generator]]
"""Update index -> (prompt-choice generator, sampling generator)."""


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """How GRPO samples and updates."""

    prompts_per_step: int = 16
    """Distinct prompts (groups) per update."""
    group_size: int = 8
    """Completions sampled per prompt (G)."""
    lr: float = 1e-4
    """AdamW learning rate (no weight decay)."""
    clip_eps: float = 0.2
    """PPO ratio clip."""
    inner_updates: int = 1
    """Gradient steps per sampled batch; > 1 makes the ratio clip active."""
    scale_std: bool = True
    """Divide group-centred rewards by the group std (GRPO); off: Dr. GRPO-style centring only."""
    kl_coef: float = 0.0
    """Weight of the k3 KL penalty to the reference model."""
    dynamic_sampling: bool = False
    """Drop groups with zero reward variance and refill with fresh prompts (DAPO)."""
    max_refills: int = 3
    """With dynamic sampling, extra prompt draws per update before training on what is there."""
    temperature: float = 1.0
    """Sampling temperature of rollouts."""
    rollout_batch: int = 64
    """Completions sampled at once."""
    loss_agg: LossAgg = "token_mean"
    """How token terms are reduced: token_mean (DAPO), seq_mean (original GRPO), constant (Dr. GRPO)."""
    reward: Reward = "binary"
    """What a completion is paid (``experiments.harness.training.rewards``): binary, brier, log or utility."""
    payoffs: tuple[float, float, float] = DEFAULT_PAYOFFS
    """The utility reward's payoffs for a right answer, a wrong one and an abstention."""
    device: str = "cpu"

    @property
    def utility(self) -> Utility:
        return Utility(*self.payoffs)

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"reward: must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        self.utility  # noqa: B018 -- validate the payoffs now
        if self.loss_agg not in LOSS_AGGS:
            raise ValueError(f"loss_agg: must be one of {LOSS_AGGS}, got {self.loss_agg!r}")
        if min(self.prompts_per_step, self.inner_updates, self.rollout_batch) < 1:
            raise ValueError("prompts_per_step, inner_updates, rollout_batch: must be >= 1")
        if self.group_size < 2:
            raise ValueError(f"group_size: group-relative advantages need >= 2, got {self.group_size}")
        if not (self.lr > 0 and self.clip_eps > 0 and self.temperature > 0 and self.kl_coef >= 0):
            raise ValueError("lr, clip_eps, temperature: must be > 0; kl_coef: must be >= 0")


def scores(groups: Groups, variant: Reward = "binary", utility: Utility = DEFAULT_UTILITY) -> Float[np.ndarray, "N G"]:
    """Each rollout's reward under ``variant``."""
    return (
        np.array([[reward(r.parsed, variant, utility) for r in g] for g in groups], dtype=float)
        if groups
        else np.zeros((0, 0))
    )


def sample_groups(
    model,
    tokenizer,
    pool: Sequence[Problem],
    spec: PolicySpec,
    rng,
    gen,
    pose: Callable[[Problem], Problem] | None = None,
) -> tuple[Groups, int]:
    """G rollouts per drawn prompt, each prompt as ``pose`` poses it (None: as drawn); with dynamic sampling, only
    groups with reward variance. Returns the groups to train on and how many groups were drawn in total."""
    kept, drawn = [], 0
    for _ in range(1 + (spec.max_refills if spec.dynamic_sampling else 0)):
        need = spec.prompts_per_step - len(kept)
        idx = rng.choice(len(pool), size=need, replace=len(pool) < need)
        posed = [pool[i] if pose is None else pose(pool[i]) for i in idx]
        batch = [pr for pr in posed for _ in range(spec.group_size)]
        res = rollouts(
            model,
            tokenizer,
            batch,
            mode=None,
            temperature=spec.temperature,
            generator=gen,
            batch_size=spec.rollout_batch,
        )
        groups = [res[i : i + spec.group_size] for i in range(0, len(res), spec.group_size)]
        drawn += len(groups)
        kept += [g for g in groups if not spec.dynamic_sampling or np.ptp(scores([g], spec.reward, spec.utility)) > 0]
        if len(kept) >= spec.prompts_per_step:
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


def group_batch(groups: Groups, rewards_NG: Float[np.ndarray, "N G"], scale_std: bool, device: str) -> GroupBatch:
    """Every row in one batch padded to its longest, in the groups' order."""
    return _padded([r for g in groups for r in g], _advantages(rewards_NG, scale_std), device)


def group_chunks(
    groups: Groups, rewards_NG: Float[np.ndarray, "N G"], scale_std: bool, device: str, rows: int = CHUNK_ROWS
) -> list[GroupBatch]:
    """``group_batch``'s rows sorted by length, in chunks of ``rows`` each padded to its own longest (on a CPU; a GPU,
    launch-bound on these models, takes them all at once)."""
    flat, adv_B = [r for g in groups for r in g], _advantages(rewards_NG, scale_std)
    lengths = [len(r.prompt_ids) + len(r.completion_ids) for r in flat]
    parts = length_chunks(lengths, rows if device == "cpu" else len(flat))
    return [_padded([flat[i] for i in part], adv_B[part], device) for part in parts]


def _advantages(rewards_NG: Float[np.ndarray, "N G"], scale_std: bool) -> Float[Tensor, " B"]:
    return group_advantages(torch.as_tensor(rewards_NG, dtype=torch.float32), scale_std).flatten()


def _padded(flat: Sequence[Rollout], adv_B: Float[Tensor, " B"], device: str) -> GroupBatch:
    ids_BL, mask_BL = (t.to(device) for t in right_pad([list(r.prompt_ids) + list(r.completion_ids) for r in flat]))
    n_prompt = torch.tensor([len(r.prompt_ids) for r in flat], device=device)
    pos_L = torch.arange(1, ids_BL.shape[1], device=device)
    comp_BT = (pos_L[None] >= n_prompt[:, None]) & mask_BL[:, 1:].bool()
    return GroupBatch(ids_BL, mask_BL, comp_BT, adv_B.to(device))


def policy_update(
    model,
    ref_model,
    opt,
    groups: Groups,
    spec: PolicySpec,
    rewards_NG: Float[np.ndarray, "N G"] | None = None,
    rows: int = CHUNK_ROWS,
) -> dict[str, float]:
    """One or more clipped policy-gradient steps on the sampled groups, paid ``rewards_NG`` (None: the spec's reward);
    returns loss stats.

    The rows go in chunks of ``rows`` sorted by length, each padded to its own longest (``group_chunks``: one batch
    padded to its longest was mostly padding), their gradients accumulated: each chunk's loss is its rows' terms over
    the whole batch's denominator (``rl_loss.row_terms``, ``rl_loss.denominator``), so the step is the whole batch's
    up to float rounding."""
    paid_NG = scores(groups, spec.reward, spec.utility) if rewards_NG is None else rewards_NG
    chunks = group_chunks(groups, paid_NG, spec.scale_std, spec.device, rows)
    tally.add("trained", spec.inner_updates * sum(len(r.prompt_ids) + len(r.completion_ids) for g in groups for r in g))
    n_tokens = sum(int(c.comp_BT.sum()) for c in chunks)
    width = max(c.comp_BT.shape[1] for c in chunks)
    den = denominator(spec.loss_agg, n_tokens, sum(len(c.adv_B) for c in chunks), width)
    logp = lambda m, c: token_logprobs(m(input_ids=c.ids_BL, attention_mask=c.mask_BL).logits, c.ids_BL)  # noqa: E731
    with torch.no_grad():
        ref_C = [logp(ref_model, c) for c in chunks]
        old_C = [logp(model, c) for c in chunks] if spec.inner_updates > 1 else [None] * len(chunks)
    for _ in range(spec.inner_updates):
        opt.zero_grad(set_to_none=True)
        loss, kl, entropy = (torch.zeros((), device=spec.device) for _ in range(3))
        for c, ref_BT, old_BT in zip(chunks, ref_C, old_C):
            logits_BLV = model(input_ids=c.ids_BL, attention_mask=c.mask_BL).logits
            logp_BT = token_logprobs(logits_BLV, c.ids_BL)
            old_BT = logp_BT.detach() if old_BT is None else old_BT
            surrogate_BT = clipped_surrogate(logp_BT, old_BT, c.adv_B, spec.clip_eps)
            kl_c = (kl_k3(logp_BT, ref_BT) * c.comp_BT).sum() / max(n_tokens, 1)
            loss_c = -row_terms(surrogate_BT, c.comp_BT, spec.loss_agg).sum() / den + spec.kl_coef * kl_c
            loss_c.backward()
            loss, kl = loss + loss_c.detach(), kl + kl_c.detach()
            entropy += (token_entropy(logits_BLV.detach()) * c.comp_BT).sum() / max(n_tokens, 1)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"grpo: loss is {loss.item()}")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return {
        "grpo/loss": loss.item(),
        "grpo/kl": kl.item(),
        "grpo/entropy": entropy.item(),
        "grpo/grad_norm": grad_norm.item(),
    }


def optimizer(model, spec: PolicySpec) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.0)


@dataclasses.dataclass(frozen=True)
class Update:
    """What one update saw and did (handed to the caller after the update)."""

    step: int
    """Updates done so far, this one included."""
    groups: Groups
    drawn: int
    """Groups drawn (more than ``len(groups)`` when dynamic sampling dropped some)."""
    loss: dict[str, float]
    """``policy_update``'s statistics (empty when no group was kept)."""
    rewards_NG: Float[np.ndarray, "N G"]
    """The groups' rewards (the run's variant)."""
    bonus_NG: Float[np.ndarray, "N G"] | None = None
    """Feature-guided credit paid on top of them (``shaping``; None: off)."""
    activity_NG: Float[np.ndarray, "N G"] | None = None
    """The shaping group's activity per rollout (share of completion tokens where it fires; None: off)."""


def train(
    model,
    ref_model,
    opt,
    tokenizer,
    pool: Sequence[Problem],
    spec: PolicySpec,
    generators: Generators,
    steps: Sequence[int],
    pose: Callable[[Problem, int], Problem] | None = None,
    shaper: Shaper | None = None,
):
    """Run GRPO updates ``steps`` (indices t; update t draws from ``generators(t)`` and poses each drawn problem as
    ``pose(problem, t)``, None: as drawn), yielding each ``Update``. A ``shaper`` adds its bonus to failed rollouts'
    rewards before the advantages are taken.

    The model is in eval mode while sampling and between updates, in train mode while updating."""
    for t in steps:
        rng, gen = generators(t)
        posed = None if pose is None else functools.partial(pose, t=t)
        groups, drawn = sample_groups(model.eval(), tokenizer, pool, spec, rng, gen, posed)
        rewards_NG, bonus_NG, activity_NG = scores(groups, spec.reward, spec.utility), None, None
        if shaper is not None and groups:
            bonus_NG, activity_NG = shaper.bonus(model, groups)
        paid_NG = rewards_NG if bonus_NG is None else rewards_NG + bonus_NG
        loss = policy_update(model.train(), ref_model, opt, groups, spec, paid_NG) if groups else {}
        model.eval()
        yield Update(t + 1, groups, drawn, loss, rewards_NG, bonus_NG, activity_NG)


def rollout_metrics(update: Update) -> dict[str, float]:
    rewards_NG = update.rewards_NG
    flat = [r.parsed for g in update.groups for r in g]
    return {
        "grpo/reward_mean": float(rewards_NG.mean()),
        "grpo/reward_std": float(rewards_NG.std()),
        "grpo/frac_zero_std": float((rewards_NG.std(1) == 0).mean()),
        "grpo/groups_drawn": update.drawn,
        **shaping_metrics(update),
        **{f"behaviour/{k}": v for k, v in behaviour_rates(flat).items()},
    }


def shaping_metrics(update: Update) -> dict[str, float | None]:
    """With feature-guided credit: the group's mean activity (all rollouts, failed ones) and the share of the paid
    reward that came from the bonus (reward hacking: activity rising while the task reward does not)."""
    if update.bonus_NG is None:
        return {}
    failed_NG = np.array([[not r.parsed.correct for r in g] for g in update.groups])
    paid = update.rewards_NG.sum() + update.bonus_NG.sum()
    return {
        "shaping/activity": float(update.activity_NG.mean()),
        "shaping/activity_failed": float(update.activity_NG[failed_NG].mean()) if failed_NG.any() else None,
        "shaping/bonus_share": float(update.bonus_NG.sum() / paid) if paid > 0 else 0.0,
    }


def ledger_row(step: int, problem: Problem, parsed: Sequence[Outcome]) -> dict:
    """One group's ledger row: which prompt, how often it was solved (and by luck), how long, which modes."""
    modes = [p.mode or "invalid" for p in parsed]
    return {
        "step": step,
        "pid": problem.pid,
        "k": problem.k,
        "successes": sum(p.correct for p in parsed),
        "lucky_successes": sum(p.lucky_success for p in parsed),
        "group_size": len(parsed),
        "mean_length": float(np.mean([p.length for p in parsed])),
        "modes": {m: modes.count(m) for m in ("deliberate", "direct", "invalid")},
    }


def ledger_rows(update: Update) -> list[dict]:
    """One row per sampled group (``ledger_row``)."""
    return [ledger_row(update.step, g[0].problem, [r.parsed for r in g]) for g in update.groups]
