"""Hedged completions (stated confidence, abstaining) over both families, and the reward variants."""

import math

import numpy as np
import pytest

from experiments.harness.tasks.arith import Arithmetic, TaskSpec
from experiments.harness.tasks.family import EOS, MODES
from experiments.harness.tasks.hedging import ABSTAIN, CONF, LEVELS, Hedged
from experiments.harness.tasks.maze import Mazes, MazeSpec
from experiments.harness.tasks.registry import task_of, task_of_vocab
from experiments.harness.training.model import build_tokenizer
from experiments.harness.training.rewards import LOG_FLOOR, reward
from experiments.harness.training.supervised import Recipe
from probes.calibration import Utility

FAMILIES = {"arith": Arithmetic(TaskSpec(5, ("+", "*"))), "maze": Mazes(MazeSpec(5, 0.0))}


@pytest.fixture(params=list(FAMILIES))
def hedged(request):
    return Hedged(FAMILIES[request.param], confidence=True, abstain=True)


def test_hedged__keeps_the_familys_token_ids_and_round_trips_through_params_and_vocab(hedged):
    assert hedged.vocab[: len(hedged.inner.vocab)] == hedged.inner.vocab and {CONF, ABSTAIN, *LEVELS} <= set(
        hedged.vocab
    )
    assert task_of(hedged.params) == hedged and task_of(hedged.inner.params) == hedged.inner
    assert task_of_vocab(build_tokenizer(hedged).get_vocab()) == hedged
    k = hedged.knobs(5)[-1]
    assert [p.as_record() for p in hedged.problems(0, k, 4)] == [p.as_record() for p in hedged.inner.problems(0, k, 4)]


def test_hedged__canonical_completions_carry_a_neutral_confidence_and_parse_like_the_familys(hedged):
    for pr in hedged.problems(1, hedged.knobs(5)[-1], 5):
        for mode in MODES:
            words, inner_words = pr.completion_words(mode), pr.inner.completion_words(mode)
            assert words == [*inner_words[:-1], CONF, "0.5", EOS]
            out, inner = pr.parse(words), pr.inner.parse(inner_words)
            assert out.q == 0.5 and not out.abstained and out.correct and out.mode == mode == inner.mode
            assert (out.n_wrong_steps, out.n_skipped_steps, out.lucky_success) == (
                inner.n_wrong_steps,
                inner.n_skipped_steps,
                inner.lucky_success,
            )
            roles, steps = pr.roles(words)
            inner_roles, _ = pr.inner.roles(inner_words)
            assert len(roles) == len(steps) == len(pr.prompt_words()) + len(words)
            assert roles[-3:-1] == ["special", "special"] and roles[:-3] == inner_roles[:-1]
        assert pr.targets(9) == pr.inner.targets(9)


def test_hedged__missing_or_misplaced_confidence_and_abstaining(hedged):
    pr = hedged.problems(2, hedged.knobs(5)[0], 1)[0]
    bare = pr.inner.completion_words("direct")
    assert pr.parse(bare).q is None and pr.parse(bare).correct  # the family's parse, no confidence
    assert pr.parse([*bare[:-1], CONF, "0.55", EOS]).q is None  # not a level
    misplaced = pr.parse([CONF, "0.7", *bare])
    assert misplaced.q is None and misplaced.format_error and not misplaced.correct
    out = pr.parse([ABSTAIN, EOS])
    assert out.abstained and not out.correct and not out.format_error and out.mode is None and out.q is None


def test_hedged__the_parser_never_raises_on_random_words(hedged):
    rng = np.random.default_rng(0)
    pr = hedged.problems(3, hedged.knobs(5)[-1], 1)[0]
    for _ in range(300):
        words = list(rng.choice(hedged.vocab, size=int(rng.integers(0, 12))))
        out = pr.parse(words + ([EOS] if rng.random() < 0.5 else []))
        assert out.q is None or out.q in {float(v) for v in LEVELS}
        assert len(pr.roles(words)[0]) == len(pr.prompt_words()) + len(words)


