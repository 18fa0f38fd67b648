"""Tokens the study's model passes process, counted across worker processes: the per-stage profile's rates.

``sampled``: token positions a sampler's forward passes computed (each prompt once, then one per live row and step).
``trained``: non-padding tokens of training forward-backward passes (supervised steps and GRPO updates).

The counters live in shared memory: the first process that counts creates them, and the pool executor hands them to
its workers (``executors``), so a stage's line in profile.jsonl holds the work its jobs did in whichever process they
ran. Ray tasks count in processes of their own and are not seen. This is the one piece of process-wide state in the
harness, on purpose: threading a counter through every sampling and training call would touch them all.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

KINDS = ("sampled", "trained")
"""What is counted (see the module docstring)."""

_shared: dict[str, Any] = {}  # kind -> multiprocessing.Value, once created or adopted


def counters() -> dict[str, Any]:
    """This process tree's shared counters, created on first use."""
    if not _shared:
        ctx = mp.get_context("spawn")
        _shared.update({k: ctx.Value("q", 0) for k in KINDS})
    return _shared


def adopt(shared: dict[str, Any]) -> None:
    """Count into a parent's counters (a pool worker's initializer calls this)."""
    _shared.clear()
    _shared.update(shared)


def add(kind: str, n: int) -> None:
    value = counters()[kind]
    with value.get_lock():
        value.value += int(n)


def snapshot() -> dict[str, int]:
    """Every count so far."""
    return {k: v.value for k, v in counters().items()}
