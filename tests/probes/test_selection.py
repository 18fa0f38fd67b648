import math

import numpy as np
import pytest
import torch

from probes.difficulty import teacher_forced
from probes.padding import NOT_TARGET
from probes.selection import ifd, keep, reverse_ifd, student_filter


def test_keep__policies_on_hand_made_scores():
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.7, 0.2])
    assert keep(scores, 0.5, "keep_high", 0).tolist() == [1, 2, 4]
    assert keep(scores, 0.5, "keep_low", 0).tolist() == [0, 3, 5]
    assert keep(scores, 1.0, "keep_high", 0).tolist() == list(range(6))
    assert keep(scores, 0.3, "keep_high", 0).tolist() == [1, 4]  # round(1.8) = 2
    randoms = {tuple(keep(scores, 0.5, "random", s)) for s in range(20)}
    assert len(randoms) > 5 and all(len(r) == 3 and list(r) == sorted(r) for r in randoms)


def test_keep__ties_break_at_random_and_nan_ranks_as_the_median():
    flat = np.ones(100)
    picks = [keep(flat, 0.1, "keep_high", s) for s in range(3)]
    assert all(p.tolist() != list(range(10)) for p in picks)  # not the dataset's first rows
    assert len({tuple(p) for p in picks}) == 3
    with_nan = np.array([0.0, np.nan, 1.0, 2.0, 3.0])  # median of the others is 1.5: nan sits in the middle
    assert 1 not in keep(with_nan, 0.4, "keep_high", 0) and 1 not in keep(with_nan, 0.4, "keep_low", 0)
    inf = np.array([1.0, math.inf, 0.0])  # never learned ranks hardest
    assert keep(inf, 0.34, "keep_high", 0).tolist() == [1]


@pytest.mark.parametrize("fraction, policy", [(0.0, "random"), (1.5, "random"), (0.5, "hardest")])
def test_keep__refuses_bad_arguments(fraction, policy):
    with pytest.raises(ValueError):
        keep(np.arange(4.0), fraction, policy, 0)


class Bigram(torch.nn.Module):
    """A language model whose next-token distribution depends only on the current token: known probabilities."""

    def __init__(self, probs_VV: torch.Tensor) -> None:
        super().__init__()
        self.logp_VV = probs_VV.log()

    def forward(self, input_ids):
        return type("Out", (), {"logits": self.logp_VV[input_ids]})()


def _mean_nll(model, ids: list[int], n_context: int) -> float:
    """Mean NLL of ids[n_context:] given what precedes each (HF alignment: labels are the inputs)."""
    labels = torch.tensor([[NOT_TARGET] * n_context + ids[n_context:]])
    return float(teacher_forced(model(torch.tensor([ids])).logits, labels).loss[0])


def test_ifd_and_reverse_ifd__equal_the_ratios_of_perplexities_of_a_model_with_known_probabilities():
    BOS, Q, A, B = 0, 1, 2, 3
    probs = torch.tensor(
        [
            [0.05, 0.50, 0.15, 0.30],  # after <bos>
            [0.10, 0.10, 0.60, 0.20],  # after q: the answer's first token is likely
            [0.10, 0.40, 0.10, 0.40],  # after a
            [0.25, 0.25, 0.25, 0.25],  # after b
        ]
    )
    model = Bigram(probs)
    question, answer = [BOS, Q], [A, B]
    a_given_q = _mean_nll(model, question + answer, 2)  # -log(P(a|q) P(b|a)) / 2
    a_alone = _mean_nll(model, [BOS, *answer], 1)  # -log(P(a|bos) P(b|a)) / 2
    q_given_a = _mean_nll(model, [BOS, *answer, Q], 3)  # -log P(q|b)
    q_alone = _mean_nll(model, question, 1)  # -log P(q|bos)
    got = ifd([a_given_q], [a_alone])[0]
    assert got == pytest.approx(math.sqrt(0.15 / 0.60), rel=1e-5) and got < 1  # the question helps: IFD < 1
    assert reverse_ifd([q_given_a], [q_alone])[0] == pytest.approx(
        0.50 / 0.25, rel=1e-5
    )  # the answer hides the question


def test_student_filter__needs_ifd_below_one_and_no_worse_reverse_ifd_than_the_original():
    ifd_N = np.array([0.5, 0.5, 1.0, 1.2, 0.9])
    rifd_N = np.array([0.8, 1.1, 0.5, 0.5, 1.0])
    original = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    assert student_filter(ifd_N, rifd_N, original).tolist() == [True, False, False, False, True]
