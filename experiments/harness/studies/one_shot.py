"""The measured value of one training problem, and a first-order estimate of it.

* One-sample amplification: GRPO from the base model on that single problem (``copies``
  groups of it per update, as in one-shot RLVR) for a fixed number of updates, then the
  change of accuracy on the run's shared held-out eval set — overall, per base-model
  band, and as damage (held-out problems the base model solved greedily that the
  trained model now fails).
* Gradient alignment: the GRPO gradient of the problem's first update against the
  policy gradient of expected accuracy on a set of problems, both at the base model.
  *Target-aware* when that set is the eval set value is measured on and the problem's
  rollouts are those of its first one-sample run (LESS/TracIn-style: it sees the answer);
  *blind* when the set is a validation set disjoint from the eval set by content and the
  rollouts are drawn independently of every value run.

Each (problem, seed) run is the band runs' update loop (``experiments.harness.training.rl``) drawing
from generators seeded by (seed, problem index, step), so a resumed study repeats exactly
the runs it had not finished.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from experiments.harness import seeds
from experiments.harness.tasks.family import Problem
from experiments.harness.training import rl
from experiments.harness.training.rl import PolicySpec
from experiments.harness.training.rl_loss import token_logprobs
from experiments.harness.training.rollout import EVAL_BATCH, rollouts, sampled_completions
from probes.behaviour import behaviour_rates


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """The shared held-out set with the base model's per-problem results on it."""

    problems: list[Problem]
    bands: list[str]
    """Base-model band of each problem (from bands/table.json)."""
    samples: int
    """Sampled (T = 1) completions per problem; accuracy averages over them."""
    seed: int
    """Seed of the sampling generator, the same for every model (common random numbers)."""


@dataclasses.dataclass(frozen=True)
class EvalResult:
    greedy: Bool[np.ndarray, " N"]
    sampled: Float[np.ndarray, " N"]
    """Fraction of the sampled completions that were correct, per problem."""
    behaviour: dict[str, float]
    """Behaviour rates of the sampled completions."""


def evaluate(model, tokenizer, ev: EvalSet) -> EvalResult:
    greedy = rollouts(model, tokenizer, ev.problems, mode=None, temperature=0.0, batch_size=EVAL_BATCH)
    parsed = sampled_completions(model, tokenizer, ev.problems, ev.samples, ev.seed)
    correct = np.array([[p.correct for p in ps] for ps in parsed], dtype=float).mean(1)
    return EvalResult(
        np.array([r.parsed.correct for r in greedy]), correct, behaviour_rates([p for ps in parsed for p in ps])
    )


def value_of(after: EvalResult, base: EvalResult, bands: Sequence[str]) -> dict[str, float]:
    """Accuracy change over the base model (sampled and greedy, overall and per band) and damage."""
    band_arr = np.asarray(bands)
    out = {
        "value": float(after.sampled.mean() - base.sampled.mean()),
        "value_greedy": float(after.greedy.mean() - base.greedy.mean()),
    }
    for band in sorted(set(bands)):
        sel = band_arr == band
        out[f"value/{band}"] = float(after.sampled[sel].mean() - base.sampled[sel].mean())
    solved = base.greedy
    out["damage"] = float((solved & ~after.greedy).sum() / max(1, solved.sum()))
    out["repair"] = float((~solved & after.greedy).sum() / max(1, (~solved).sum()))
    return out


def one_shot(
    model, ref_model, tokenizer, pool: Sequence[Problem], index: int, seed: int, spec: PolicySpec, steps: int
) -> dict:
    """Train ``model`` in place with GRPO on ``pool`` (one problem for a one-sample run) for
    ``steps`` updates, drawing from ``seeds.one_shot_step(seed, index, step)``.

    Returns the mean reward of every update's rollouts and the behaviour of the first and
    last update's rollouts (length collapse, direct answers, copied answers show here)."""
    generators = functools.partial(seeds.one_shot_step, seed, index)
    rewards, first, last = [], {}, {}
    for u in rl.train(model, ref_model, rl.optimizer(model, spec), tokenizer, pool, spec, generators, range(steps)):
        parsed = [r.parsed for g in u.groups for r in g]
        rewards.append(float(np.mean([p.reward for p in parsed])))
        first = first or behaviour_rates(parsed)
        last = behaviour_rates(parsed)
    return {"reward": rewards, "behaviour_first": first, "behaviour_last": last}


def flat_grad(loss: Tensor, model) -> Float[Tensor, " P"]:
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)]).detach()


def pg_loss_sum(model, b: rl.GroupBatch) -> Tensor:
    """Sum over completion tokens of -advantage * log-prob: at the sampling policy, the
    gradient of GRPO's clipped loss times the number of completion tokens."""
    logp_BT = token_logprobs(model(input_ids=b.ids_BL, attention_mask=b.mask_BL).logits, b.ids_BL)
    return -(b.adv_B[:, None] * logp_BT * b.comp_BT).sum()


def example_gradient(
    model, tokenizer, problem: Problem, spec: PolicySpec, generators: tuple[np.random.Generator, torch.Generator]
) -> Float[Tensor, " P"]:
    """Gradient of the problem's first GRPO update from rollouts drawn with ``generators`` (a one-sample
    run's ``seeds.one_shot_step(seed, index, 0)`` gives that run's own step-0 rollouts)."""
    rng, gen = generators
    groups, _ = rl.sample_groups(model.eval(), tokenizer, [problem], spec, rng, gen)
    b = rl.group_batch(groups, rl.scores(groups, spec.reward, spec.utility), spec.scale_std, spec.device)
    return flat_grad(pg_loss_sum(model, b) / b.comp_BT.sum().clamp(min=1), model)


def eval_gradient(
    model, tokenizer, problems: Sequence[Problem], group_size: int, gen: torch.Generator, device: str, chunk: int = 32
) -> Float[Tensor, " P"]:
    """Policy gradient of a problem set's expected accuracy, as a loss gradient (descending it
    raises accuracy): group-centred rewards without std scaling, ``group_size`` samples per problem."""
    total, n_tokens = None, 0
    for lo in range(0, len(problems), chunk):
        part = problems[lo : lo + chunk]
        res = rollouts(
            model, tokenizer, [pr for pr in part for _ in range(group_size)], mode=None, temperature=1.0, generator=gen
        )
        groups = [res[i : i + group_size] for i in range(0, len(res), group_size)]
        b = rl.group_batch(groups, rl.scores(groups), False, device)
        g = flat_grad(pg_loss_sum(model, b), model)
        total, n_tokens = (g if total is None else total + g), n_tokens + int(b.comp_BT.sum())
    return total / max(1, n_tokens)


def alignment(g_example: Float[Tensor, " P"], g_eval: Float[Tensor, " P"]) -> dict[str, float]:
    """``grad_cos``: cosine of the two loss gradients (0 when the example's is zero: an
    all-equal group updates nothing). ``grad_adam``: <sign(g_example), g_eval> / |g_eval|_1,
    the first-order eval gain of Adam's first step, which moves every weight by lr * sign(g)."""
    norm = g_example.norm() * g_eval.norm()
    cos = float(g_example @ g_eval / norm) if norm > 0 else 0.0
    adam = float(torch.sign(g_example) @ g_eval / g_eval.abs().sum().clamp(min=1e-30))
    return {"grad_cos": cos, "grad_adam": adam}
