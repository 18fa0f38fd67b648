"""What a teacher's traces become, and how the student reads them: the refinement study's sample-level pieces.

A verified teacher trace gives refinements of graded sophistication (the trace, every second step done in the
head, the answer alone); the student reads every sample four ways (answer after its question, answer alone,
question after its answer, question alone) for IFD and reverse IFD (``probes.selection``).
"""

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from experiments.harness import seeds
from experiments.harness.tasks.arith import unreliable_trace_words
from experiments.harness.tasks.family import THINK, Problem, Task
from experiments.harness.training.rollout import EVAL_BATCH, max_new_tokens, rollouts
from experiments.harness.training.supervised import Example, collate
from probes.difficulty import teacher_forced
from probes.layout import RunDirError
from probes.selection import ifd, keep, reverse_ifd, student_filter


def eval_problems(task: Task, seed: int, k_max: int, per_k: int) -> list[Problem]:
    """The held-out set: ``per_k`` problems per knob value up to ``k_max`` of the refinement_eval stream, whose
    problems no pretrain_eval set (the base model's table, at any seed) holds where the problem space allows
    (``seeds.partitioned``)."""
    return [pr for k in task.knobs(k_max) for pr in seeds.problems("refinement_eval", seed, k, per_k, task)]


def check_fits(problems: Sequence[Problem], max_len: int) -> None:
    """The longest read (question and trace, or a rollout with its slack) fits the model's positions."""
    longest = max(len(pr.prompt_words()) for pr in problems) + max_new_tokens(problems)
    if longest > max_len:
        raise RunDirError(f"teacher_k_max: its sequences ({longest} tokens) exceed the model's max_len {max_len}")


def train_problems(task: Task, seed: int, k_max: int, per_k: int, held_out: Sequence[Problem]) -> list[Problem]:
    """``per_k`` problems per knob value up to ``k_max`` from the study's stream at (seed, k), none in the held-out
    set (repeats among them allowed)."""
    out = []
    for k in task.knobs(k_max):
        exclude = {pr.key for pr in held_out if pr.k == k}
        if len(exclude) >= task.n_distinct(k):
            raise RunDirError(
                f"eval_per_k: the held-out set holds every problem of length {k}; none is left to train on"
            )
        rng = seeds.rng("refinement", seed, k)
        drawn = (task.draw(rng, k, pid=f"refinement-s{seed}-k{k}-{i}") for i in itertools.count())
        out += itertools.islice((pr for pr in drawn if pr.key not in exclude), per_k)
    return out


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
    return [
        [THINK, *tokenizer.convert_ids_to_tokens(list(r.completion_ids))] if r.parsed.correct else None for r in res
    ]


def read_examples(problem: Problem, words: Sequence[str], vocab: Mapping[str, int]) -> dict[str, Example]:
    """The four ``READS`` of a sample as (ids, non-target prefix length): A | Q targets the answer after the prompt;
    A the answer after ``<bos>``; Q | A the prompt's words after ``<bos>`` and the answer; Q the prompt's words after
    its ``<bos>``. Every read starts at ``<bos>``, as every training sequence does, so none is out of place there."""
    q, a = [vocab[w] for w in problem.prompt_words()], [vocab[w] for w in words]  # q[0] is the prompt's own <bos>
    return {
        "a_given_q": (q + a, len(q)),
        "a": (q[:1] + a, 1),
        "q_given_a": (q[:1] + a + q[1:], 1 + len(a)),
        "q": (q, 1),
    }


@torch.no_grad()
def mean_nll(
    model, examples: Sequence[Example], vocab: dict[str, int], batch_size: int = EVAL_BATCH
) -> Float[np.ndarray, " N"]:
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
        r |= {
            "nll": {name: float(nll[name][i]) for name in READS},
            "ifd": float(ifd_N[i]),
            "rifd": float(rifd_N[i]),
            "keep_by_student": None if r["level"] == "original" else bool(kept_N[i]),
        }


def by_k(problems: Sequence[Problem], correct_P: Bool[np.ndarray, " P"]) -> dict[str, float]:
    """Accuracy per k."""
    k_P = np.array([pr.k for pr in problems])
    return {str(k): float(correct_P[k_P == k].mean()) for k in sorted(set(k_P.tolist()))}


def random_subset(rows: Int[np.ndarray, " N"], size: int, seed: int) -> Int[np.ndarray, " M"]:
    """``size`` of ``rows`` drawn at random (all of them when size >= their number)."""
    return rows if size >= rows.size else rows[keep(np.zeros(rows.size), size / rows.size, "random", seed)]


def sample_rows(
    problems: Sequence[Problem], traces: Sequence[list[str] | None], rng: np.random.Generator, original_error: float
) -> list[dict]:
    """Per problem its original trace (each written result wrong with chance ``original_error``), then the
    refinements of its verified teacher trace (none where the teacher failed)."""
    rows = []
    for i, (pr, trace) in enumerate(zip(problems, traces)):
        rows.append(
            {"problem": i, "k": pr.k, "level": "original", "words": unreliable_trace_words(pr, rng, original_error)}
        )
        rows += [
            {"problem": i, "k": pr.k, "level": level, "words": refine(trace)}
            for level, refine in REFINE.items()
            if trace
        ]
    return rows
