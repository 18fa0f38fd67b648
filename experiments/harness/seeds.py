"""Every random stream of bandlens, named in one place.

A stream is a pure function of its name, the run's seed and the position inside the
run (step, problem index …), so a resumed or replayed run draws exactly what an
uninterrupted one draws, on any machine (PCG64 and torch's CPU generator are
platform-independent). Three kinds:

* problem streams (``PROBLEM_STREAMS``): which task problems a set holds (``problems``). Each
  named set has a stream of its own, and where the problem space is large enough the sets are
  disjoint by content: a problem belongs to the one content bucket its content hashes to
  (``N_BUCKETS``, fixed), and a stream keeps only its bucket's problems. The refinement study's
  held-out set shares the band eval set's bucket (``SHARED_BUCKETS``), away from the pretraining
  eval set's. For small k (k = 1 over Z_11 with three operations has only 363 distinct chains) the space
  cannot hold disjoint sets of the sizes used, and sets may share problems
  (tests/harness/test_seeds.py states how many). Pretraining batches draw from the whole space.
* draw streams (``DRAW_SALTS``): numpy generators for choices (``rng``), keyed by the run's key
  words then the stream's salt.
* torch sampling streams: a CPU ``torch.Generator`` (``sampler``) seeded with either the first
  62-bit draw of a named draw stream (``seed_of``) or, for the band study's older sampling
  streams (evaluation, GRPO updates, band labels, probe sets, the base eval table), a fixed
  affine function of their seed (``AFFINE_SAMPLING``), kept so that the band study's results
  stay what they were. torch's CPU generator keeps only a seed's low 32 bits.

numpy's SeedSequence pads a key of fewer than four words with zeros (``[s, 17]`` seeds what
``[s, 17, 0]`` seeds), so streams are told apart by their keys' last nonzero words: a draw
stream's salt, a problem stream's index (for the first stream, index 0, the task's last key
word). tests/harness/test_seeds.py checks that no two streams share a key or a sampling seed,
and states the few older ones that do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Collection

import numpy as np
import torch

from experiments.harness.tasks.family import Problem, Task

PROBLEM_STREAMS: tuple[str, ...] = (
    "band_candidates",  # band training pools are drawn from these
    "band_eval",  # the held-out set every band run is evaluated on
    "pretrain_eval",  # the base model's accuracy table
    "sae_probe",  # what SAEs are trained and latents labelled on
    "diff_probe",  # the fixed token set checkpoints are diffed on
    "causal",  # what labels are causally checked on
    "refinement_eval",  # the refinement study's held-out set (band_eval's bucket: SHARED_BUCKETS)
)
"""Named problem sets; a stream's index is the last word of its PCG64 key."""

N_BUCKETS = 6
"""Content buckets, one per stream of the first six. Fixed: a stream added later takes the bucket of an
existing one (``SHARED_BUCKETS``), so that no problem of an existing stream changes."""

SHARED_BUCKETS: dict[str, str] = {"refinement_eval": "band_eval"}
"""Streams beyond the first N_BUCKETS, and the stream whose bucket each draws from. The refinement held-out set
draws from the band eval set's: both are held out, neither is any study's training data, and neither meets
``pretrain_eval`` (the base model's table, which a run pretrained with seed s draws at seed s)."""

MIN_BUCKET = 1000
"""Disjoint by content at knob k only when each bucket's share of the problem space
(``task.n_distinct(k)`` / N_BUCKETS) holds at least this many problems, so that drawing a
few hundred from it repeats few."""


def _named(*names: str) -> dict[str, tuple[int, ...]]:
    return {name: (zlib.crc32(name.encode()),) for name in names}


