"""Data-parallel supervised steps that compute the bytes one process computes.

A step's loss gradient is a sum over length chunks (``supervised.accumulate``); one process adds each chunk's
gradient into ``.grad`` in chunk order. Here helper processes (``executors.process_context``, each with the caller's
torch threads) compute the later chunks' gradients alone, each into its own shared-memory slot, while this process
runs the first chunks; their slots are then added in chunk order. Every chunk's gradient is the same floats either
way (the same shapes, the same threads, weights in shared memory), and so is the order of the additions, so a
pretraining run is bit for bit the same with one process or several: how many is a how-to-run choice. On two cores
the default pretraining (four chunks of 32 rows a step) went from about 570 s to 355 s; ``experiments.bench`` prints
the ratio.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.multiprocessing  # noqa: F401  (registers torch's shared-memory pickling for the helpers' arguments)
from torch import Tensor

from experiments.harness.executors import process_context

Chunk = tuple[Tensor, Tensor]
"""A chunk's right-padded ids and labels, each [rows, width]."""


def split(costs: Sequence[int], n: int) -> list[int]:
    """Bounds of ``n`` contiguous blocks of chunks (block i is ``[bounds[i], bounds[i + 1])``) of near-equal cost: a
    chunk opens the next block when more than half of it lies past that block's share of the total."""
    total, bounds, acc = sum(costs), [0], 0
    for i, c in enumerate(costs):
        if len(bounds) < n and acc + c / 2 > total * len(bounds) / n:
            bounds.append(i)
        acc += c
    return bounds + [len(costs)] * (n + 1 - len(bounds))


def chunk_backward(model: torch.nn.Module, ids_BL: Tensor, labels_BL: Tensor, n_items: int, autocast):
    """One chunk's loss (its targets' summed loss over the step's ``n_items``), its gradient added into ``.grad``; the
    one computation this process and the helpers run, so a chunk's gradient is the same floats wherever it ran."""
    with autocast():
        out = model(input_ids=ids_BL, labels=labels_BL, num_items_in_batch=n_items)
    out.loss.backward()
    return out


def _serve(conn) -> None:
    """A helper's loop: first its model, slots, threads and autocast; then for each request (chunks, n_items), every
    chunk's gradient alone into its slot."""
    model, slots, threads, autocast = conn.recv()
    torch.set_num_threads(threads)
    params = list(model.parameters())
    while (request := conn.recv()) is not None:
        chunks, n_items = request
        replies = []
        for slot, (ids_BL, labels_BL) in zip(slots, chunks):
            for p in params:
                p.grad = None
            out = chunk_backward(model, ids_BL, labels_BL, n_items, autocast)
            for s, p in zip(slot, params):
                if p.grad is not None:
                    s.copy_(p.grad)
            replies.append((out.loss.detach(), [p.grad is not None for p in params]))
        conn.send(replies)


class ChunkPool:
    """``helpers`` processes that compute chunk gradients for ``model``, whose weights move to shared memory."""

    def __init__(self, model: torch.nn.Module, helpers: int, max_chunks: int, autocast) -> None:
        model.share_memory()  # in place: the optimizer's references stay valid, the helpers see every update
        self.params = list(model.parameters())
        ctx = process_context()
        self.helpers = []
        for _ in range(helpers):
            slots = [[torch.zeros_like(p).share_memory_() for p in self.params] for _ in range(max_chunks)]
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(there,), daemon=True)
            proc.start()
            # Shared tensors go through the pipe, not the start arguments: a forkserver start passes each one's file
            # descriptor in one message of at most ~250, which a batch of 512 (16 slots of every parameter) exceeded.
            here.send((model, slots, torch.get_num_threads(), autocast))
            self.helpers.append((proc, here, slots))
        self._sent: list[int] = []  # helpers (by index) with a request out, in chunk order

    def dispatch(self, chunks: Sequence[Chunk], n_items: int) -> int:
        """Send each helper its block of chunks; returns how many (the first) stay with this process."""
        starts = split([ids_BL.numel() for ids_BL, _ in chunks], len(self.helpers) + 1)
        self._sent = []
        for h, ((_, conn, slots), lo, hi) in enumerate(zip(self.helpers, starts[1:], starts[2:])):
            if hi - lo > len(slots):  # a chunk without a slot would drop out of the gradient
                raise ValueError(f"chunk_pool: {hi - lo} chunks for {len(slots)} slots")
            if hi > lo:
                conn.send((list(chunks[lo:hi]), n_items))
                self._sent.append(h)
        return starts[1]

    def collect(self, loss: Tensor) -> None:
        """Add the helpers' chunk gradients into ``.grad`` and their losses into ``loss``, in chunk order."""
        for h in self._sent:
            _, conn, slots = self.helpers[h]
            for slot, (chunk_loss, has_grad) in zip(slots, conn.recv()):
                for s, p, has in zip(slot, self.params, has_grad):
                    if has:
                        p.grad = s.clone() if p.grad is None else p.grad.add_(s)
                loss += chunk_loss
        self._sent = []

    def close(self) -> None:
        for proc, conn, _ in self.helpers:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(None)
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


MIN_PARAMS = 200_000
"""Below this many parameters a step stays in one process: moving chunks to a helper and its gradient back costs more
than the chunk's backward. Measured on 2 quiet cores: a step of the default model (3 layers, d128, 498k parameters,
batches of 128) ran 1.3-1.4x faster on two processes than on one (``experiments.bench``); the smoke model (2 layers,
d64, 84k, batches of 64) pretrained 2.2x slower (47.5 s against 21.1 s)."""


@contextlib.contextmanager
def chunk_pool(
    model: torch.nn.Module, processes: int, max_chunks: int, autocast=contextlib.nullcontext
) -> Iterator[ChunkPool | None]:
    """Helpers for ``model``'s steps, ``processes`` in all with this one, closed after the block (None: one process,
    also for a model under ``MIN_PARAMS``)."""
    helpers = min(processes, max_chunks) - 1
    small = sum(p.numel() for p in model.parameters()) < MIN_PARAMS
    if helpers < 1 or small or next(model.parameters()).device.type != "cpu":
        yield None
        return
    pool = ChunkPool(model, helpers, max_chunks, autocast)
    try:
        yield pool
    finally:
        pool.close()
