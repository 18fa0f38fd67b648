"""Where a study's independent jobs run: one after another, or in a pool of worker processes.

A band study's band x seed GRPO runs are independent: each is a pure function of its arguments
(every draw of update t depends only on (seed, t)), so running them in parallel changes nothing
they write, provided each worker uses the same number of torch threads as the sequential run
(float reductions depend on it). A worker is a fresh process (spawn), pinned to one GPU round
robin through CUDA_VISIBLE_DEVICES where the machine has GPUs, so several tiny-model runs can share
one GPU or spread over several.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import torch

EXECUTORS = ("local", "pool")
"""local: in this process, in order; pool: worker processes."""

Job = TypeVar("Job")
Out = TypeVar("Out")


def _init_worker(threads: int, n_gpus: int, counter) -> None:
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if n_gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % n_gpus)  # before this process touches CUDA
    torch.set_num_threads(threads)


def run_jobs(fn: Callable[[Job], Out], jobs: Sequence[Job], executor: str = "local", workers: int = 2) -> list[Out]:
    """``[fn(job) for job in jobs]``, in order, on the chosen executor (``fn`` must be importable by name)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor: must be one of {EXECUTORS}, got {executor!r}")
    if executor == "local" or len(jobs) < 2 or workers < 2:
        return [fn(job) for job in jobs]
    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", 0)
    init = (torch.get_num_threads(), torch.cuda.device_count() if torch.cuda.is_available() else 0, counter)
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
        return list(pool.map(fn, jobs))
