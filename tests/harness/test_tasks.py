"""The task interface's contract, run over every task family."""

import json

import numpy as np
import pytest

from experiments.harness.rundir import init_run
from experiments.harness.tasks.family import MODES
from experiments.harness.tasks.maze import MazeSpec
from experiments.harness.tasks.registry import FAMILIES, run_task, task_of, task_of_table
from experiments.harness.training.model import build_tokenizer
from probes.activations import ROLES

PARAMS = {
    "arith": ({"p": 5, "ops": ["+", "*"]}, {"p": 7}),
    "maze": ({"max_size": 7, "loop_frac": 0.3}, {"loop_frac": 0.5}),
}
"""Per family: parameters other than its defaults, and a change of them that draws another stream (a family not
listed runs at its defaults)."""
TASKS = {name: family.make(PARAMS.get(name, ({}, {}))[0]) for name, family in FAMILIES.items()}
"""Every registered family: the contract below runs over each."""


@pytest.fixture(params=list(TASKS))
def task_ks(request):
    """A family and the knob values it has up to 7 (mazes: odd grid sides from 3)."""
    task = TASKS[request.param]
    return task, task.knobs(7)[:3]


def test_task__problems_are_a_pure_function_of_seed_and_k_and_prefixes_agree(task_ks):
    task, ks = task_ks
    for k in ks:
        a, b = task.problems(0, k, 12), task.problems(0, k, 12)
        assert [p.as_record() for p in a] == [p.as_record() for p in b]
        assert [p.as_record() for p in task.problems(0, k, 5)] == [p.as_record() for p in a[:5]]
        assert [p.as_record() for p in task.problems(1, k, 12)] != [p.as_record() for p in a]
        assert len({p.pid for p in a}) == len(a)


def test_task__records_round_trip_through_json(task_ks):
    task, ks = task_ks
    for p in task.problems(3, ks[1], 10):
        assert task.from_record(json.loads(json.dumps(p.as_record()))) == p


def test_task__canonical_completions_parse_as_right_in_their_mode_and_stay_in_the_vocabulary(task_ks):
    task, ks = task_ks
    vocab = set(task.vocab)
    assert len(vocab) == len(task.vocab)
    for k in ks:
        for p in task.problems(0, k, 10):
            words = {m: p.completion_words(m) for m in MODES}
            assert words["deliberate"][0] != words["direct"][0]  # the first word is the mode decision
            for mode, w in words.items():
                out = p.parse(w)
                assert (out.mode, out.correct, out.format_error, out.length, out.reward) == (
                    mode,
                    True,
                    False,
                    len(w),
                    1.0,
                )
                assert out.n_wrong_steps == 0 and not out.copied_answer
                assert set(p.prompt_words() + w) <= vocab
                roles, steps = p.roles(w)
                assert len(roles) == len(steps) == len(p.prompt_words()) + len(w) and set(roles) <= set(ROLES)
            assert p.parse(words["deliberate"]).n_skipped_steps == 0


def test_task__the_parser_never_raises_and_reports_its_flags_on_random_words(task_ks):
    task, ks = task_ks
    rng = np.random.default_rng(0)
    words = [*task.vocab, "junk", "", "-1", "99999"]
    problems = [p for k in ks for p in task.problems(0, k, 4)]
    for i in range(1500):
        p = problems[i % len(problems)]
        w = [str(x) for x in rng.choice(words, size=int(rng.integers(0, 30)))]
        out = p.parse(w)
        assert out.length == len(w) and out.reward == float(out.correct)
        assert not (out.correct and out.format_error) and min(out.n_skipped_steps, out.n_wrong_steps) >= 0
        roles, _ = p.roles(w)
        assert set(roles) <= set(ROLES)


def test_task__knobs_stream_keys_and_records_identify_the_family_and_its_language(task_ks):
    task, ks = task_ks
    assert task_of(task.params) == task and task_of(json.loads(json.dumps(task.params))) == task
    assert len(ks) == 3 and all(a < b and task.n_distinct(a) < task.n_distinct(b) for a, b in zip(ks, ks[1:]))
    if task.name in PARAMS:
        other = task_of({**task.params, **PARAMS[task.name][1]})
        assert other.stream_key != task.stream_key  # another language or generator draws another stream
    assert task_of_table({"task": task.params}) == task
    with pytest.raises(ValueError, match="task"):
        task_of({"task": "chess"})


def test_task_of_table__reads_a_table_made_before_the_task_interface():
    assert (
        task_of_table({"p": 5}).from_record({"pid": "a", "k": 1, "start": 2, "ops": ["+"], "operands": [4]}).answer == 1
    )


def test_run_task__reads_the_recorded_section_then_the_vocabulary(task_ks, tmp_path):
    task, _ = task_ks
    init_run(tmp_path / "run", "pretrain", MazeSpec(), task=task.params)  # any dataclass stands in for the stage's Args
    # the recorded section wins over a vocabulary that names the family's defaults (maze loops: 0)
    assert run_task(tmp_path / "run", build_tokenizer(task_of({"task": task.name})).get_vocab()) == task
    assert run_task(tmp_path / "byo", build_tokenizer(task).get_vocab()) == task_of({**task.params, "loop_frac": 0.0})
    with pytest.raises(ValueError, match="no task recorded"):
        run_task(tmp_path / "byo")


def test_task__read_out_targets_point_at_words_of_the_canonical_completions(task_ks):
    from experiments.harness.reading.feature_groups import READOUTS

    task, ks = task_ks
    vocab = set(task.vocab)
    for p in task.problems(0, ks[-1], 5) + task.problems(0, ks[0], 5):
        targets = p.targets(shortcut_k=ks[0])
        assert {t.kind for t in targets} == set(READOUTS) - ({"shortcut"} if p.k > ks[0] else set())
        for t in targets:
            assert p.completion_words(t.mode)[t.index] == t.word or (
                t.kind == "mode" and t.word == "<think>" and t.index == 0
            )
            assert t.word in vocab and (
                t.support is None or (set(t.support) <= vocab and t.word in t.support) or t.kind == "mode"
            )
        mode = next(t for t in targets if t.kind == "mode")
        assert p.completion_words("direct")[0] in mode.support  # <think> against the direct opener


def test_maze_targets__computation_is_the_g_and_h_of_every_astar_op():
    from experiments.harness.tasks.maze import astar

    task = TASKS["maze"]
    for p in task.problems(1, 5, 5):
        computed = [t.word for t in p.targets(shortcut_k=3) if t.kind == "computation"]
        assert computed == [str(v) for op in astar(p).ops for v in (op.g, op.h)]
