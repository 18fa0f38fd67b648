"""Every random stream of bandlens, named in one place.

A stream is a pure function of its name, the run's seed and the position inside the
run (step, problem index …), so a resumed or replayed run draws exactly what an
uninterrupted one draws, on any machine (PCG64 and torch's CPU generator are
platform-independent). Two kinds:

* problem streams: which task problems a set holds (``problems``). Each named set has a
  stream of its own, and where the problem space is large enough the sets are disjoint
  by content: a problem belongs to the one stream its content hashes to. For small k
  (k = 1 over Z_11 with three operations has only 363 distinct chains) the space cannot
  hold disjoint sets of the sizes used, and sets may share problems
  (tests/test_seeds.py states how many). Pretraining batches draw from the whole space.
* draw streams: numpy generators for choices (``rng``) and torch generators for sampling.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection

import numpy as np
import torch

from experiments.harness.tasks import Problem, Task

PROBLEM_STREAMS: tuple[str, ...] = (
    "band_candidates",  # band training pools are drawn from these
    "band_eval",  # the held-out set every band run is evaluated on
    "pretrain_eval",  # the base model's accuracy table
    "sae_probe",  # what SAEs are trained and latents labelled on
    "diff_probe",  # the fixed token set checkpoints are diffed on
    "causal",  # what labels are causally checked on
)
"""Named problem sets; a stream's index is the last word of its PCG64 key and its content bucket."""

MIN_BUCKET = 1000
"""Disjoint by content at knob k only when each stream's share of the problem space
(``task.n_distinct(k)`` / number of streams) holds at least this many problems, so that drawing a
few hundred from it repeats few."""

DRAW_SALTS: dict[str, tuple[int, ...]] = {
    "pretrain_batch": (),
    "band_pools": (17,),
    "grpo_step": (7,),
    "one_shot_step": (11,),
    "value_sample": (23,),
    "memo_subset": (29,),
    "blind_gradient": (31,),
    "rollout_activity": (37,),
    "calibration_eval": (41,),
    "utility_eval": (43,),
    "fixed_data_order": (47,),
    "pruning_data": (53,),
    "pruning_halves": (59,),
    "pruning_keep": (61,),
    "pruning_rl_step": (67,),
    "refinement": (71,),
}
"""Last words of each numpy stream's PCG64 key (the run's key words come first)."""


def content_bucket(problem: Problem, n_buckets: int = len(PROBLEM_STREAMS)) -> int:
    """The stream a problem belongs to, from a hash of its content (the same on every machine)."""
    return int.from_bytes(hashlib.sha256(problem.key.encode()).digest()[:8], "big") % n_buckets


def partitioned(k: int, task: Task) -> bool:
    """Whether the problem sets are disjoint by content at knob k (see MIN_BUCKET)."""
    return task.n_distinct(k) >= MIN_BUCKET * len(PROBLEM_STREAMS)


def problems(stream: str, seed: int, k: int, n: int, task: Task) -> list[Problem]:
    """The first n problems at knob k of a named problem stream (a pure function of its arguments).

    Draws one at a time, so the first m of n are ``problems(stream, seed, k, m, task)``."""
    index = PROBLEM_STREAMS.index(stream)
    rng = np.random.Generator(np.random.PCG64([seed, k, *task.stream_key, index]))
    keep = partitioned(k, task)
    out: list[Problem] = []
    while len(out) < n:
        pr = task.draw(rng, k, pid=f"{stream}-s{seed}-k{k}-{len(out)}")
        if not keep or content_bucket(pr) == index:
            out.append(pr)
    return out


TRACE_LENGTH_SEED = 2_000_003
"""Offset of the seed at which the trace-length study draws its problems (``task.problems``: in and
beyond the pretraining range, so no stream partition)."""

VALIDATION_SEED = 1_000_003
"""Offset of the seed at which a validation set redraws the held-out eval set's stream."""


def validation_problems(seed: int, k: int, n: int, task: Task, exclude: Collection[str]) -> list[Problem]:
    """n problems of length k drawn like the held-out eval set (its stream, at another seed), none
    whose content key is in ``exclude``: a validation set disjoint from the eval set by content."""
    for drawn in (2 * n, 8 * n, 64 * n):  # a stream's first m problems are a prefix of its first n
        kept = [pr for pr in problems("band_eval", seed + VALIDATION_SEED, k, drawn, task) if pr.key not in exclude]
        if len(kept) >= n:
            return [dataclasses.replace(pr, pid=pr.pid.replace("band_eval", "validation", 1)) for pr in kept[:n]]
    raise ValueError(f"validation_problems: fewer than {n} problems of length {k} outside the excluded set")


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


def pruning_rl_step(seed: int, arm: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Prompt-choice and sampling generators of update ``step`` of the pruning study's RL arm ``arm``."""
    r = rng("pruning_rl_step", seed, arm, step)
    return r, sampler(int(r.integers(2**62)))


def blind_gradient(seed: int, index: int) -> tuple[np.random.Generator, torch.Generator]:
    """Generators of the blind gradient estimate for sampled problem ``index`` (``-1``: the validation
    set's policy gradient), independent of every one-sample run's draws."""
    r = rng("blind_gradient", seed, index + 1)
    return r, sampler(int(r.integers(2**62)))


def rollout_activity(seed: int) -> int:
    """Sampling seed of the rollouts a band run's checkpoints are read on, split by success (the same
    draws at every checkpoint of the run)."""
    return int(rng("rollout_activity", seed).integers(2**62))


def band_eval_sampling(seed: int) -> int:
    """Sampling seed of the band eval set's pass rates (the candidates' is the seed itself)."""
    return seed + 1


def calibration_eval(seed: int) -> int:
    """Sampling seed of the calibration study's held-out samples (one for every model: common random numbers)."""
    return int(rng("calibration_eval", seed).integers(2**62))


def utility_eval(seed: int) -> int:
    """Sampling seed of the utility study's held-out samples (one for every model)."""
    return int(rng("utility_eval", seed).integers(2**62))


def eval_sampling(seed: int) -> int:
    """Sampling seed of every held-out evaluation of a band run, at every step: common random numbers
    make the draws of two evaluations agree wherever the two models agree, so gains are less noisy."""
    return seed
