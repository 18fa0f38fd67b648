import random

import pytest

from experiments.harness.tasks.arith import (
    TaskSpec,
    apply_op,
    completion_words,
    generate_problems,
    parse_completion,
    prompt_words,
)
from experiments.harness.tasks.family import END_THINK, EOS, THINK

SPEC = TaskSpec()


def test_generate_problems__same_seed_same_problems_and_prefix_stable():
    a = generate_problems(3, 4, 50, SPEC)
    assert a == generate_problems(3, 4, 50, SPEC)
    assert a[:10] == generate_problems(3, 4, 10, SPEC)
    assert a != generate_problems(4, 4, 50, SPEC)
    assert all(pr.k == 4 and 0 <= pr.answer < SPEC.p for pr in a)


def test_generate_problems__golden_values_are_machine_independent():
    # PCG64 streams are fixed by numpy's stability policy; these were recorded once.
    pr = generate_problems(7, 5, 3, SPEC)[2]
    assert (pr.start, pr.ops, pr.operands, pr.answer) == (3, ("-", "-", "*", "*", "+"), (1, 1, 3, 1, 7), 10)


def test_problem__running_results_follow_the_chain():
    for pr in generate_problems(0, 6, 20, SPEC):
        r = pr.start
        for op, x in zip(pr.ops, pr.operands):
            r = {"+": r + x, "-": r - x, "*": r * x}[op] % SPEC.p
        assert pr.answer == r == pr.running[-1]
    assert apply_op("-", 2, 5, 11) == 8


def test_task_spec__rejects_composite_modulus_and_unknown_ops():
    with pytest.raises(ValueError, match="p: 12 is not prime"):
        TaskSpec(p=12)
    with pytest.raises(ValueError, match="ops"):
        TaskSpec(ops=("/",))


@pytest.mark.parametrize("mode", ["deliberate", "direct"])
def test_parse__canonical_completion_is_correct(mode):
    for pr in generate_problems(1, 5, 20, SPEC):
        parsed = parse_completion(pr, completion_words(pr, mode))
        assert parsed.correct and not parsed.format_error and parsed.mode == mode
        assert parsed.reward == 1.0 and parsed.n_wrong_steps == 0 and not parsed.copied_answer
        assert parsed.n_skipped_steps == (0 if mode == "deliberate" else pr.k)
        assert len(parsed.steps) == (pr.k if mode == "deliberate" else 0)


def test_parse__wrong_intermediate_step_is_counted():
    pr = next(p for p in generate_problems(2, 3, 50, SPEC) if p.ops[1] != "*")
    words = completion_words(pr, "deliberate")
    words[4] = str((int(words[4]) + 1) % SPEC.p)  # result of step 1
    parsed = parse_completion(pr, words)
    # step 1 is wrong, and under + or - step 2's true result no longer follows from the written r1
    assert parsed.n_wrong_steps == 2
    assert not parsed.format_error


def test_parse__skipped_step_is_counted_and_answer_can_still_be_right():
    pr = generate_problems(2, 4, 1, SPEC)[0]
    words = completion_words(pr, "deliberate")
    del words[5:8]  # drop step 2 (op, operand, result)
    parsed = parse_completion(pr, words)
    assert parsed.n_skipped_steps == 1 and len(parsed.steps) == 3
    assert parsed.correct  # the verifier only checks the final answer
    assert parsed.lucky_success  # ... reached without a right computation


def test_parse__lucky_success_is_a_right_answer_without_a_right_computation():
    short, long = generate_problems(3, 1, 1, SPEC)[0], generate_problems(3, 4, 1, SPEC)[0]
    assert not parse_completion(long, completion_words(long, "deliberate")).lucky_success  # earned
    assert not parse_completion(short, completion_words(short, "direct")).lucky_success  # k = 1: the shortcut works
    assert parse_completion(long, completion_words(long, "direct")).lucky_success  # k = 4: direct is at chance
    wrong = [str((long.answer + 1) % SPEC.p), "<eos>"]
    assert not parse_completion(long, wrong).lucky_success  # a wrong answer is no success


def test_parse__copied_answer_is_flagged_only_when_wrong():
    pr = next(p for p in generate_problems(5, 3, 100, SPEC) if p.operands[-1] != p.answer)
    parsed = parse_completion(pr, [str(pr.operands[-1]), EOS])
    assert parsed.copied_answer and not parsed.correct and parsed.mode == "direct"
    other = next(str(v) for v in range(SPEC.p) if v not in (pr.answer, pr.operands[-1]))
    assert not parse_completion(pr, [other, EOS]).copied_answer


@pytest.mark.parametrize(
    "words",
    [
        [],
        [EOS],
        ["5"],  # truncated: no <eos>
        ["5", "6", EOS],
        [THINK, EOS],
        [THINK, "1", "+", EOS],
        [THINK, "1", "+", "2", "3", END_THINK, EOS],
        [THINK, "1", "+", "2", "3", END_THINK, "3"],
        [THINK, "1", "?", "2", "3", END_THINK, "3", EOS],
        [THINK, "1", "+", "2", "99", END_THINK, "3", EOS],
        ["=", "3", EOS],
        ["3", EOS, EOS],
        [THINK, "1", END_THINK, END_THINK, "1", EOS],
    ],
)
def test_parse__malformed_completions_are_format_errors(words):
    pr = generate_problems(0, 1, 1, SPEC)[0]
    parsed = parse_completion(pr, words)
    assert parsed.format_error and not parsed.correct and parsed.reward == 0.0 and parsed.answer is None
    assert parsed.length == len(words)


def test_parse__random_token_strings_never_crash():
    rng = random.Random(0)
    vocab = list(SPEC.vocab) + ["junk", "", "007", "-1"]
    pr = generate_problems(0, 3, 1, SPEC)[0]
    for _ in range(3000):
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 15))]
        parsed = parse_completion(pr, words)
        assert parsed.correct == (not parsed.format_error and parsed.answer == pr.answer)


def test_prompt_words__shape():
    pr = generate_problems(0, 3, 1, SPEC)[0]
    words = prompt_words(pr)
    assert words[0] == "<bos>" and words[-1] == "=" and len(words) == 2 * pr.k + 3


def test_unreliable_trace__wrong_steps_at_the_given_rate_and_the_answer_follows_the_trace():
    import numpy as np

    from experiments.harness.tasks.arith import unreliable_trace_words

    rng = np.random.default_rng(0)
    problems = generate_problems(7, 5, 400, SPEC)
    assert all(unreliable_trace_words(pr, rng, 0.0) == completion_words(pr, "deliberate") for pr in problems[:20])
    parsed = [parse_completion(pr, unreliable_trace_words(pr, rng, 0.2)) for pr in problems]
    assert not any(p.format_error for p in parsed)
    assert np.mean([p.correct for p in parsed]) == pytest.approx(0.8**5, abs=0.06)  # right only if no step erred
    wrong_written = [p for p in parsed if not p.correct]
    assert all(p.n_wrong_steps >= 1 for p in wrong_written)  # an error is a wrong step, not a wrong answer alone