DRAW_SALTS: dict[str, tuple[int, ...]] = {
    "pretrain_batch": (),  # (seed, step): equals a one-word-keyed stream's key at step = its salt (see tests)
    "band_pools": (17,),
    "grpo_step": (7,),
    "one_shot_step": (11,),
    "value_sample": (23,),
    "memo_subset": (29,),
    "blind_gradient": (31,),
    "rollout_activity": (37,),  # torch: the band study's activity rollouts
    "calibration_eval": (41,),  # torch: the calibration study's held-out samples
    "utility_eval": (43,),  # torch: the utility study's held-out samples
    "fixed_data_order": (47,),
    "pruning_data": (53,),
    "pruning_halves": (59,),
    "pruning_keep": (61,),
    "pruning_rl_step": (67,),
    "refinement": (71,),
    **_named(
        "value_base_sampling",  # torch: the value study's base pass rates
        "value_eval_sampling",  # torch: the value study's eval-set accuracies (every model: common random numbers)
        "value_eval_gradient",  # torch: the value study's target-aware eval-set gradient
        "memo_sampling",  # torch: the value study's pass rates after a memorization run
    ),
}
"""Last words of each numpy stream's PCG64 key (the run's key words come first). Older streams keep their small
prime salts; newer ones (``_named``) take the CRC-32 of their name, above any step count, so that their keys never
meet ``pretrain_batch``'s (seed, step)."""


def content_bucket(problem: Problem, n_buckets: int = N_BUCKETS) -> int:
    """The bucket a problem belongs to, from a hash of its content (the same on every machine)."""
    return int.from_bytes(hashlib.sha256(problem.key.encode()).digest()[:8], "big") % n_buckets


def bucket_of(stream: str) -> int:
    """The content bucket a problem stream keeps (its own index among the first N_BUCKETS, else a shared one)."""
    return PROBLEM_STREAMS.index(SHARED_BUCKETS.get(stream, stream))


def partitioned(k: int, task: Task) -> bool:
    """Whether the problem sets are disjoint by content at knob k (see MIN_BUCKET)."""
    return task.n_distinct(k) >= MIN_BUCKET * N_BUCKETS


def problem_key(stream: str, seed: int, k: int, task: Task) -> list[int]:
    """The PCG64 key of a problem stream at (seed, k)."""
    return [seed, k, *task.stream_key, PROBLEM_STREAMS.index(stream)]


def problems(stream: str, seed: int, k: int, n: int, task: Task) -> list[Problem]:
    """The first n problems at knob k of a named problem stream (a pure function of its arguments).

    Draws one at a time, so the first m of n are ``problems(stream, seed, k, m, task)``."""
    rng = np.random.Generator(np.random.PCG64(problem_key(stream, seed, k, task)))
    bucket, keep = bucket_of(stream), partitioned(k, task)
    out: list[Problem] = []
    while len(out) < n:
        pr = task.draw(rng, k, pid=f"{stream}-s{seed}-k{k}-{len(out)}")
        if not keep or content_bucket(pr) == bucket:
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


AFFINE_SAMPLING: dict[str, tuple[int, int]] = {
    "grpo_sampling": (1_000_003, 0),  # update `position` of a band run
    "eval_sampling": (1, 0),  # every held-out evaluation of a band run (common random numbers)
    "band_candidates_sampling": (1, 0),  # the band candidates' pass rates (the bands stage's seed)
    "band_eval_sampling": (1, 1),  # the band eval set's pass rates (the bands stage's seed)
    "probe_sampling": (1, 0),  # a probe set's own completions (SAE, diffing and feature probe sets)
    "pretrain_eval_sampling": (1, 0),  # the base model's accuracy table (the pretraining seed)
}
"""The band study's torch sampling streams, older than ``seed_of``: (scale, offset), and the sampling seed at
(seed, position) is ``seed * scale + offset + position``. Kept as they were, so that the band study draws what it
always drew; several therefore give the same seed (tests/harness/test_seeds.py states which, at the defaults)."""


def rng(stream: str, *key: int) -> np.random.Generator:
    """A numpy generator of a named draw stream at ``key`` (seed, step, index …)."""
    return np.random.Generator(np.random.PCG64(draw_key(stream, *key)))


def draw_key(stream: str, *key: int) -> list[int]:
    """The PCG64 key of a named draw stream at ``key``."""
    return [*key, *DRAW_SALTS[stream]]


def seed_of(stream: str, *key: int) -> int:
    """An integer seed from a named draw stream: the first 62-bit draw of ``rng(stream, *key)`` (for torch
    sampling, and for APIs that take a seed)."""
    return int(rng(stream, *key).integers(2**62))


