"""The supervised loop: next-token training on a mixture of deliberate and direct completions.

One recipe (data mixture, optimizer, learning-rate schedule) and one loop serve both the
pretraining of the base model and the value study's scoring runs, which restart the
same recipe from fresh initialisations with extra examples mixed into its batches.
Batches are a pure function of (seed, step), so a resumed run sees exactly the data an
uninterrupted one would and, on CPU, reproduces it bit for bit; for the same reason worker
processes can build them ahead of the loop without changing a byte. On a GPU the loop never
waits for the device except every ``CHECK_EVERY`` steps and before each ``after`` call, where it
checks that every loss so far was finite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from experiments.harness import seeds, tally
from experiments.harness.tasks.family import PAD, Mode, NoisyTraces, Problem, Task
from experiments.harness.tasks.hedging import Hedged
from experiments.harness.tasks.registry import task_of
from experiments.harness.training.chunk_pool import ChunkPool, chunk_backward, chunk_pool
from experiments.harness.training.model import ModelSpec, build_model
from probes.padding import NOT_TARGET, supervised_batch

Example = tuple[list[int], int]
"""Token ids of prompt + completion, and the prompt's length (its tokens are not targets)."""

PRECISIONS = ("fp32", "bf16")
"""fp32: everything in float32; bf16: forward passes under bf16 autocast (weights, gradients, optimizer
state and the loss's softmax stay float32: mixed precision)."""

CHECK_EVERY = 25
"""Steps between the loop's waits for the device (finite-loss check, progress-bar loss)."""

CHUNK_ROWS = 32
"""Examples per forward pass within a step (``accumulate``): 16 and 32 ran a default pretraining step at the same
speed, 64 a quarter slower, the whole batch of 128 2.5x slower (2 CPU cores, one thread)."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a supervised run trains on and how."""

    task: Task
    model: ModelSpec
    seed: int
    """Seeds initialisation and the batch stream."""
    k_train_max: int
    """Problems at the task's knob values up to k_train_max (chains of k = 1..k_train_max operations)."""
    k_weighting: Literal["uniform", "harmonic"]
    """How k is drawn: uniformly, or with weight 1/k (more short chains)."""
    direct_frac: float
    """Fraction of completions that are direct answers."""
    steps: int
    """Length of the learning-rate schedule."""
    batch_size: int
    lr: float
    """Peak AdamW learning rate: linear warmup, then cosine decay to 10%."""
    weight_decay: float
    warmup: int
    device: str = "cpu"
    trace_error: float = 0.0
    """Per-step chance that a deliberate training trace writes a wrong result (0: every trace is canonical)."""
    trace_error_from: int = 0
    """First step whose traces carry errors; earlier batches are clean (learn the computation, then its noise)."""
    direct_k_max: int = 0
    """Direct answers get k uniform over 1..direct_k_max (0: the same k as traces): shortcut availability."""
    precision: str = "fp32"
    """One of ``PRECISIONS``."""
    abstain_frac: float = 0.0
    """Share of completions that abstain (a hedged task with abstaining only)."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("k_train_max",) + (("direct_k_max",) if self.direct_k_max else ()):
            if not self.task.knobs(getattr(self, name)):
                raise ValueError(f"{name}: the {self.task.name} task has no knob value up to {getattr(self, name)}")
        if self.trace_error > 0 and not isinstance(self.family, NoisyTraces):
            raise ValueError(f"trace_error: the {self.task.name} task cannot write traces with wrong steps")

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> Recipe:
        """The recipe from a pretraining stage's resolved arguments (``config.json``'s ``stages.pretrain``)."""
        f = fields
        model = ModelSpec(f["arch"], f["d_model"], f["n_layers"], f["n_heads"], f["d_mlp"], f.get("max_len", 128))
        return cls(
            task_of(f),
            model,
            f["seed"],
            f["k_train_max"],
            f["k_weighting"],
            f["direct_frac"],
            f["steps"],
            f["batch_size"],
            f["lr"],
            f["weight_decay"],
            f["warmup"],
            f.get("device", "cpu"),
            f.get("trace_error", 0.0),
            f.get("trace_error_from", 0),
            f.get("direct_k_max", 0),
            f.get("precision", "fp32"),
            f.get("abstain_frac", 0.0),
        )

    @property
    def family(self) -> Task:
        """The task's family: a hedged task's problems are its family's, hedged per example."""
        return self.task.inner if isinstance(self.task, Hedged) else self.task

    @functools.cached_property
    def ks(self) -> np.ndarray:
        """The task's knob values up to k_train_max."""
        return np.array(self.task.knobs(self.k_train_max))

    @functools.cached_property
    def direct_ks(self) -> tuple[int, ...]:
        """The knob values a direct answer is drawn at when ``direct_k_max`` is set."""
        return self.task.knobs(self.direct_k_max)

    @functools.cached_property
    def k_probs(self) -> np.ndarray:
        """Probability of each of ``ks`` under ``k_weighting``."""
        w = np.ones(len(self.ks)) if self.k_weighting == "uniform" else 1 / self.ks
        return w / w.sum()

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        frac = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def batch(self, step: int, vocab: dict[str, int]) -> list[Example]:
        """The batch of ``step``: random chains in random modes, a pure function of (seed, step)."""
        rng = seeds.rng("pretrain_batch", self.seed, step)
        hedged = self.task if isinstance(self.task, Hedged) else None
        family = self.family
        out = []
        for _ in range(self.batch_size):
            problem = family.draw(rng, int(rng.choice(self.ks, p=self.k_probs)))
            mode = "direct" if rng.random() < self.direct_frac else "deliberate"
            if mode == "direct" and self.direct_k_max:
                problem = family.draw(rng, self.direct_ks[int(rng.integers(len(self.direct_ks)))])
            if mode == "deliberate" and self.trace_error > 0 and step >= self.trace_error_from:
                words = family.noisy_trace(problem, rng, self.trace_error)
            else:
                words = problem.completion_words(mode)
            out.append(
                example(problem, hedged.pretraining_words(words, rng, self.abstain_frac) if hedged else words, vocab)
            )
        return out

    def init(self, tokenizer) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """A fresh model (initialised from ``seed``) in train mode and its optimizer."""
        model = build_model(self.model, tokenizer, self.seed).to(self.device).train()
        fused = True if torch.device(self.device).type == "cuda" else None  # one kernel per step; CPU keeps its default
        return model, torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=fused)

    def autocast(self) -> torch.autocast:
        """The forward pass's autocast context (disabled under fp32)."""
        return torch.autocast(torch.device(self.device).type, torch.bfloat16, enabled=self.precision == "bf16")


