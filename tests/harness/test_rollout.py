"""The held-out evaluation's standard error."""

import numpy as np
import pytest

from experiments.harness.training.rollout import sampling_se


def test_sampling_se__matches_the_spread_of_repeated_evaluations():
    """Per-problem success probabilities p_i, n draws each: the SE estimated from one evaluation
    agrees with the standard deviation of the accuracy over many repeated evaluations."""
    rng = np.random.default_rng(0)
    p = rng.choice([0.0, 1.0, 0.5, 0.2, 0.9], size=480)
    n = 8
    accs, ses = [], []
    for _ in range(400):
        rate = rng.binomial(n, p) / n
        accs.append(rate.mean())
        ses.append(sampling_se(rate, n))
    assert np.mean(ses) == pytest.approx(np.std(accs), rel=0.1)
    assert 0.004 < np.mean(ses) < 0.007  # 8 samples x 480 problems: about 0.005
    assert sampling_se(np.array([1.0, 0.0]), 1) == pytest.approx(np.sqrt(0.25 / 2))


def test_step_accuracy__counts_steps_against_the_operations_a_correct_trace_performs():
    """Arithmetic: k steps; mazes: A*'s op count, not the grid side (dividing by the side floored every maze at 0)."""
    from experiments.harness.tasks.arith import Arithmetic, TaskSpec
    from experiments.harness.tasks.maze import Mazes, MazeSpec
    from experiments.harness.training.rollout import step_accuracy

    chain = Arithmetic(TaskSpec(11)).problems(0, 3, 1)[0]
    words = chain.completion_words("deliberate")
    assert step_accuracy(chain.parse(words), chain) == 1.0
    words[4] = str((int(words[4]) + 1) % 11)  # r_1 written wrong
    assert (
        step_accuracy(chain.parse(words), chain) == pytest.approx(1 - chain.parse(words).n_wrong_steps / 3)
        and chain.parse(words).n_wrong_steps >= 1
    )
    maze = max(Mazes(MazeSpec(7)).problems(0, 5, 20), key=lambda m: m.difficulty)
    words = maze.completion_words("deliberate")
    assert step_accuracy(maze.parse(words), maze) == 1.0 and maze.difficulty > maze.k
    g_at = words.index("close") + 3  # the g of the first closed cell
    words[g_at] = str(int(words[g_at]) + 1)
    parsed = maze.parse(words)
    assert parsed.n_wrong_steps + parsed.n_skipped_steps >= 1
    assert step_accuracy(maze.parse(["<think>", "</think>", "<eos>"]), maze) == 0.0  # a format error wrote no step
    acc = step_accuracy(parsed, maze)
    assert acc == pytest.approx(1 - (parsed.n_wrong_steps + parsed.n_skipped_steps) / maze.difficulty) and acc > 0.5
