"""Rollout sampler and training-step benchmark, against the machine's own matmul throughput:
``python -m experiments.bench [--model runs/NAME/base]``.

One run, on one model and one batch of prompts, measures and prints:

- the host: torch's thread count, ``os.cpu_count()`` and the CPUs this process may run on (results vary by host);
- the machine's float32 matmul throughput (GFLOP/s) at the model's own shapes: ``F.linear`` of
  (batch x d_model) activations by the (d_ff x d_model) and (d_model x d_model) weights, as one sampling step of
  the batch does them (:func:`matmul_gflops`);
- tokens/s of the harness's KV-cached sampler, of a naive loop (a full forward over the whole sequence per new
  token, no cache) and of TransformerLens's ``generate`` on the bridge, with their ratios. All three decode greedily
  to the same length, so they produce the same tokens;
- tokens/s of one training step (forward, backward and an AdamW update of the HF model, teacher-forced next-token
  loss) on ``batch`` sequences of the sampler's full length (prompt + completion);
- the model's FLOPs per token from its config (:func:`flops_per_token`), and from them each measured rate as
  FLOP/s and as a fraction of the matmul throughput. The fraction counts *useful* work only: the naive sampler
  recomputes the whole sequence per token, so its fraction is what it achieves, not what it executes.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from experiments.harness import cli
from experiments.harness.executors import torch_threads, usable_cpus
from experiments.harness.tasks.arith import TaskSpec
from experiments.harness.tasks.registry import task_of_vocab
from experiments.harness.training.chunk_pool import chunk_pool
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer, save_model
from experiments.harness.training.rl import PolicySpec, optimizer, policy_update
from experiments.harness.training.rollout import Rollout, max_new_tokens
from experiments.harness.training.sampling import sample
from experiments.harness.training.supervised import CHUNK_ROWS, accumulate, collate, example
from probes.models import load_bridge, load_hf, load_tokenizer
from probes.padding import left_pad


@dataclasses.dataclass(frozen=True)
class BenchArgs:
    """Compare rollout samplers and a training step on one model and one batch, against matmul throughput."""

    model: Path | None = None
    """HF model dir to benchmark (default: a freshly initialised default-size model)."""
    preset: str = "default"
    """Named defaults (smoke, default)."""
    batch: int = 64
    """Prompts per batch (also the sequences per training step and the rows of the timed matmuls)."""
    k: int = 6
    """Chain length of the prompts (sets the completion length)."""
    repeats: int = 3
    """Timed repetitions per measurement (the best is reported)."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        if min(self.batch, self.k, self.repeats) < 1:
            raise ValueError("batch, k, repeats: must be >= 1")


PRESETS: dict[str, dict] = {"default": {}, "smoke": dict(batch=4, k=2, repeats=1)}

SAMPLERS = ("cached", "naive", "tl_generate")
LABELS = {"cached": "cached sampler", "naive": "naive sampler", "tl_generate": "TL generate", "train": "training step"}


def flops_per_token(config, context: float = 0.0) -> float:
    """Forward-pass matmul FLOPs per token of a Llama/Qwen2-style HF decoder (``config``: its ``PretrainedConfig``).

    With d = hidden_size, h = num_attention_heads, g = num_key_value_heads, e = head_dim (d // h when the config
    has none), f = intermediate_size, V = vocab_size, counting 2 FLOPs per multiply-add, per layer:

    - projections: 2·(d·h·e [q] + d·g·e [k] + d·g·e [v] + h·e·d [o]), so grouped-query attention (g < h) counts
      the smaller k, v;
    - gated MLP: 2·3·d·f (gate, up and down);
    - attention: 2·2·context·h·e (the scores q·kᵀ and the weighted sum of v) for a token attending to ``context``
      positions (0: leave attention out);

    plus 2·d·V for the unembedding. Embedding lookups, norms, rotary, softmax, activations and biases are not
    counted. A training step (forward + backward) is 3x this.
    """
    d, f, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    h = config.num_attention_heads
    g = getattr(config, "num_key_value_heads", None) or h
    e = getattr(config, "head_dim", None) or d // h
    per_layer = 2 * (d * h * e + 2 * d * g * e + h * e * d) + 2 * 3 * d * f + 2 * 2 * context * h * e
    return float(config.num_hidden_layers * per_layer + 2 * d * vocab)


