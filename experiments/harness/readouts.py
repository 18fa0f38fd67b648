"""The task's read-outs: which token at which row each feature group is about.

Built on teacher-forced canonical completions (``probes.attribution.Readouts``), one kind per
feature group:

* shortcut     -- the direct answer among the numbers, at the decision row (``=``) of
                  problems a direct answer can solve (k <= shortcut_k);
* computation  -- the running result r_i among the numbers, at the row of operand x_i;
* deliberation -- the next token of trace following: r0 after ``<think>``, each operator and
                  operand copied from the prompt, ``</think>`` and the answer copied from r_k;
* mode         -- ``log P(<think>) - log P(any number)`` at the decision row (the choice to
                  deliberate; its sign is the greedy choice, so it works when sampling is a coin flip).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments.harness.task import EOS, THINK, Problem
from probes.attribution import Readouts

KINDS: tuple[str, ...] = ("shortcut", "computation", "deliberation", "mode")
"""Read-out kinds, one per feature group; a latent joins at most one group."""


def _rows(vocab: dict[str, int], problems: Sequence[Problem], shortcut_k: int) -> dict[str, list[tuple]]:
    """Per kind: (sequence, position, numerator ids, denominator ids, probe label) rows."""
    numbers = [vocab[str(v)] for v in range(problems[0].p)] if problems else []
    everything = list(vocab.values())
    rows: dict[str, list[tuple]] = {kind: [] for kind in KINDS}
    for i, pr in enumerate(problems):
        decision = len(pr.prompt_words()) - 1
        words = pr.completion_words("deliberate")
        direct, trace = 2 * i, 2 * i + 1
        if pr.k <= shortcut_k:
            rows["shortcut"].append((direct, decision, [vocab[str(pr.answer)]], numbers, vocab[str(pr.answer)]))
        rows["mode"].append((direct, decision, [vocab[THINK]], numbers, -1))
        for c, word in enumerate(words[1:], start=1):  # words[0] is the mode choice itself
            if word == EOS:
                continue
            kind = "computation" if c >= 4 and (c - 1) % 3 == 0 else "deliberation"  # r_i sits at 1 + 3i
            target = [vocab[word]]
            rows[kind].append((trace, decision + c, target, numbers if kind == "computation" else everything, vocab[word]))
    return rows


def task_readouts(vocab: dict[str, int], problems: Sequence[Problem], shortcut_k: int) -> dict[str, Readouts]:
    """Every kind's read-outs over the canonical direct and deliberate completions of ``problems``
    (sequence 2i is problem i answered directly, 2i + 1 deliberately; mode rows have label -1:
    a probe reads the sign of the mode logit instead)."""
    seqs = []
    for pr in problems:
        prompt = [vocab[w] for w in pr.prompt_words()]
        for mode in ("direct", "deliberate"):
            seqs.append(tuple(prompt + [vocab[w] for w in pr.completion_words(mode)]))
    out = {}
    for kind, rows in _rows(vocab, problems, shortcut_k).items():
        num_RV = np.zeros((len(rows), len(vocab)), bool)
        den_RV = np.zeros((len(rows), len(vocab)), bool)
        for r, (_, _, num, den, _) in enumerate(rows):
            num_RV[r, num], den_RV[r, den] = True, True
        seq_R, pos_R, label_R = (np.asarray([row[j] for row in rows], dtype=np.int64).reshape(-1) for j in (0, 1, 4))
        out[kind] = Readouts(tuple(seqs), seq_R, pos_R, num_RV, den_RV, label_R)
    return out