def affine_seed(stream: str, seed: int, position: int = 0) -> int:
    """The sampling seed of an ``AFFINE_SAMPLING`` stream at (seed, position)."""
    scale, offset = AFFINE_SAMPLING[stream]
    return seed * scale + offset + position


def sampler(seed: int) -> torch.Generator:
    """A torch CPU generator for sampling completions, from a seed of a named stream."""
    return torch.Generator().manual_seed(seed)


def _with_sampler(r: np.random.Generator) -> tuple[np.random.Generator, torch.Generator]:
    """A draw stream's generator and the sampler seeded with its first 62-bit draw (``seed_of``'s seed); the
    generator goes on from there."""
    return r, sampler(int(r.integers(2**62)))


def grpo_step(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Prompt-choice and sampling generators of update ``step`` of a band run."""
    return rng("grpo_step", seed, step), sampler(affine_seed("grpo_sampling", seed, step))


def one_shot_step(seed: int, index: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Prompt-choice and sampling generators of update ``step`` of the value study's run ``index``."""
    return _with_sampler(rng("one_shot_step", seed, index, step))


def pruning_rl_step(seed: int, arm: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Prompt-choice and sampling generators of update ``step`` of the pruning study's RL arm ``arm``."""
    return _with_sampler(rng("pruning_rl_step", seed, arm, step))


def blind_gradient(seed: int, index: int) -> tuple[np.random.Generator, torch.Generator]:
    """Generators of the blind gradient estimate for sampled problem ``index`` (``-1``: the validation
    set's policy gradient), independent of every one-sample run's draws."""
    return _with_sampler(rng("blind_gradient", seed, index + 1))


def rollout_activity(seed: int) -> int:
    """Sampling seed of the rollouts a band run's checkpoints are read on, split by success (the same
    draws at every checkpoint of the run)."""
    return seed_of("rollout_activity", seed)


def eval_sampling(seed: int) -> int:
    """Sampling seed of every held-out evaluation of a band run, at every step: common random numbers
    make the draws of two evaluations agree wherever the two models agree, so gains are less noisy."""
    return affine_seed("eval_sampling", seed)


def band_candidates_sampling(seed: int) -> int:
    """Sampling seed of the band candidates' pass rates (the bands stage's seed)."""
    return affine_seed("band_candidates_sampling", seed)


def band_eval_sampling(seed: int) -> int:
    """Sampling seed of the band eval set's pass rates (the bands stage's seed)."""
    return affine_seed("band_eval_sampling", seed)


def probe_sampling(seed: int) -> torch.Generator:
    """Sampler of a probe set's own completions (``experiments.harness.reading.probe_sets``, the set's seed)."""
    return sampler(affine_seed("probe_sampling", seed))


def pretrain_eval_sampling(seed: int) -> int:
    """Sampling seed of the base model's accuracy table (the pretraining seed)."""
    return affine_seed("pretrain_eval_sampling", seed)


def calibration_eval(seed: int) -> int:
    """Sampling seed of the calibration study's held-out samples (one for every model: common random numbers)."""
    return seed_of("calibration_eval", seed)


def utility_eval(seed: int) -> int:
    """Sampling seed of the utility study's held-out samples (one for every model)."""
    return seed_of("utility_eval", seed)


def value_base_sampling(seed: int) -> int:
    """Sampling seed of the value study's base pass rates of its sampled problems."""
    return seed_of("value_base_sampling", seed)


def value_eval_sampling(seed: int) -> int:
    """Sampling seed of the value study's eval-set accuracies (one for every model: common random numbers)."""
    return seed_of("value_eval_sampling", seed)


def value_eval_gradient(seed: int) -> torch.Generator:
    """Sampler of the value study's target-aware eval-set policy gradient."""
    return sampler(seed_of("value_eval_gradient", seed))


def memo_sampling(seed: int, subset: int) -> int:
    """Sampling seed of the value study's pass rates after memorization run ``subset``."""
    return seed_of("memo_sampling", seed, subset)