class _Batches(Dataset):
    """The recipe's batch stream indexed by step, for worker processes to build ahead."""

    def __init__(self, recipe: Recipe, vocab: dict[str, int]) -> None:
        self.recipe, self.vocab = recipe, vocab

    def __getitem__(self, step: int) -> list[Example]:
        return self.recipe.batch(step, self.vocab)


def _as_is(batch: list[Example]) -> list[Example]:
    return batch


def batches(recipe: Recipe, vocab: dict[str, int], steps: range, workers: int = 0) -> Iterator[list[Example]]:
    """``recipe.batch(step)`` for each step, built by ``workers`` processes ahead of the loop (0: in it)."""
    if not workers:
        return (recipe.batch(step, vocab) for step in steps)
    loader = DataLoader(
        _Batches(recipe, vocab),
        batch_size=None,
        sampler=steps,
        num_workers=workers,
        collate_fn=_as_is,
        prefetch_factor=8,
    )
    return iter(loader)


def example(problem: Problem, completion: Mode | list[str], vocab: dict[str, int]) -> Example:
    """Prompt plus a completion: the canonical one of a mode, or the given words."""
    prompt = [vocab[w] for w in problem.prompt_words()]
    words = problem.completion_words(completion) if isinstance(completion, str) else completion
    return prompt + [vocab[w] for w in words], len(prompt)


def collate(examples: Sequence[Example], vocab: dict[str, int], width: int = 0) -> tuple[Tensor, Tensor]:
    """Right-padded ids and labels (not targets: prompt and padding) of a list of examples."""
    return supervised_batch([ids for ids, _ in examples], [n for _, n in examples], vocab[PAD], width)


