"""The reverse curriculum: primed prompts are the problem with its first steps written, whose remaining chain is
the canonical one, read against the full problem; the schedule reaches none."""

import numpy as np
import pytest
import torch

from experiments.harness.tasks.arith import Problem as Chain
from experiments.harness.tasks.registry import FAMILIES
from experiments.harness.tasks.reverse_curriculum import Primed, poser, steps_given
from experiments.harness.training import rl
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer


def test_primed__a_planted_chain_keeps_its_last_steps_to_compute():
    chain = Chain("c", 11, 3, ("+", "*"), (4, 2))  # 3 + 4 = 7, 7 * 2 = 14 = 3 (mod 11)
    primed = Primed(chain, 1)
    assert primed.prompt_words() == ["<bos>", "3", "+", "4", "*", "2", "=", "<think>", "3", "+", "4", "7"]
    assert primed.completion_words("deliberate") == ["*", "2", "3", "</think>", "3", "<eos>"]
    right, wrong = (
        primed.parse(["*", "2", "3", "</think>", "3", "<eos>"]),
        primed.parse(["*", "2", "4", "</think>", "4", "<eos>"]),
    )
    assert (right.correct, right.n_wrong_steps, right.length) == (True, 0, 11) and (
        wrong.correct,
        wrong.n_wrong_steps,
    ) == (False, 1)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_primed__every_cut_of_every_family_leaves_the_canonical_rest_which_parses_right(name):
    task = FAMILIES[name].make({})
    for problem in [pr for k in task.knobs(7)[:3] for pr in task.problems(0, k, 4)]:
        full = problem.prompt_words() + problem.completion_words("deliberate")
        for j in range(problem.difficulty):
            primed = Primed(problem, j)
            rest = primed.completion_words("deliberate")
            assert primed.prompt_words() + rest == full and primed.key == problem.key
            out = primed.parse(rest)
            assert out.correct and not out.format_error and out.n_skipped_steps == out.n_wrong_steps == 0
            roles, steps = primed.roles(rest)
            assert len(roles) == len(steps) == len(full)


def test_steps_given__falls_from_all_but_one_step_to_none_and_stays_there():
    given = [steps_given(9, t, 30) for t in range(40)]
    assert given[0] == 8 and given[29] == 1 and set(given[30:]) == {0}
    assert all(a >= b for a, b in zip(given, given[1:])) and steps_given(9, 0, 0) == 0


def test_sample_groups__posed_prompts_carry_the_given_steps_and_are_scored_on_the_full_problem():
    task = FAMILIES["arith"].make({"p": 5, "ops": ["+"]})
    tok = build_tokenizer(task)
    model = build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0).eval()
    pool = task.problems(0, 4, 6)
    spec = rl.PolicySpec(prompts_per_step=3, group_size=2, rollout_batch=8)
    pose = poser(10)
    groups, _ = rl.sample_groups(
        model, tok, pool, spec, np.random.default_rng(0), torch.Generator().manual_seed(0), lambda pr: pose(pr, t=0)
    )
    for r in (r for g in groups for r in g):
        prefix = r.problem.inner.trace_prefix(3)  # 4 steps: 3 given at update 0
        assert list(r.prompt_ids[-len(prefix) :]) == tok.convert_tokens_to_ids(prefix)
        assert r.parsed.length == len(prefix) + len(r.completion_ids)
        assert r.parsed == r.problem.inner.parse(prefix + tok.convert_ids_to_tokens(list(r.completion_ids)))