def test_pretraining_words__uniform_levels_and_the_abstain_share():
    task = Hedged(FAMILIES["arith"], confidence=True, abstain=True)
    rng = np.random.default_rng(0)
    words = task.inner.problems(0, 2, 1)[0].completion_words("direct")
    drawn = [task.pretraining_words(words, rng, 0.2) for _ in range(4000)]
    abstained = [w for w in drawn if w == [ABSTAIN, EOS]]
    assert abs(len(abstained) / 4000 - 0.2) < 0.03
    counts = np.array([sum(w[-2] == q for w in drawn if w != [ABSTAIN, EOS]) for q in LEVELS])
    assert (
        counts.sum() == 4000 - len(abstained)
        and counts.min() > 0.6 * counts.mean()
        and counts.max() < 1.4 * counts.mean()
    )


def test_recipe__a_hedged_batch_draws_the_familys_problems_in_the_same_order():
    fields = dict(
        task="arith",
        p=5,
        ops=("+",),
        arch="llama",
        d_model=32,
        n_layers=1,
        n_heads=2,
        d_mlp=64,
        seed=0,
        k_train_max=3,
        k_weighting="uniform",
        direct_frac=0.5,
        steps=10,
        batch_size=16,
        lr=1e-3,
        weight_decay=0.0,
        warmup=1,
    )
    plain, hedged = Recipe.of(fields), Recipe.of({**fields, "confidence": True, "abstain_frac": 0.25})
    assert isinstance(hedged.task, Hedged) and hedged.task.abstain
    vocab = {w: i for i, w in enumerate(hedged.task.vocab)}
    a, b = plain.batch(0, vocab), hedged.batch(0, vocab)
    assert a[0][0][: a[0][1]] == b[0][0][: b[0][1]]  # the first prompt (later ones move: hedging draws too)
    inv = {i: w for w, i in vocab.items()}
    tails = [[inv[t] for t in ids[n:]] for ids, n in b]
    assert all(t == [ABSTAIN, EOS] or (t[-3] == CONF and t[-2] in LEVELS) for t in tails)


def test_reward__variants_on_hand_made_completions():
    task = Hedged(FAMILIES["arith"], confidence=True, abstain=True)
    pr = task.problems(4, 2, 1)[0]
    right, wrong_word = pr.inner.completion_words("direct"), str((pr.inner.answer + 1) % 5)
    said = lambda words, q: pr.parse([*words[:-1], CONF, q, EOS])  # noqa: E731
    r8, w8, w10 = said(right, "0.8"), said([wrong_word, EOS], "0.8"), said([wrong_word, EOS], "1.0")
    assert [reward(r8, v) for v in ("binary", "brier")] == [1.0, pytest.approx(1 - 0.04)]
    assert reward(r8, "log") == pytest.approx(1 + math.log(0.8))
    assert reward(w8, "brier") == pytest.approx(-0.64) and reward(w8, "log") == pytest.approx(math.log(0.2))
    assert reward(w10, "brier") == -1.0 and reward(w10, "log") == pytest.approx(math.log(LOG_FLOOR))
    no_conf = pr.parse(right)  # right, but no confidence: a format error under the confidence-scored rewards
    assert (
        reward(no_conf, "binary") == 1.0
        and reward(no_conf, "brier") == -1.0
        and reward(no_conf, "log") == math.log(LOG_FLOOR)
    )
    u = Utility(right=1, wrong=-3, abstain=0)
    abstained = pr.parse([ABSTAIN, EOS])
    assert [reward(o, "utility", u) for o in (r8, w8, abstained)] == [1, -3, 0] and reward(abstained, "brier") == 0.0
    with pytest.raises(ValueError):
        reward(r8, "hinge")


@pytest.mark.parametrize("variant", ["brier", "log"])
def test_reward__proper_scoring_the_expected_reward_peaks_at_the_level_nearest_the_true_chance(variant):
    class Said:
        def __init__(self, correct, q):
            self.correct, self.q = correct, q

    for p in np.linspace(0.1, 0.9, 9):
        expected = [
            p * reward(Said(True, float(q)), variant) + (1 - p) * reward(Said(False, float(q)), variant) for q in LEVELS
        ]
        assert float(LEVELS[int(np.argmax(expected))]) == pytest.approx(round(p, 1))
