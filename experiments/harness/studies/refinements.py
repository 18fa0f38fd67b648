"""What a teacher's traces become, and how the student reads them: the refinement study's sample-level pieces.

A verified teacher trace gives refinements of graded sophistication (the trace, every second step done in the
head, the answer alone); the student reads every sample four ways (answer after its question, answer alone,
question after its answer, question alone) for IFD and reverse IFD (``probes.selection``).
"""

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float

from experiments.harness.tasks.family import THINK, Problem
from experiments.harness.training.rollout import EVAL_BATCH, rollouts
from experiments.harness.training.supervised import Example, collate
from probes.difficulty import teacher_forced
from probes.selection import ifd, reverse_ifd, student_filter

READS = ("a_given_q", "a", "q_given_a", "q")
"""The student's mean per-token NLLs of a sample: answer after its question, answer alone, question after its
answer, question alone."""


def compressed(trace: Sequence[str]) -> list[str]:
    """A deliberate completion with every second written step ``op x r`` dropped (the 2nd, 4th, ...): each kept step
    then carries two operations, one of them done in the head. r0, the final answer and the closing tokens stay."""
    body, closing = list(trace[1:-3]), list(trace[-3:])
    steps = [body[i : i + 3] for i in range(1, len(body), 3)]
    return [THINK, body[0], *(w for step in steps[::2] for w in step), *closing]


def direct(trace: Sequence[str]) -> list[str]:
    """The answer alone: ``a <eos>``."""
    return list(trace[-2:])


REFINE = {"full": list, "compressed": compressed, "direct": direct}
"""Each of ``LEVELS`` from a verified teacher trace."""


def teacher_traces(teacher, tokenizer, problems: Sequence[Problem]) -> list[list[str] | None]:
    """The teacher's greedy deliberate completion of each problem, None where its answer is wrong."""
    res = rollouts(teacher, tokenizer, problems, mode="deliberate", temperature=0.0, batch_size=EVAL_BATCH)
    return [[THINK, *tokenizer.convert_ids_to_tokens(list(r.completion_ids))] if r.parsed.correct else None for r in res]


def read_examples(problem: Problem, words: Sequence[str], vocab: Mapping[str, int]) -> dict[str, Example]:
    """The four ``READS`` of a sample as (ids, non-target prefix length): A | Q targets the answer after the prompt;
    A the answer after ``<bos>``; Q | A the prompt's words after ``<bos>`` and the answer; Q the prompt's words after
    its ``<bos>``. Every read starts at ``<bos>``, as every training sequence does, so none is out of place there."""
    q, a = [vocab[w] for w in problem.prompt_words()], [vocab[w] for w in words]  # q[0] is the prompt's own <bos>
    return {"a_given_q": (q + a, len(q)), "a": (q[:1] + a, 1), "q_given_a": (q[:1] + a + q[1:], 1 + len(a)), "q": (q, 1)}


@torch.no_grad()
def mean_nll(model, examples: Sequence[Example], vocab: dict[str, int], batch_size: int = EVAL_BATCH) -> Float[np.ndarray, " N"]:
    """Each example's mean per-token NLL of its targets under ``model`` (eval mode; right padding is exact)."""
    device = next(model.parameters()).device
    out = []
    for lo in range(0, len(examples), batch_size):
        ids_BL, labels_BL = (t.to(device) for t in collate(examples[lo : lo + batch_size], vocab))
        out.append(teacher_forced(model(input_ids=ids_BL).logits, labels_BL).loss.cpu())
    return torch.cat(out).double().numpy()


def student_reads(student, vocab: dict[str, int], problems: Sequence[Problem], rows: list[dict]) -> None:
    """Add each row's NLLs, IFD, r-IFD and the student's filter (refinements only: None for originals), in place."""
    examples = [read_examples(problems[r["problem"]], r["words"], vocab) for r in rows]
    nll = {name: mean_nll(student, [e[name] for e in examples], vocab) for name in READS}
    ifd_N, rifd_N = ifd(nll["a_given_q"], nll["a"]), reverse_ifd(nll["q_given_a"], nll["q"])
    original_of = {r["problem"]: i for i, r in enumerate(rows) if r["level"] == "original"}
    kept_N = student_filter(ifd_N, rifd_N, rifd_N[[original_of[r["problem"]] for r in rows]])
    for i, r in enumerate(rows):
        r |= {"nll": {name: float(nll[name][i]) for name in READS}, "ifd": float(ifd_N[i]), "rifd": float(rifd_N[i]),
              "keep_by_student": None if r["level"] == "original" else bool(kept_N[i])}  # fmt: skip


def by_k(problems: Sequence[Problem], correct_P: Bool[np.ndarray, " P"]) -> dict[str, float]:
    """Accuracy per k."""
    k_P = np.array([pr.k for pr in problems])
    return {str(k): float(correct_P[k_P == k].mean()) for k in sorted(set(k_P.tolist()))}
