"""Supervised difficulty scores (EL2N, GraNd, loss, forgetting) from fresh pretraining runs.

EL2N and GraNd are defined on a model *early in supervised training*, averaged over
independent seeds (Paul et al. 2021); forgetting events count right -> wrong flips over
the presentations of a whole training run (Toneva et al. 2019). Here the supervised
training is the run's own pretraining recipe (same task, architecture, data stream and
learning-rate schedule as base/), restarted from fresh initialisations. The scored
examples are made training examples: each is presented, in both modes (its canonical
deliberate and direct completions), ``presentations`` times at evenly spaced steps,
mixed into the ordinary batch. At each presentation the forward pass of that training
step (before the update) records whether every target token was the argmax. At
``score_step`` (early) EL2N, loss and GraNd of every example are read in eval mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from experiments.model import build_model, build_tokenizer
from experiments.pretrain import PretrainArgs, lr_at, make_batch
from experiments.rundir import read_json
from experiments.sampling import right_pad
from experiments.task import MODES, Problem, completion_words, prompt_words
from probes.difficulty import NOT_TARGET, grand, teacher_forced


def pretrain_args(run: Path) -> PretrainArgs:
    """The pretraining recipe recorded in the run's config.json."""
    rec = read_json(run / "config.json")["stages"]["pretrain"]
    fields = {f.name for f in dataclasses.fields(PretrainArgs)}
    return PretrainArgs(**{k: tuple(v) if isinstance(v, list) else v for k, v in rec.items() if k in fields}, out=run)


def target_batch(
    problems: Sequence[Problem], mode: str, vocab: dict[str, int]
) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    """Right-padded prompt + canonical completion ids; labels are -100 outside the completion."""
    seqs = [[vocab[w] for w in prompt_words(pr) + completion_words(pr, mode)] for pr in problems]
    ids_BL, mask_BL = right_pad(seqs, vocab["<pad>"])
    labels_BL = torch.where(mask_BL.bool(), ids_BL, NOT_TARGET)
    for i, pr in enumerate(problems):
        labels_BL[i, : len(prompt_words(pr))] = NOT_TARGET
    return ids_BL, labels_BL


def _concat(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor], pad_id: int) -> tuple[Tensor, Tensor]:
    """Stack two (ids, labels) batches, right-padding both to the wider one."""
    width = max(a[0].shape[1], b[0].shape[1])

    def widen(t: Tensor, fill: int) -> Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill)

    ids = torch.cat([widen(a[0], pad_id), widen(b[0], pad_id)])
    return ids, torch.cat([widen(a[1], NOT_TARGET), widen(b[1], NOT_TARGET)])


def presentation_steps(n: int, steps: int, presentations: int) -> Int[np.ndarray, "N E"]:
    """Step at which each of n examples is presented the e-th time: every epoch of
    steps // presentations steps shows each example once, spread over the epoch."""
    epoch = steps // presentations
    return np.arange(presentations)[None] * epoch + (np.arange(n) % epoch)[:, None]


def read_scores(model, ids_SL: Int[Tensor, "S L"], labels_SL: Int[Tensor, "S L"]) -> dict[str, list[float]]:
    """Teacher-forced loss and EL2N, and GraNd, of every sequence (the model is left in train mode)."""
    model.eval()
    with torch.no_grad():
        tf = teacher_forced(model(input_ids=ids_SL).logits, labels_SL)
    scores = {"loss": tf.loss.tolist(), "el2n": tf.el2n.tolist(), "grand": grand(model, ids_SL, labels_SL).tolist()}
    model.train()
    return scores


def scoring_run(
    pre: PretrainArgs, seed: int, problems: Sequence[Problem], steps: int, presentations: int, score_step: int
) -> dict[str, list]:
    """One supervised run of ``steps`` steps from a fresh init; per mode, per example: correct
    at each presentation, and loss, EL2N and GraNd after ``score_step`` steps."""
    if not 0 <= score_step <= steps <= pre.steps:
        raise ValueError(f"need 0 <= score_step ({score_step}) <= steps ({steps}) <= the recipe's {pre.steps}")
    args = dataclasses.replace(pre, seed=seed)  # the full recipe's lr schedule, stopped at ``steps``
    tokenizer = build_tokenizer(args.task_spec)
    vocab = tokenizer.get_vocab()
    model = build_model(args.model_spec, tokenizer, seed).to(args.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    targets = {m: target_batch(problems, m, vocab) for m in MODES}
    ids_SL, labels_SL = (t.to(args.device) for t in _concat(targets["deliberate"], targets["direct"], vocab["<pad>"]))
    when_SE = presentation_steps(len(ids_SL), steps, presentations)  # S = 2N: both modes stacked
    correct_SE = np.zeros(when_SE.shape, dtype=bool)
    scores = {}
    for step in tqdm(range(steps), desc=f"sft scores s{seed}", leave=False):
        if step == score_step:
            scores = read_scores(model, ids_SL, labels_SL)
        rng = np.random.Generator(np.random.PCG64([args.seed, step]))
        rows, epochs = np.nonzero(when_SE == step)
        batch = (t.to(args.device) for t in make_batch(rng, args, vocab))
        ids_BL, labels_BL = _concat(tuple(batch), (ids_SL[rows], labels_SL[rows]), vocab["<pad>"])
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        out = model(input_ids=ids_BL, labels=labels_BL)
        if len(rows):
            tf = teacher_forced(out.logits[-len(rows) :].detach(), labels_BL[-len(rows) :])
            correct_SE[rows, epochs] = tf.correct.cpu().numpy()
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    scores = scores or read_scores(model, ids_SL, labels_SL)  # score_step == steps
    n = len(problems)
    return {
        f"{name}/{m}": values[i * n : (i + 1) * n]
        for name, values in (("correct", correct_SE.tolist()), *scores.items())
        for i, m in enumerate(MODES)
    }
