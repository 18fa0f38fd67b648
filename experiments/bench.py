"""Rollout sampler benchmark: ``python -m experiments.bench [--model runs/NAME/base]``.

Prints, from one run on the same model and the same batch of prompts, tokens/s of the
harness's KV-cached sampler, of a naive loop (a full forward over the whole sequence
per new token, no cache), and of TransformerLens's ``generate`` on the bridge, with
their ratios. All three decode greedily to the same length, so they do the same work.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from experiments.harness import cli
from experiments.harness.model import ModelSpec, build_model, build_tokenizer, save_model
from experiments.harness.rollout import max_new_tokens
from experiments.harness.sampling import sample
from experiments.harness.task import TaskSpec
from experiments.harness.tasks import task_of_vocab
from probes.models import load_bridge, load_hf, load_tokenizer
from probes.padding import left_pad


@dataclasses.dataclass(frozen=True)
class BenchArgs:
    """Compare rollout samplers on one model and one batch."""

    model: Path | None = None
    """HF model dir to benchmark (default: a freshly initialised default-size model)."""
    preset: str = "default"
    """Named defaults (smoke, default)."""
    batch: int = 64
    """Prompts per batch."""
    k: int = 6
    """Chain length of the prompts (sets the completion length)."""
    repeats: int = 3
    """Timed repetitions per sampler (the best is reported)."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        if min(self.batch, self.k, self.repeats) < 1:
            raise ValueError("batch, k, repeats: must be >= 1")


PRESETS: dict[str, dict] = {"default": {}, "smoke": dict(batch=4, k=2, repeats=1)}


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


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(args: BenchArgs) -> dict[str, float]:
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
    print(f"batch {len(prompts)} x {n_new} new tokens, threads {torch.get_num_threads()}")
    for name in samplers:
        ok = "same tokens as naive" if result[f"bench/{name}_matches_naive"] else "DIFFERENT tokens from naive"
        print(f"  {name:<12} {result[f'bench/{name}_tok_s']:10.0f} tok/s  ({ok})")
    print(f"  cached / naive        {result['bench/cached_tok_s'] / result['bench/naive_tok_s']:6.2f}x")
    print(f"  cached / TL generate  {result['bench/cached_tok_s'] / result['bench/tl_generate_tok_s']:6.2f}x")
    return result


if __name__ == "__main__":
    cli.run(main, BenchArgs, PRESETS)
