"""Where a study's independent jobs run: one after another, in a pool of worker processes, or on Ray.

A band study's band x seed GRPO runs are independent: each is a pure function of its arguments
(every draw of update t depends only on (seed, t)), so running them in parallel changes nothing
they write: every job runs with the same number of torch threads on every executor (``run_jobs``'s
``threads``; float reductions depend on it). A worker is a fresh process, forked from a server process that
imported the libraries once (``PRELOAD``; spawned where the OS has no forkserver), pinned to one GPU round
robin through CUDA_VISIBLE_DEVICES where the machine has GPUs, so several tiny-model runs can share
one GPU or spread over several. On Ray (the optional ``ray`` extra) a job is one task, scheduled
on whatever node of the cluster has its resources: the torch threads it uses as CPUs, and
``gpus_per_job`` of a GPU where the cluster has GPUs (a fraction packs several tiny-model runs onto
one GPU). Ray connects to the cluster named by ``RAY_ADDRESS`` (or the one ``ray job submit`` runs
in) and otherwise starts a local instance with room for ``workers`` jobs at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

import torch
from tqdm.auto import tqdm

from experiments.harness import tally

EXECUTORS = ("local", "pool", "ray")
"""local: in this process, in order; pool: worker processes on this machine; ray: Ray tasks."""

Job = TypeVar("Job")
Out = TypeVar("Out")


@dataclasses.dataclass
class _Kept:
    pools: dict[tuple[int, int], ProcessPoolExecutor] = dataclasses.field(default_factory=dict)
    """By (workers, threads)."""
    warming: list[threading.Thread] = dataclasses.field(default_factory=list)
    """``warm_pool``'s threads, joined before the pools shut down."""


_KEPT: contextvars.ContextVar[_Kept | None] = contextvars.ContextVar("kept_pools", default=None)
"""What ``kept_pools`` keeps open: scoped state, set and cleared by that block only."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block and restored after it (None: left as they are)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def kept_pools() -> Iterator[None]:
    """Inside the block, ``run_jobs`` keeps its worker processes for the next call instead of starting new ones: a
    worker imports the study's own modules (about 1 s once ``PRELOAD`` is in; 9 s per spawned worker), which a study
    with a pool per stage paid seven times. Workers run one job at a time as before, so nothing a job writes changes."""
    kept = _Kept()
    token = _KEPT.set(kept)
    try:
        yield
    finally:
        _KEPT.reset(token)
        for thread in kept.warming:
            thread.join()
        for pool in kept.pools.values():
            pool.shutdown()


def warm_pool(module: str, executor: str, workers: int, threads: int) -> None:
    """Inside ``kept_pools``: start now the pool a later ``run_jobs(..., executor, workers, threads=threads)`` will
    use, each worker importing ``module`` (what its jobs import), so that its start overlaps what this process does
    meanwhile (the smoke study's pretraining runs in one process); nothing for other executors or outside the block.
    It returns at once: a worker's start waits for the forkserver's imports (``PRELOAD``, about 6 s), so the
    workers are started from a thread."""
    kept = _KEPT.get()
    if kept is None or executor != "pool" or workers < 2:
        return
    pool = _kept(kept, workers, threads)
    thread = threading.Thread(target=lambda: [pool.submit(_import, module) for _ in range(workers)], daemon=True)
    kept.warming.append(thread)
    thread.start()


def _import(module: str) -> None:
    importlib.import_module(module)


def _kept(kept: _Kept, workers: int, threads: int) -> ProcessPoolExecutor:
    if (workers, threads) not in kept.pools:
        kept.pools[workers, threads] = _pool(workers, threads)
    return kept.pools[workers, threads]


PRELOAD = ("__main__", "transformer_lens", "sae_lens")
"""What the forkserver imports once for every worker it forks: the main module (as a spawned worker runs it) and the
libraries jobs read models with, which pull in torch and transformers: about 8 s on 2 cores that every spawned worker
of every pool paid (the test suite makes pools in many tests). The server runs no torch op, so forking it is safe."""


def process_context() -> mp.context.BaseContext:
    """The start method of every worker process the harness makes (pools here, ``chunk_pool``'s helpers)."""
    if "forkserver" not in mp.get_all_start_methods():  # Windows
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))  # read when this process first starts its server
    return ctx


