"""Every random stream of bandlens, named in one place.

A stream is a pure function of its name, the run's seed and the position inside the
run (step, problem index …), so a resumed or replayed run draws exactly what an
uninterrupted one draws, on any machine (PCG64 and torch's CPU generator are
platform-independent). Two kinds:

* problem streams: which task problems a set holds (``problems``);
* draw streams: numpy generators for choices (``rng``) and torch generators for sampling.
"""

from __future__ import annotations

import numpy as np
import torch

from experiments.harness.task import Problem, TaskSpec, generate_problems

PROBLEM_STREAMS: dict[str, int] = {
    "band_candidates": 0,
    "pretrain_eval": 1_000_003,
    "band_eval": 2_000_003,
    "sae_probe": 2_000_003,
    "diff_probe": 2_000_003 + 17,
    "causal": 4_000_037,
}
"""Offset added to the run's seed for each problem set."""

DRAW_SALTS: dict[str, tuple[int, ...]] = {
    "pretrain_batch": (),
    "band_pools": (17,),
    "grpo_step": (7,),
    "one_shot_step": (11,),
    "value_sample": (23,),
    "memo_subset": (29,),
    "random_groups": (),
}
"""Last words of each numpy stream's PCG64 key (the run's key words come first)."""


def problems(stream: str, seed: int, k: int, n: int, spec: TaskSpec) -> list[Problem]:
    """The first n problems of length k of a named problem stream."""
    return generate_problems(seed + PROBLEM_STREAMS[stream], k, n, spec)


def rng(stream: str, *key: int) -> np.random.Generator:
    """A numpy generator of a named draw stream at ``key`` (seed, step, index …)."""
    return np.random.Generator(np.random.PCG64([*key, *DRAW_SALTS[stream]]))


def sampler(seed: int) -> torch.Generator:
    """A torch CPU generator for sampling completions."""
    return torch.Generator().manual_seed(seed)


def grpo_step(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Prompt-choice and sampling generators of update ``step`` of a band run."""
    return rng("grpo_step", seed, step), sampler(seed * 1_000_003 + step)


def one_shot_step(seed: int, index: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Prompt-choice and sampling generators of update ``step`` of the value study's run ``index``."""
    r = rng("one_shot_step", seed, index, step)
    return r, sampler(int(r.integers(2**62)))


def band_eval_sampling(seed: int) -> int:
    """Sampling seed of the band eval set's pass rates (the candidates' is the seed itself)."""
    return seed + 1


def grpo_eval_sampling(seed: int, step: int) -> int:
    """Sampling seed of a band run's held-out evaluation after ``step`` updates (0: the base)."""
    return seed + step
