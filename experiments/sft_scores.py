"""Supervised difficulty scores (EL2N, GraNd, loss, forgetting) from early pretraining runs.

The data-pruning metrics are defined on a model *early in supervised training*, averaged
over independent seeds (Paul et al. 2021; Toneva et al. 2019). Here the supervised
training is the run's own pretraining recipe (same task, architecture, data stream and
learning-rate schedule as base/), restarted from fresh initialisations and stopped at
``steps``. The scored examples are made training examples: each is presented, in both
modes (its canonical deliberate and direct completions), ``presentations`` times at
evenly spaced steps, mixed into the ordinary batch. At each presentation the forward
pass of that training step (before the update) records whether every target token was
the argmax; flips from right to wrong between presentations are forgetting events.
At the last step EL2N, loss and GraNd of every example are read in eval mode.
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
    width = max(a[0].shape[1], b[0].shape[1])

    def widen(t: Tensor, fill: int) -> Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill)

    return torch.cat([widen(a[0], pad_id), widen(b[0], pad_id)]), torch.cat(
        [widen(a[1], NOT_TARGET), widen(b[1], NOT_TARGET)]
    )


def presentation_steps(n: int, steps: int, presentations: int) -> Int[np.ndarray, "N E"]:
    """Step at which each of n examples is presented the e-th time: every epoch of
    steps // presentations steps shows each example once, spread over the epoch."""
    epoch = steps // presentations
    return np.arange(presentations)[None] * epoch + (np.arange(n) % epoch)[:, None]


def scoring_run(
    pre: PretrainArgs, seed: int, problems: Sequence[Problem], steps: int, presentations: int
) -> dict[str, list]:
    """One supervised run from a fresh init; per mode, per example: correct at each
    presentation, and final loss, EL2N and GraNd."""
    args = dataclasses.replace(pre, seed=seed)  # lr schedule of the full recipe, stopped early
    tokenizer = build_tokenizer(args.task_spec)
    vocab = tokenizer.get_vocab()
    model = build_model(args.model_spec, tokenizer, seed).to(args.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    targets = {m: target_batch(problems, m, vocab) for m in MODES}
    ids_SL, labels_SL = _concat(targets["deliberate"], targets["direct"], vocab["<pad>"])  # S = 2N, modes stacked
    when_SE = presentation_steps(len(ids_SL), steps, presentations)
    correct_SE = np.zeros(when_SE.shape, dtype=bool)
    for step in tqdm(range(steps), desc=f"sft scores s{seed}", leave=False):
        rng = np.random.Generator(np.random.PCG64([args.seed, step]))
        rows, epochs = np.nonzero(when_SE == step)
        ids_BL, labels_BL = _concat(make_batch(rng, args, vocab), (ids_SL[rows], labels_SL[rows]), vocab["<pad>"])
        ids_BL, labels_BL = ids_BL.to(args.device), labels_BL.to(args.device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        out = model(input_ids=ids_BL, labels=labels_BL)
        if len(rows):
            correct_SE[rows, epochs] = (
                teacher_forced(out.logits[-len(rows) :].detach(), labels_BL[-len(rows) :]).correct.cpu().numpy()
            )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        tf = teacher_forced(model(input_ids=ids_SL.to(args.device)).logits, labels_SL.to(args.device))
    gn = grand(model, ids_SL.to(args.device), labels_SL.to(args.device))
    n = len(problems)
    return {
        f"{name}/{m}": values[i * n : (i + 1) * n]
        for name, values in (("correct", correct_SE.tolist()), ("loss", tf.loss.tolist()), ("el2n", tf.el2n.tolist()), ("grand", gn.tolist()))
        for i, m in enumerate(MODES)
    }  # fmt: skip
