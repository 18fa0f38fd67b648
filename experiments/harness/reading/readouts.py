"""The task's read-outs: which token at which row each feature group is about.

Built on teacher-forced canonical completions (``probes.attribution.Readouts``), one kind per
feature group (``experiments.harness.reading.feature_groups.READOUTS``); each task family names its targets
(``Problem.targets``). For arithmetic:

* shortcut     -- the direct answer among the numbers, at the decision row (``=``) of
                  problems a direct answer can solve (k <= shortcut_k);
* computation  -- the running result r_i among the numbers, at the row of operand x_i;
* deliberation -- the next token of trace following: r0 after ``<think>``, each operator and
                  operand copied from the prompt, ``</think>`` and the answer copied from r_k;
* mode         -- ``log P(<think>) - log P(any number)`` at the decision row (the choice to
                  deliberate; its sign is the greedy choice, so it works when sampling is a coin flip).

Mazes: the direct plan's moves (shortcut), the g and h values A* computes (computation), every
other trace and plan word (deliberation), ``<think>`` against ``plan`` (mode); see ``maze.Maze.targets``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments.harness.reading.feature_groups import READOUTS
from experiments.harness.tasks.family import Problem
from probes.attribution import Readouts


def _rows(vocab: dict[str, int], problems: Sequence[Problem], shortcut_k: int) -> dict[str, list[tuple]]:
    """Per kind: (sequence, position, numerator ids, denominator ids, probe label) rows, from each
    problem's own read-out targets (``Problem.targets``)."""
    everything = list(vocab.values())
    rows: dict[str, list[tuple]] = {kind: [] for kind in READOUTS}
    for i, pr in enumerate(problems):
        decision = len(pr.prompt_words()) - 1
        for t in pr.targets(shortcut_k):
            seq = 2 * i if t.mode == "direct" else 2 * i + 1
            den = everything if t.support is None else [vocab[w] for w in t.support]
            rows[t.kind].append(
                (seq, decision + t.index, [vocab[t.word]], den, -1 if t.kind == "mode" else vocab[t.word])
            )
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
