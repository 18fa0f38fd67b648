"""Roll a model out on task problems and score the completions.

Modes can be forced: deliberate by appending <think> to the prompt, direct by banning
<think> as the first token; ``mode=None`` lets the model choose.

Rollouts can run on the HF model inside a TransformerBridge (``bridge.original_model``),
whose modules the bridge has wrapped: hooks added with ``bridge.hooks`` then act on every
sampled token while the KV-cached sampler does the decoding (``behaviour_table``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from experiments.harness import seeds
from experiments.harness.tasks.family import MODES, PAD, THINK, Mode, Outcome, Problem, Task
from experiments.harness.training.sampling import sample
from probes.behaviour import behaviour_rates
from probes.calibration import calibration_summary
from probes.padding import left_pad, right_pad


@dataclasses.dataclass(frozen=True)
class Rollout:
    problem: Problem
    prompt_ids: tuple[int, ...]
    """Prompt token ids, including a forced <think> when the mode was forced deliberate."""
    completion_ids: tuple[int, ...]
    """Completion token ids (the forced <think> excluded), up to and including <eos>."""
    parsed: Outcome


EVAL_BATCH = 512
"""Rollout batch for evaluation, which has no batch of its own: the sampler's per-token cost (Python,
hooks) is paid per batch, so wide batches run evaluation 1.4x faster plain and 2.3x faster through a
lockstep pair than batches of 64 (2 CPU cores, quiet host)."""


def max_new_tokens(problems: Sequence[Problem]) -> int:
    """Room for the longest canonical completion plus slack for a wandering trace."""
    return max(len(pr.completion_words("deliberate")) for pr in problems) + 4


@torch.no_grad()
def rollouts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    *,
    mode: Mode | None,
    temperature: float,
    generator: torch.Generator | None = None,
    uniforms: Tensor | None = None,
    batch_size: int = 64,
    on_batch: Callable[[list[int]], None] | None = None,
) -> list[Rollout]:
    """One completion per problem, parsed against it, at most ``max_new_tokens`` of its own problem long (a batch
    samples up to its longest problem's room). Sampling draws from ``generator``, or from ``uniforms`` (a row of
    uniforms per problem: ``sample``). ``on_batch`` is called with each batch's problem indices before it is sampled
    (a hook that treats rows differently reads it)."""
    think_id = tokenizer.convert_tokens_to_ids(THINK)
    forced = [THINK] if mode == "deliberate" else []
    # Batches of similar k finish together: a batch runs until its longest completion ends.
    order = sorted(range(len(problems)), key=lambda i: problems[i].k)
    out: list[Rollout | None] = [None] * len(problems)
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        chunk = [problems[i] for i in idx]
        prompts = [tokenizer.convert_tokens_to_ids(pr.prompt_words() + forced) for pr in chunk]
        if on_batch is not None:
            on_batch(idx)
        completions = sample(
            model,
            prompts,
            max_new=max_new_tokens(chunk),
            eos_id=tokenizer.eos_token_id,
            pad_id=tokenizer.pad_token_id,
            temperature=temperature,
            generator=generator,
            uniforms_BT=None if uniforms is None else uniforms[idx],
            banned_first=[think_id] if mode == "direct" else [],
        )
        for i, pr, prompt, comp in zip(idx, chunk, prompts, completions):
            comp = comp[: max_new_tokens([pr])]  # its own room, whatever problems share its batch
            words = forced + tokenizer.convert_ids_to_tokens(comp)
            out[i] = Rollout(pr, tuple(prompt), tuple(comp), pr.parse(words))
    return out  # type: ignore[return-value]


def sampled_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    n: int,
    seed: int,
    on_batch: Callable[[list[int]], None] | None = None,
) -> list[list[Outcome]]:
    """n free-choice completions at T = 1 per problem, parsed, from a generator seeded with ``seed``."""
    res = sampled_rollouts(model, tokenizer, problems, n, seed, on_batch=on_batch)
    return [[r.parsed for r in res[i * n : (i + 1) * n]] for i in range(len(problems))]


def sampled_rollouts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    n: int,
    seed: int,
    rows: Sequence[int] | None = None,
    on_batch: Callable[[list[int]], None] | None = None,
) -> list[Rollout]:
    """n free-choice rollouts at T = 1 per problem (problem-major: row i * n + j is problem i's j-th), in
    evaluation batches, or only the given ``rows``. Every row has its own uniforms, drawn once for the whole
    set from a generator seeded with ``seed``: the same seed gives every model the same random numbers, and a
    row gets the same ones whichever rows are sampled with it (so a subset of rows is the same measurement)."""
    uniforms_RT = torch.rand(
        len(problems) * n, max_new_tokens(problems), generator=seeds.sampler(seed), dtype=torch.float64
    )
    chosen = range(len(problems) * n) if rows is None else rows
    many = [problems[r // n] for r in chosen]
    return rollouts(
        model,
        tokenizer,
        many,
        mode=None,
        temperature=1.0,
        uniforms=uniforms_RT[list(chosen)],
        batch_size=EVAL_BATCH,
        on_batch=on_batch,
    )


def accuracy_by_k(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    seed: int,
) -> dict[str, dict]:
    """Accuracy per k, per mode (deliberate, direct, free choice), greedy and sampled (T=1).

    For free choice also the rate at which the model picked deliberation.
    """
    gen = seeds.sampler(seed)
    ks = np.array([pr.k for pr in problems])
    table: dict[str, dict] = {str(k): {} for k in sorted(set(ks.tolist()))}
    for mode in (*MODES, None):
        for decoding, temp in (("greedy", 0.0), ("sampled", 1.0)):
            res = rollouts(model, tokenizer, problems, mode=mode, temperature=temp, generator=gen)
            correct = np.array([r.parsed.correct for r in res])
            deliberate = np.array([r.parsed.mode == "deliberate" for r in res])
            for k in table:
                sel = ks == int(k)
                entry = table[k].setdefault(mode or "free", {"n": int(sel.sum())})
                entry[decoding] = float(correct[sel].mean())
                if mode is None:
                    entry[f"deliberate_rate_{decoding}"] = float(deliberate[sel].mean())
    return table


@torch.no_grad()
def kl_to_reference(model: PreTrainedModel, reference: PreTrainedModel, res: Sequence[Rollout]) -> float:
    """KL(model || reference) per completion token on the model's own samples ``res``: at each completion position
    the exact KL of the two next-token distributions, averaged over the completions' tokens (how far the sampling
    policy has moved from the reference, where it actually goes). A model is its own reference at step 0: 0, exactly
    what the forward passes would give, without them."""
    if reference is model:
        return 0.0
    device, total, count = next(model.parameters()).device, 0.0, 0
    for lo in range(0, len(res), EVAL_BATCH):
        chunk = res[lo : lo + EVAL_BATCH]
        ids_BL, mask_BL = (
            t.to(device) for t in right_pad([list(r.prompt_ids) + list(r.completion_ids) for r in chunk])
        )
        n_prompt_B = torch.tensor([len(r.prompt_ids) for r in chunk], device=device)
        comp_BT = (torch.arange(1, ids_BL.shape[1], device=device)[None] >= n_prompt_B[:, None]) & mask_BL[:, 1:].bool()
        logp_BTV, logq_BTV = (
            torch.log_softmax(m(input_ids=ids_BL, attention_mask=mask_BL).logits[:, :-1].float(), -1)
            for m in (model, reference)
        )
        kl_BT = (logp_BTV.exp() * (logp_BTV - logq_BTV)).sum(-1)
        total, count = total + float(kl_BT[comp_BT].sum()), count + int(comp_BT.sum())
    return total / max(count, 1)


def eval_metrics(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    eval_set: Sequence[dict],
    task: Task,
    seed: int,
    n_samples: int = 1,
    reference: PreTrainedModel | None = None,
    greedy: bool = True,
    kl_if: Callable[[dict[str, float]], bool] | None = None,
) -> dict[str, float]:
    """Free-choice accuracy on the shared held-out set: overall, per base-model band, per k.

    ``eval_set`` rows are band-table records (problem fields plus the base model's band).
    Greedy, and sampled at T = 1 with ``n_samples`` completions per problem (each problem's
    mean, averaged); ``eval/acc/all/sampled_se`` is the sampling standard error of the overall
    sampled accuracy on this fixed set. Behaviour rates come from the sampled completions, and with a
    ``reference`` model (the base) so does ``eval/kl_to_base`` (``kl_to_reference``), on each problem's first draw
    only: two full forward passes over all n draws were most of an evaluation's cost, and an exact per-position KL
    averaged over one completion per problem already has a small error. ``greedy=False`` skips the greedy pass
    (matching reads only the sampled numbers). ``kl_if`` (given the metrics so far) limits the KL to the
    evaluations that will be read.
    """
    problems = [task.from_record(r) for r in eval_set]
    groups = {"all": np.ones(len(eval_set), bool)}
    for key in ("band", "k"):
        for value in sorted({r[key] for r in eval_set}, key=str):
            name = f"k{value}" if key == "k" else value
            groups[name] = np.array([r[key] == value for r in eval_set])
    out = {}
    if greedy:
        greedy_N = np.array(
            [
                r.parsed.correct
                for r in rollouts(model, tokenizer, problems, mode=None, temperature=0.0, batch_size=EVAL_BATCH)
            ]
        )
        out |= {f"eval/acc/{g}/greedy": float(greedy_N[sel].mean()) for g, sel in groups.items()}
    res = sampled_rollouts(model, tokenizer, problems, n_samples, seed)
    sampled_N = np.array([r.parsed.correct for r in res], float).reshape(len(problems), n_samples).mean(1)
    out |= {f"eval/acc/{g}/sampled": float(sampled_N[sel].mean()) for g, sel in groups.items()}
    out["eval/acc/all/sampled_se"] = sampling_se(sampled_N, n_samples)
    out |= {f"eval/behaviour/{k}": v for k, v in behaviour_rates([r.parsed for r in res]).items()}
    if reference is not None and (kl_if is None or kl_if(out)):
        out["eval/kl_to_base"] = kl_to_reference(model, reference, res[::n_samples])  # problem-major: first draws
    if getattr(task, "confidence", False):  # the stated confidences of the sampled answers (abstentions are none)
        said = [r.parsed for r in res if not r.parsed.abstained]
        out |= {
            f"eval/calibration/{k}": v
            for k, v in calibration_summary([p.q for p in said], [p.correct for p in said]).items()
        }
    return out


def sampling_se(rate_N: np.ndarray, n_samples: int) -> float:
    """Standard error of the mean of per-problem success rates, each from ``n_samples`` draws,
    on a fixed problem set: sqrt(sum_i p_i (1 - p_i) / n) / N, with p_i (1 - p_i) estimated without
    bias by n / (n - 1) * rate (1 - rate). With one draw per problem, the binomial SE of the mean."""
    if n_samples < 2:
        m = float(rate_N.mean())
        return float(np.sqrt(m * (1 - m) / len(rate_N)))
    var_N = rate_N * (1 - rate_N) / (n_samples - 1)
    return float(np.sqrt(var_N.sum()) / len(rate_N))


HookSpec = Sequence[tuple[str, object]]


BEHAVIOURS: tuple[str, ...] = ("direct_correct", "deliberate_correct", "step_acc", "p_think")
"""Per-problem behaviours the causal checks read (``behaviour_table``)."""


@torch.no_grad()
def think_probability(model, tokenizer, problems: Sequence[Problem]) -> np.ndarray:
    """P(<think>) at each problem's decision row: the model's propensity to deliberate."""
    pad_id, think_id = tokenizer.convert_tokens_to_ids(PAD), tokenizer.convert_tokens_to_ids(THINK)
    ids_BL, mask_BL = left_pad([tokenizer.convert_tokens_to_ids(pr.prompt_words()) for pr in problems], pad_id)
    device = next(model.parameters()).device
    pos_BL = (mask_BL.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=ids_BL.to(device), attention_mask=mask_BL.to(device), position_ids=pos_BL.to(device)
    ).logits
    return torch.softmax(logits[:, -1].float(), -1)[:, think_id].cpu().double().numpy()


def step_accuracy(parsed: Outcome, problem: Problem) -> float:
    """1 minus the trace's wrong and skipped steps over the steps a correct trace has (``difficulty``: k for
    arithmetic, A*'s op count for mazes), floored at 0."""
    return float(max(0.0, 1 - (parsed.n_wrong_steps + parsed.n_skipped_steps) / problem.difficulty))


def behaviour_table(
    bridge, tokenizer, problems: Sequence[Problem], fwd_hooks: HookSpec = (), which: Sequence[str] = BEHAVIOURS
) -> dict[str, np.ndarray]:
    """Per problem, with ``fwd_hooks`` active, the behaviours in ``which``: greedy correctness with <think> banned
    (direct_correct) and forced (deliberate_correct), the share of a forced trace's steps written right
    (step_acc, ``step_accuracy``) and P(<think>) at the decision row (p_think). Only what is asked is generated."""
    model, out = bridge.original_model, {}
    with bridge.hooks(fwd_hooks=list(fwd_hooks)):
        if "direct_correct" in which:
            direct = rollouts(model, tokenizer, problems, mode="direct", temperature=0.0, batch_size=EVAL_BATCH)
            out["direct_correct"] = np.array([r.parsed.correct for r in direct], float)
        if {"deliberate_correct", "step_acc"} & set(which):
            deliberate = rollouts(model, tokenizer, problems, mode="deliberate", temperature=0.0, batch_size=EVAL_BATCH)
            out["deliberate_correct"] = np.array([r.parsed.correct for r in deliberate], float)
            out["step_acc"] = np.array([step_accuracy(r.parsed, pr) for r, pr in zip(deliberate, problems)])
        if "p_think" in which:
            out["p_think"] = think_probability(model, tokenizer, problems)
    return {b: out[b] for b in which}


def greedy_accuracy(model, tokenizer, problems: Sequence[Problem]) -> tuple[float, float]:
    """(accuracy, deliberation rate) of greedy free-choice completions."""
    res = rollouts(model, tokenizer, problems, mode=None, temperature=0.0, batch_size=EVAL_BATCH)
    n = max(len(res), 1)
    return sum(r.parsed.correct for r in res) / n, sum(r.parsed.mode == "deliberate" for r in res) / n
