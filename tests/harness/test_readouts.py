import numpy as np

from experiments.harness import seeds
from experiments.harness.reading.feature_groups import READOUTS
from experiments.harness.reading.readouts import task_readouts
from experiments.harness.tasks.arith import Arithmetic, TaskSpec, completion_words, prompt_words
from experiments.harness.training.model import build_tokenizer


def test_task_readouts__each_kind_reads_the_right_token_at_the_row_before_it():
    spec = TaskSpec()
    vocab = build_tokenizer(spec).get_vocab()
    problems = [pr for k in (1, 3) for pr in seeds.problems("causal", 0, k, 4, Arithmetic(spec))]
    ro = task_readouts(vocab, problems, shortcut_k=1)
    assert set(ro) == set(READOUTS)
    assert len(ro["shortcut"].seq_R) == 4 and len(ro["mode"].seq_R) == 8  # shortcut only where k <= 1
    assert len(ro["computation"].seq_R) == 4 * 1 + 4 * 3  # one per running result r_1..r_k
    for kind, r in ro.items():
        for s, pos, num, den, label in zip(r.seq_R, r.pos_R, r.num_RV, r.den_RV, r.label_R):
            pr = problems[s // 2]
            words = prompt_words(pr) + completion_words(pr, "direct" if s % 2 == 0 else "deliberate")
            assert np.flatnonzero(num).tolist() == [vocab["<think>"] if kind == "mode" else vocab[words[pos + 1]]]
            assert label == (-1 if kind == "mode" else vocab[words[pos + 1]])
            assert den.sum() == (len(vocab) if kind == "deliberation" else spec.p)
    computed = [
        problems[s // 2].running[(p - len(prompt_words(problems[s // 2])) + 1 - 1) // 3]
        for s, p in zip(ro["computation"].seq_R, ro["computation"].pos_R)
    ]
    inv = {i: w for w, i in vocab.items()}
    assert [int(inv[t]) for t in ro["computation"].label_R] == computed
