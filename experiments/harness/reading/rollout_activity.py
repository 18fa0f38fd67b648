"""A feature group's activity on a model's own rollouts, split by success.

The seed notes claim that hard problems activate reasoning features only on the rare rollouts
that succeed. To read that, a checkpoint samples completions of fixed problems (the same draws at
every checkpoint of a run), the SAE encodes the activations at its hook over each completion's
tokens, and each rollout gets the group's mean code there, with whether it was correct.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from experiments.harness.tasks.family import Problem
from experiments.harness.training.rollout import sampled_rollouts
from probes.activations import hook_activations
from probes.diff import sequence_activity
from probes.padding import right_pad


def rollout_activity(
    bridge,
    tokenizer: PreTrainedTokenizerBase,
    sae,
    hook: str,
    group: Sequence[int],
    problems: Sequence[Problem],
    n_samples: int,
    seed: int,
    batch_size: int = 128,
) -> dict[str, list]:
    """``{"activity": [...], "correct": [...]}``, one entry per rollout (``n_samples`` per problem):
    the group's mean code over the completion's tokens, and whether the completion was correct."""
    res = sampled_rollouts(bridge.original_model, tokenizer, problems, n_samples, seed)
    activity: list[float] = []
    for lo in range(0, len(res), batch_size):
        chunk = res[lo : lo + batch_size]
        ids_BL, mask_BL = right_pad([r.prompt_ids + r.completion_ids for r in chunk], tokenizer.pad_token_id)
        for i, r in enumerate(chunk):
            mask_BL[i, : len(r.prompt_ids)] = 0  # the completion's tokens only
        activity += sequence_activity(sae, hook_activations(bridge, hook, ids_BL), mask_BL, group).tolist()
    return {"activity": activity, "correct": [bool(r.parsed.correct) for r in res]}
