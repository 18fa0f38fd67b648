import functools
import threading

import torch

from experiments.harness import executors, tally
from experiments.harness.executors import run_jobs, torch_threads


def test_run_jobs__every_job_runs_with_the_asked_threads_and_the_caller_gets_its_own_back():
    before = torch.get_num_threads()
    with torch_threads(2):
        assert run_jobs(lambda job: (job, torch.get_num_threads()), [0, 1], "local", threads=1) == [(0, 1), (1, 1)]
        assert torch.get_num_threads() == 2
        assert run_jobs(lambda job: torch.get_num_threads(), [0], "local") == [2]  # None: the caller's count
    assert torch.get_num_threads() == before


def test_run_jobs__pool_workers_count_tokens_into_the_callers_tally():
    """The profile's token counts include what jobs in worker processes did (the counters are shared)."""
    before = tally.snapshot()
    run_jobs(functools.partial(tally.add, "sampled"), [3, 4, 5], "pool", workers=2, threads=1)
    after = tally.snapshot()
    assert after["sampled"] - before["sampled"] == 12 and after["trained"] == before["trained"]


def test_kept_pools__every_run_jobs_call_inside_shares_one_spawn_and_gets_its_results(monkeypatch):
    spawned = []
    real = executors._pool
    monkeypatch.setattr(executors, "_pool", lambda *a: spawned.append(a) or real(*a))
    with executors.kept_pools():
        first = run_jobs(abs, [-1, -2, -3], "pool", workers=2, threads=1)
        second = run_jobs(abs, [-4, -5], "pool", workers=2, threads=1)
    assert (first, second, spawned) == ([1, 2, 3], [4, 5], [(2, 1)])
    run_jobs(abs, [-6, -7], "pool", workers=2, threads=1)  # outside the block: a pool of its own
    assert len(spawned) == 2


def test_run_together__each_stage_gets_its_own_results_in_order_from_one_pool(monkeypatch):
    spawned = []
    real = executors._pool
    monkeypatch.setattr(executors, "_pool", lambda *a: spawned.append(a) or real(*a))
    batches = [(abs, [-1, -2, -3]), (str, []), (round, [1.6, 2.2])]
    assert executors.run_together(batches, "pool", 2, threads=1) == [[1, 2, 3], [], [2, 2]]
    assert executors.run_together(batches, "local") == [[1, 2, 3], [], [2, 2]]
    assert len(spawned) == 1  # one spawn for all three stages' jobs


def test_warm_pool__spawns_the_kept_pool_before_its_jobs_which_then_use_it(monkeypatch):
    spawned = []
    real = executors._pool
    monkeypatch.setattr(executors, "_pool", lambda *a: spawned.append(a) or real(*a))
    executors.warm_pool("json", "pool", 2, 1)  # outside kept_pools: nothing to keep, nothing spawned
    assert spawned == []
    with executors.kept_pools():
        executors.warm_pool("json", "local", 2, 1)  # no pool to warm
        assert spawned == []
        executors.warm_pool("json", "pool", 2, 1)
        assert spawned == [(2, 1)]
        assert run_jobs(abs, [-1, -2], "pool", workers=2, threads=1) == [1, 2]
    assert spawned == [(2, 1)]


def test_warm_pool__returns_while_its_workers_start_and_the_block_waits_for_them_before_shutting_down(monkeypatch):
    """A worker's start waits for the forkserver's imports; the study's pretraining must not wait with it."""
    events, release = [], threading.Event()

    class SlowStart:  # a pool whose submits block, as a worker's start does while the server imports
        def submit(self, fn, *args):
            release.wait(10)
            events.append(args)

        def shutdown(self):
            events.append("shutdown")

    monkeypatch.setattr(executors, "_pool", lambda *a: SlowStart())
    with executors.kept_pools():
        executors.warm_pool("json", "pool", 2, 1)
        assert events == []  # back before the first worker started
        release.set()
    assert events == [("json",), ("json",), "shutdown"]


def test_run_jobs__a_desc_counts_every_job_done_on_a_bar_and_the_results_stay_in_order(capsys):
    for executor in ("local", "pool"):
        assert run_jobs(abs, [-3, -1, -2], executor, workers=2, threads=1, desc="jobs") == [3, 1, 2]
        err = capsys.readouterr().err
        assert "jobs: 100%" in err and "3/3" in err, executor
        run_jobs(abs, [-3, -1], executor, workers=2, threads=1)  # no desc: no bar
        assert "100%" not in capsys.readouterr().err
