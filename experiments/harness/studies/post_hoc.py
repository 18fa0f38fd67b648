"""What a post-hoc decision reads from a model, and what a model has learned to compute.

* ``answer_probability``: the model's own probability of the answer it sampled (the product over the
  completion's answer-role tokens, given everything before them: for a deliberate completion, given its
  trace). Thresholding it decides answer-or-abstain after training with a symmetric objective.
* ``computation_probe``: how well a linear read-out of the residual stream at ``hook`` predicts the task's
  computation targets (``Problem.targets``: each running result, A*'s g and h) on teacher-forced canonical
  traces of held-out problems, against the same probe on shuffled labels: the feature-acquisition measure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float

from experiments.harness.tasks.family import Problem
from experiments.harness.training.rl_loss import token_logprobs
from experiments.harness.training.rollout import Rollout
from probes.activations import hook_activations
from probes.linear_probe import ProbeResult, probe
from probes.padding import right_pad


@torch.no_grad()
def answer_probability(model, tokenizer, rollouts: Sequence[Rollout], batch_size: int = 64) -> Float[np.ndarray, " N"]:
    """Per rollout, p(its answer tokens | what precedes them); nan where the completion has no answer."""
    out, device = np.full(len(rollouts), np.nan), next(model.parameters()).device
    for lo in range(0, len(rollouts), batch_size):
        part = rollouts[lo : lo + batch_size]
        ids_BL, mask_BL = right_pad([list(r.prompt_ids) + list(r.completion_ids) for r in part], tokenizer.pad_token_id)
        logp_BT = token_logprobs(
            model(input_ids=ids_BL.to(device), attention_mask=mask_BL.to(device)).logits, ids_BL.to(device)
        ).cpu()
        for b, r in enumerate(part):
            words = tokenizer.convert_ids_to_tokens(list(r.completion_ids))
            roles, _ = r.problem.roles(words)
            n_prompt = len(roles) - len(words)
            at = [n_prompt + i for i, role in enumerate(roles[n_prompt:]) if role == "answer"]
            if (
                at and not r.parsed.format_error
            ):  # token t is predicted at row t - 1 (prompt ids as the problem writes them)
                offset = len(r.prompt_ids) - n_prompt  # a forced <think> sits between prompt words and completion
                out[lo + b] = float(np.exp(sum(logp_BT[b, t + offset - 1] for t in at)))
    return out


def _rows(
    bridge, tokenizer, hook: str, problems: Sequence[Problem], batch_size: int = 64
) -> tuple[np.ndarray, list[str]]:
    """Residuals at the rows predicting each computation target of the problems' canonical traces."""
    xs, ys = [], []
    for lo in range(0, len(problems), batch_size):
        part = problems[lo : lo + batch_size]
        seqs = [pr.prompt_words() + pr.completion_words("deliberate") for pr in part]
        ids_BL, _ = right_pad([tokenizer.convert_tokens_to_ids(s) for s in seqs], tokenizer.pad_token_id)
        acts_BLD = hook_activations(bridge, hook, ids_BL).float().cpu().numpy()  # right padding moves no position
        for b, pr in enumerate(part):
            n_prompt = len(pr.prompt_words())
            for t in (t for t in pr.targets(0) if t.kind == "computation"):
                xs.append(acts_BLD[b, n_prompt + t.index - 1])
                ys.append(t.word)
    return np.array(xs), ys


def computation_probe(
    bridge, tokenizer, hook: str, train: Sequence[Problem], test: Sequence[Problem], seed: int = 0
) -> ProbeResult:
    """Linear probe accuracy for the computation targets on ``test`` (trained on ``train``), with its
    shuffled-label control."""
    x_train, y_train = _rows(bridge, tokenizer, hook, train)
    x_test, y_test = _rows(bridge, tokenizer, hook, test)
    classes = {w: i for i, w in enumerate(sorted(set(y_train) | set(y_test)))}
    return probe(x_train, np.array([classes[w] for w in y_train]), x_test, np.array([classes[w] for w in y_test]), seed)