def matmul_gflops(shapes: Sequence[tuple[int, int, int]], repeats: int, min_seconds: float = 0.05) -> float:
    """Float32 matmul throughput in GFLOP/s on torch's current thread count: best of ``repeats`` timed loops of
    ``F.linear(x, w)`` with x (m x k) and w (n x k) for each ``(m, k, n)`` in ``shapes`` (2·m·n·k FLOPs each).

    A warm-up round runs first; the loop is sized so that one repeat takes about ``min_seconds``.
    """
    pairs = [(torch.randn(m, k), torch.randn(n, k)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)

    def rounds(count: int) -> float:
        t0 = time.perf_counter()
        for _ in range(count):
            for x, w in pairs:
                F.linear(x, w)
        return time.perf_counter() - t0

    count = 1
    while (elapsed := rounds(count)) < min_seconds / 4:  # warm-up, and doubling until a loop is long enough
        count *= 2
    count = max(1, round(count * min_seconds / max(elapsed, 1e-9)))
    return count * flops / min(rounds(count) for _ in range(repeats)) / 1e9


@torch.no_grad()
def naive_sample(model, prompts, max_new: int, pad_id: int) -> torch.Tensor:
    """Greedy decoding with a full forward per new token (no KV cache)."""
    ids_BL, mask_BL = left_pad(prompts, pad_id)
    for _ in range(max_new):
        pos_BL = (mask_BL.cumsum(-1) - 1).clamp(min=0)
        nxt_B = model(input_ids=ids_BL, attention_mask=mask_BL, position_ids=pos_BL).logits[:, -1].argmax(-1)
        ids_BL = torch.cat([ids_BL, nxt_B[:, None]], 1)
        mask_BL = torch.cat([mask_BL, torch.ones_like(mask_BL[:, :1])], 1)
    return ids_BL


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def training_step(model, ids_BL: torch.Tensor) -> Callable[[], None]:
    """One teacher-forced next-token step on ``ids_BL`` (forward, backward, AdamW update) of a copy of ``model``,
    as a function; its first call (not returned, done here) creates the optimiser state."""
    model = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        model(input_ids=ids_BL, labels=ids_BL).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    return step


def ragged_ratios(model, tok, args: BenchArgs) -> dict[str, float]:
    """Speed-ups on ragged work, as the study meets it: prompts at every k up to ``args.k``, in both modes.

    - evaluation sampling at T = 1 stopping at <eos>, with per-row uniforms (finished rows leave the batch) over a
      shared generator (they keep feeding <pad>): the two draw different samples of the same distribution;
    - a supervised step (forward and backward) on those examples in length chunks (``supervised.accumulate``)
      over one batch padded to its longest, and (with more than one usable CPU) the chunks shared by helper
      processes over one process, one thread each (the study's ``job_threads``);
    - a GRPO update on them as rollouts (groups of 8, the reference's forward included) in length chunks over one
      batch padded to its longest (``rl.policy_update``'s ``rows``).
    """
    vocab = tok.get_vocab()
    family = task_of_vocab(vocab)
    problems = [pr for k in range(1, args.k + 1) for pr in family.problems(1, k, max(1, args.batch // args.k))]
    prompts = [tok.convert_tokens_to_ids(pr.prompt_words()) for pr in problems]
    n_new, eos, pad = max_new_tokens(problems), tok.eos_token_id, tok.pad_token_id
    uniforms = torch.rand(len(prompts), n_new, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    leave = best_time(
        lambda: sample(model, prompts, max_new=n_new, eos_id=eos, pad_id=pad, uniforms_BT=uniforms), args.repeats
    )
    stay = best_time(
        lambda: sample(
            model, prompts, max_new=n_new, eos_id=eos, pad_id=pad, generator=torch.Generator().manual_seed(0)
        ),
        args.repeats,
    )
    examples = [example(pr, mode, vocab) for i, pr in enumerate(problems) for mode in [("deliberate", "direct")[i % 2]]]
    trained = copy.deepcopy(model).train()

    def whole() -> None:
        ids_BL, labels_BL = collate(examples, vocab)
        trained(input_ids=ids_BL, labels=labels_BL).loss.backward()

    chunked = best_time(lambda: accumulate(trained, examples, [], vocab), args.repeats)
    rolled = [
        Rollout(pr, tuple(ids[:n]), tuple(ids[n:]), pr.parse(pr.completion_words(mode)))
        for pr, (ids, n), mode in zip(problems, examples, itertools.cycle(("deliberate", "direct")))
    ]
    size = min(8, len(rolled))  # a smoke batch may hold fewer than one group of 8
    groups, policy = [rolled[i : i + size] for i in range(0, len(rolled) - size + 1, size)], PolicySpec()
    opt = optimizer(trained, policy)
    update = lambda rows: best_time(lambda: policy_update(trained, model, opt, groups, policy, rows=rows), args.repeats)  # noqa: E731
    ratios = {
        "eval/rows_leave_over_stay": stay / leave,
        "train/chunked_over_whole": best_time(whole, args.repeats) / chunked,
        "grpo/chunked_over_whole": update(len(rolled)) / update(CHUNK_ROWS),
    }
    if usable_cpus() > 1:  # the same chunks shared by helper processes (chunk_pool: the same bytes)
        # one thread a process, as the study runs pretraining (its job_threads): helpers at this process's thread
        # count would oversubscribe the cores and time that instead
        chunks = math.ceil(len(examples) / CHUNK_ROWS)
        with torch_threads(1):
            alone = best_time(lambda: accumulate(trained, examples, [], vocab), args.repeats)
            with chunk_pool(trained, usable_cpus(), chunks) as pool:
                shared = best_time(lambda: accumulate(trained, examples, [], vocab, pool=pool), args.repeats)
        ratios[f"train/{min(usable_cpus(), chunks)}_processes_over_1"] = alone / shared
    return ratios


def kilo(x: float) -> str:
    """``12100.0`` -> ``12.1k``."""
    return f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def main(args: BenchArgs) -> dict[str, float]:
    print(f"host: torch threads {torch.get_num_threads()}, os.cpu_count {os.cpu_count()}, usable CPUs {usable_cpus()}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            tok = build_tokenizer(TaskSpec())
            model_dir = Path(tmp) / "model"
            save_model(build_model(ModelSpec(), tok, seed=0), tok, model_dir)
        model, tok, bridge = load_hf(model_dir), load_tokenizer(model_dir), load_bridge(model_dir)
        problems = task_of_vocab(tok.get_vocab()).problems(0, args.k, args.batch)
        prompts = [tok.convert_tokens_to_ids(pr.prompt_words()) for pr in problems]
        n_new = max_new_tokens(problems)
        n_tokens = n_new * len(prompts)
        # Never stop early: every sampler produces exactly n_new greedy tokens per prompt,
        # and each must reproduce the naive loop's tokens for its speed to mean anything.
        reference = naive_sample(model, prompts, n_new, tok.pad_token_id)[:, -n_new:].tolist()
        samplers = {
            "cached": lambda: sample(model, prompts, max_new=n_new, eos_id=-1, pad_id=tok.pad_token_id, temperature=0),
            "naive": lambda: naive_sample(model, prompts, n_new, tok.pad_token_id)[:, -n_new:].tolist(),
            "tl_generate": lambda: bridge.generate(
                torch.tensor(prompts), max_new_tokens=n_new, do_sample=False, stop_at_eos=False, verbose=False
            )[:, -n_new:].tolist(),  # equal-length prompts: no padding needed
        }
        result = {}
        for name, fn in samplers.items():
            result[f"bench/{name}_tok_s"] = n_tokens / best_time(fn, args.repeats)
            result[f"bench/{name}_matches_naive"] = float(fn() == reference)
        ids_BL = torch.cat([torch.tensor(prompts), torch.tensor(reference)], 1)  # equal-length prompts
        step = training_step(model, ids_BL)
        result["train/tok_s"] = ids_BL.numel() / best_time(step, args.repeats)
        result |= ragged_ratios(model, tok, args)
    cfg = model.config
    d, f = cfg.hidden_size, cfg.intermediate_size
    m, n_prompt, n_seq = len(prompts), len(prompts[0]), ids_BL.shape[1]
    result["matmul_gflops"] = matmul_gflops([(m, d, f), (m, d, d)], args.repeats)
    # Mean number of positions a token attends to: a generated token at position p (0-based) sees p + 1.
    result["flops_per_token"] = flops_per_token(cfg)
    result["sample/flops_per_token"] = flops_per_token(cfg, context=n_prompt + (n_new + 1) / 2)
    result["train/flops_per_token"] = 3 * flops_per_token(cfg, context=(n_seq + 1) / 2)
    peak = result["matmul_gflops"]
    for name in (*SAMPLERS, "train"):
        prefix = "train/" if name == "train" else f"sample/{name}_"
        if name != "train":
            result[f"{prefix}tok_s"] = result[f"bench/{name}_tok_s"]
        per_token = result["train/flops_per_token" if name == "train" else "sample/flops_per_token"]
        result[f"{prefix}gflops"] = result[f"{prefix}tok_s"] * per_token / 1e9
        result[f"{prefix}frac"] = result[f"{prefix}gflops"] / peak
    result["sample/cached_over_naive"] = result["bench/cached_tok_s"] / result["bench/naive_tok_s"]
    result["sample/cached_over_tl_generate"] = result["bench/cached_tok_s"] / result["bench/tl_generate_tok_s"]

    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    print(
        f"model: {cfg.num_hidden_layers} layers, d_model {d}, d_ff {f}, {heads} heads / {kv_heads} kv, "
        f"vocab {cfg.vocab_size}; "
        f"{result['flops_per_token'] / 1e6:.3f} MFLOP/token forward without attention, "
        f"{result['sample/flops_per_token'] / 1e6:.3f} sampling, {result['train/flops_per_token'] / 1e6:.3f} "
        f"per trained token (3x forward)"
    )
    print(
        f"batch {m} x ({n_prompt} prompt + {n_new} new tokens); float32 matmul, ({m} x {d}) @ ({d} x {f}) and "
        f"({m} x {d}) @ ({d} x {d}): {peak:.1f} GFLOP/s"
    )
    for name in (*SAMPLERS, "train"):
        prefix = "train/" if name == "train" else f"sample/{name}_"
        line = (
            f"  {LABELS[name] + ':':<16} {kilo(result[f'{prefix}tok_s']):>7} tok/s = "
            f"{result[f'{prefix}gflops']:6.2f} GFLOP/s = {result[f'{prefix}frac']:.3f} of matmul ({peak:.1f} GFLOP/s)"
        )
        if name != "train":
            same = result[f"bench/{name}_matches_naive"]
            line += "  (same tokens as naive)" if same else "  (DIFFERENT tokens from naive)"
        print(line)
    print(f"  cached / naive        {result['sample/cached_over_naive']:6.2f}x")
    print(f"  cached / TL generate  {result['sample/cached_over_tl_generate']:6.2f}x")
    print(f"ragged work, k = 1..{args.k} in both modes (about {args.batch} rows):")
    print(
        f"  evaluation sampling: finished rows leave / stay in the batch   {result['eval/rows_leave_over_stay']:6.2f}x"
    )
    print(f"  supervised step: length chunks / one padded batch            {result['train/chunked_over_whole']:6.2f}x")
    print(f"  GRPO update: length chunks / one padded batch                {result['grpo/chunked_over_whole']:6.2f}x")
    for key in (k for k in result if k.endswith("_processes_over_1")):
        n = key.split("/")[1].split("_")[0]
        print(f"  supervised step: chunks on {n} processes / on 1, a thread each  {result[key]:6.2f}x")
    return result


if __name__ == "__main__":
    cli.run(main, BenchArgs, PRESETS)