def _pool(workers: int, threads: int) -> ProcessPoolExecutor:
    ctx = process_context()
    counter = ctx.Value("i", 0)
    init = (threads, torch.cuda.device_count() if torch.cuda.is_available() else 0, counter, tally.counters())
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init)


def _init_worker(threads: int, n_gpus: int, counter, tallies: dict) -> None:
    tally.adopt(tallies)  # the parent's token counts, for its profile
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if n_gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % n_gpus)  # before this process touches CUDA
    torch.set_num_threads(threads)


def _in_threads(threads: int, fn: Callable[[Job], Out], job: Job) -> Out:
    torch.set_num_threads(threads)
    return fn(job)


def _ray(fn: Callable[[Job], Out], jobs: Sequence[Job], workers: int, gpus_per_job: float, threads: int) -> list[Out]:
    import ray  # the optional extra: pip install 'bandlens[ray]'

    if not ray.is_initialized():
        local = "RAY_ADDRESS" not in os.environ  # set by hand for a cluster, and by `ray job submit`
        ray.init(**(dict(num_cpus=workers * threads, include_dashboard=False) if local else {}))
    gpus = gpus_per_job if ray.cluster_resources().get("GPU", 0) else 0
    task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(_in_threads)
    return ray.get([task.remote(threads, fn, job) for job in jobs])


def run_jobs(
    fn: Callable[[Job], Out],
    jobs: Sequence[Job],
    executor: str = "local",
    workers: int = 2,
    gpus_per_job: float = 1.0,
    threads: int | None = None,
    desc: str = "",
) -> list[Out]:
    """``[fn(job) for job in jobs]``, in order, on the chosen executor (``fn`` must be importable by name), each job
    with ``threads`` torch threads (None: this process's count) whichever executor runs it: float reductions depend
    on the thread count, so the executor changes nothing a job writes. A ``desc`` shows a progress bar of the jobs
    done (local and pool executors)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor: must be one of {EXECUTORS}, got {executor!r}")
    threads = threads or torch.get_num_threads()
    if executor == "ray":
        return _ray(fn, jobs, workers, gpus_per_job, threads)
    if executor == "local" or len(jobs) < 2 or workers < 2:
        with torch_threads(threads):
            return [fn(job) for job in tqdm(jobs, desc=desc, disable=not desc)]
    kept = _KEPT.get()
    if kept is None:
        with _pool(min(workers, len(jobs)), threads) as pool:
            return _in_order(pool, fn, jobs, desc)
    return _in_order(_kept(kept, workers, threads), fn, jobs, desc)


def _in_order(pool: ProcessPoolExecutor, fn: Callable[[Job], Out], jobs: Sequence[Job], desc: str) -> list[Out]:
    """Every job submitted in order (as ``pool.map`` does), counted on a bar as each ends; the results in order."""
    futures = [pool.submit(fn, job) for job in jobs]
    for _ in tqdm(as_completed(futures), total=len(futures), desc=desc, disable=not desc):
        pass
    return [f.result() for f in futures]


def _call(job: tuple[Callable[[Job], Out], Job]) -> Out:
    fn, arg = job
    return fn(arg)


def run_together(batches: Sequence[tuple[Callable, Sequence]], *args, **kwargs) -> list[list]:
    """Several stages' independent jobs, ``(fn, jobs)`` each, in one ``run_jobs`` call (its other arguments
    follow), so that no worker idles while one stage's last job runs; each stage's results, in order. Jobs start in
    the order given: the longest first packs best."""
    out = iter(run_jobs(_call, [(fn, job) for fn, jobs in batches for job in jobs], *args, **kwargs))
    return [[next(out) for _ in jobs] for _, jobs in batches]
