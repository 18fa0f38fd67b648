"""The task interface's contract, run over every task family."""

import json

import numpy as np
import pytest

from experiments.harness.maze import MazeSpec
from experiments.harness.task import MODES, TaskSpec
from experiments.harness.tasks import Arithmetic, Mazes
from probes.activations import ROLES

TASKS = {"arith": (Arithmetic(TaskSpec(5, ("+", "*"))), (1, 2, 3)), "maze": (Mazes(MazeSpec(7, 0.3)), (3, 5, 7))}
"""Each family with the difficulty knobs it is checked at (mazes: odd grid sides)."""


@pytest.fixture(params=list(TASKS))
def task_ks(request):
    return TASKS[request.param]


def test_task__problems_are_a_pure_function_of_seed_and_k_and_prefixes_agree(task_ks):
    task, ks = task_ks
    for k in ks:
        a, b = task.problems(0, k, 12), task.problems(0, k, 12)
        assert [task.record(p) for p in a] == [task.record(p) for p in b]
        assert [task.record(p) for p in task.problems(0, k, 5)] == [task.record(p) for p in a[:5]]
        assert [task.record(p) for p in task.problems(1, k, 12)] != [task.record(p) for p in a]
        assert len({p.pid for p in a}) == len(a)


def test_task__records_round_trip_through_json(task_ks):
    task, ks = task_ks
    for p in task.problems(3, ks[1], 10):
        assert task.from_record(json.loads(json.dumps(task.record(p)))) == p


def test_task__canonical_completions_parse_as_right_in_their_mode_and_stay_in_the_vocabulary(task_ks):
    task, ks = task_ks
    vocab = set(task.vocab)
    assert len(vocab) == len(task.vocab)
    for k in ks:
        for p in task.problems(0, k, 10):
            words = {m: task.completion_words(p, m) for m in MODES}
            assert words["deliberate"][0] != words["direct"][0]  # the first word is the mode decision
            for mode, w in words.items():
                out = task.parse(p, w)
                assert (out.mode, out.correct, out.format_error, out.length, out.reward) == (mode, True, False, len(w), 1.0)
                assert out.n_wrong_steps == 0 and not out.copied_answer
                assert set(task.prompt_words(p) + w) <= vocab
                roles, steps = task.roles(p, w)
                assert len(roles) == len(steps) == len(task.prompt_words(p)) + len(w) and set(roles) <= set(ROLES)
            assert task.parse(p, words["deliberate"]).n_skipped_steps == 0


def test_task__the_parser_never_raises_and_reports_its_flags_on_random_words(task_ks):
    task, ks = task_ks
    rng = np.random.default_rng(0)
    words = [*task.vocab, "junk", "", "-1", "99999"]
    problems = [p for k in ks for p in task.problems(0, k, 4)]
    for i in range(1500):
        p = problems[i % len(problems)]
        w = [str(x) for x in rng.choice(words, size=int(rng.integers(0, 30)))]
        out = task.parse(p, w)
        assert out.length == len(w) and out.reward == float(out.correct)
        assert not (out.correct and out.format_error) and min(out.n_skipped_steps, out.n_wrong_steps) >= 0
        roles, _ = task.roles(p, w)
        assert set(roles) <= set(ROLES)