def length_chunks(lengths: Sequence[int], rows: int = CHUNK_ROWS) -> list[list[int]]:
    """Indices sorted by length (stably), in chunks of ``rows``: each chunk is padded only to its own longest."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[lo : lo + rows] for lo in range(0, len(order), rows)]


def fit(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    recipe: Recipe,
    vocab: dict[str, int],
    steps: range,
    *,
    before: Callable[[int], None] | None = None,
    extra: Callable[[int], Sequence[Example]] | None = None,
    observe: Callable[[int, Tensor, Tensor], None] | None = None,
    after: Callable[[int], None] | None = None,
    after_every: int = 1,
    width: int = 0,
    workers: int = 0,
    processes: int = 1,
    desc: str = "supervised",
) -> None:
    """Train ``model`` over ``steps`` of the recipe's batch stream and lr schedule.

    ``extra(step)`` examples are appended to the step's batch (padded to at least ``width``);
    ``observe(step, logits, labels)`` sees their logits from that step's forward pass,
    before the update. ``before`` runs before each step (reading scores), ``after`` after every
    ``after_every``-th (snapshots), once every loss so far is known to be finite. ``workers``
    processes build the recipe's batches ahead (the same batches); ``processes`` (this one included) share each
    step's chunks on a CPU (``chunk_pool``: the same bytes).
    """
    bar = tqdm(steps, desc=desc, initial=steps.start, total=steps.stop, leave=extra is None)
    finite = torch.ones((), dtype=torch.bool, device=recipe.device)  # every loss so far, kept on the device
    max_chunks = math.ceil(recipe.batch_size / CHUNK_ROWS)
    with chunk_pool(model, processes, max_chunks, recipe.autocast) as pool:
        for step, stream in zip(bar, batches(recipe, vocab, steps, workers)):
            if before:
                before(step)
            more = list(extra(step)) if extra else []
            for group in opt.param_groups:
                group["lr"] = recipe.lr_at(step)
            opt.zero_grad(set_to_none=True)
            loss = accumulate(
                model,
                stream,
                more,
                vocab,
                width=width,
                observe=observe and functools.partial(observe, step),
                device=recipe.device,
                autocast=recipe.autocast,
                pool=pool,
            )
            finite &= torch.isfinite(loss)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            snapshot = after is not None and (step + 1) % after_every == 0
            if snapshot or (step + 1) % CHECK_EVERY == 0 or step + 1 == steps.stop:
                if not finite:
                    raise FloatingPointError(f"{desc}: a loss was not finite by step {step}; last snapshot kept")
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if snapshot:
                after(step)


def accumulate(
    model: torch.nn.Module,
    stream: Sequence[Example],
    more: Sequence[Example],
    vocab: dict[str, int],
    *,
    width: int = 0,
    observe: Callable[[Tensor, Tensor], None] | None = None,
    device: str = "cpu",
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    pool: ChunkPool | None = None,
) -> Tensor:
    """Gradients of one step's token-mean loss over ``stream + more``, accumulated over chunks; returns the loss.

    The stream's examples, sorted by length, go in chunks of ``CHUNK_ROWS`` padded to their own longest: one batch
    padded to its longest was two-thirds padding (chains drawn with weight 1/k), and this made pretraining steps 2.5x
    faster. Every chunk's loss is a sum divided by the whole batch's target count (``num_items_in_batch``), so the
    gradient is the whole batch's up to float rounding. ``more`` goes last, as one chunk padded to at least
    ``width``; ``observe(logits, labels)`` sees its logits before the update. A ``pool``'s helpers compute the
    stream's later chunks (the same floats, added in the same order).
    """
    chunks = [collate([stream[i] for i in part], vocab) for part in length_chunks([len(ids) for ids, _ in stream])]
    last = [collate(more, vocab, width)] if more else []
    n_items = sum(int((labels_BL[:, 1:] != NOT_TARGET).sum()) for _, labels_BL in chunks + last)
    tally.add("trained", sum(len(ids) for ids, _ in (*stream, *more)))
    here = pool.dispatch(chunks, n_items) if pool else len(chunks)  # the helpers run the later chunks meanwhile
    loss = torch.zeros((), device=device)

    def backward(ids_BL: Tensor, labels_BL: Tensor):  # the model's output, its gradient added into .grad
        ids_BL, labels_BL = ids_BL.to(device, non_blocking=True), labels_BL.to(device, non_blocking=True)
        return chunk_backward(model, ids_BL, labels_BL, n_items, autocast)

    for ids_BL, labels_BL in chunks[:here]:
        loss += backward(ids_BL, labels_BL).loss.detach()
    if pool:
        pool.collect(loss)
    for ids_BL, labels_BL in last:
        out = backward(ids_BL, labels_BL)
        if observe is not None:
            observe(out.logits.detach().float(), labels_BL.to(device))
        loss += out.loss.detach()
    return loss
