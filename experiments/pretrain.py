"""Supervised pretraining of the base model on a mixture of deliberate and direct completions.

``python -m experiments.pretrain --preset default --out runs/NAME`` writes
``runs/NAME/base/`` (HF model dir) and ``runs/NAME/base/eval.json`` (accuracy per k and
per mode, greedy and sampled, over a k range reaching beyond the pretraining range).

Batches are a pure function of (seed, step), so a resumed run sees exactly the data an
uninterrupted one would, and on CPU reproduces it bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from experiments import cli
from experiments.evaluate import accuracy_by_k
from experiments.model import ModelSpec, build_model, build_tokenizer, save_model
from experiments.rundir import check_writable, clear_stale_temps, init_run, read_json, write_json
from experiments.task import MODES, TaskSpec, completion_words, draw_problem, generate_problems, prompt_words
from experiments.train_state import load_state, save_state
from probes.models import load_hf, load_tokenizer

EVAL_SEED_OFFSET = 1_000_003
"""Eval problems come from seed + this offset, a stream training never draws from."""


@dataclasses.dataclass(frozen=True)
class PretrainArgs:
    """Pretrain the base model (intermediate competence: shortcut at small k, traces decaying with k)."""

    out: Path = Path("runs/default")
    """Run directory; the model lands in <out>/base/."""
    preset: str = "default"
    """Named defaults (smoke, default); explicit flags override them."""
    seed: int = 0
    """Seeds model initialisation, training batches and sampled evaluation."""
    p: int = 11
    """Prime modulus of the task."""
    ops: tuple[str, ...] = ("+", "-", "*")
    """Operations chains may use."""
    k_train_max: int = 6
    """Pretraining covers chains of k = 1..k_train_max operations."""
    k_eval_max: int = 10
    """Evaluation covers k = 1..k_eval_max, beyond the pretraining range."""
    direct_frac: float = 0.5
    """Fraction of pretraining completions that are direct answers."""
    k_weighting: Literal["uniform", "harmonic"] = "harmonic"
    """How pretraining draws k in 1..k_train_max: uniformly, or with weight 1/k (more short chains)."""
    steps: int = 1500
    """Optimizer steps."""
    batch_size: int = 128
    """Sequences per step."""
    lr: float = 1e-3
    """Peak AdamW learning rate (2e-3 stalled at chance while designing)."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    warmup: int = 50
    """Linear warmup steps before cosine decay to 10% of lr."""
    arch: Literal["llama", "qwen2"] = "llama"
    """HF architecture family."""
    d_model: int = 128
    """Residual stream width."""
    n_layers: int = 3
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads per block."""
    d_mlp: int = 256
    """MLP hidden width (256 trains twice as fast as 512 on 2 CPU cores)."""
    eval_per_k: int = 100
    """Held-out problems per k in eval.json."""
    checkpoint_every: int = 200
    """Steps between resumable training-state snapshots."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_per_k", "checkpoint_every", "k_train_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup: must be >= 0, got {self.warmup}")
        if self.k_eval_max < self.k_train_max:
            raise ValueError(f"k_eval_max: {self.k_eval_max} is below k_train_max {self.k_train_max}")
        if not 0.0 <= self.direct_frac <= 1.0:
            raise ValueError(f"direct_frac: must lie in [0, 1], got {self.direct_frac}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        self.task_spec, self.model_spec  # noqa: B018 -- validate the derived specs now

    @property
    def task_spec(self) -> TaskSpec:
        return TaskSpec(p=self.p, ops=self.ops)

    @property
    def k_probs(self) -> np.ndarray:
        """Probability of each k in 1..k_train_max under ``k_weighting``."""
        w = np.ones(self.k_train_max) if self.k_weighting == "uniform" else 1 / np.arange(1, self.k_train_max + 1)
        return w / w.sum()

    @property
    def model_spec(self) -> ModelSpec:
        return ModelSpec(self.arch, self.d_model, self.n_layers, self.n_heads, self.d_mlp)


PRESETS: dict[str, dict] = {
    "default": {},
    # A smaller language (Z_5, '+' only, k <= 3) that a tiny model learns in seconds, with the
    # same shape of competence: direct answers at k = 1, traces in range, chance beyond it.
    "smoke": dict(
        p=5, ops=("+",), k_train_max=3, k_eval_max=5, steps=400, batch_size=64, lr=3e-3, warmup=20,
        d_model=64, n_layers=2, d_mlp=128, eval_per_k=16, checkpoint_every=100,
    ),  # fmt: skip
    "gpu": dict(steps=4000, batch_size=256, d_model=256, n_layers=4, d_mlp=1024, n_heads=8, eval_per_k=500, device="cuda"),
}


def make_batch(
    rng: np.random.Generator, args: PretrainArgs, vocab: dict[str, int]
) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    """Right-padded ids and labels; labels are -100 on the prompt and padding."""
    seqs, n_prompt = [], []
    ks = np.arange(1, args.k_train_max + 1)
    for _ in range(args.batch_size):
        problem = draw_problem(rng, int(rng.choice(ks, p=args.k_probs)), args.task_spec)
        mode = "direct" if rng.random() < args.direct_frac else "deliberate"
        prompt = [vocab[w] for w in prompt_words(problem)]
        seqs.append(prompt + [vocab[w] for w in completion_words(problem, mode)])
        n_prompt.append(len(prompt))
    width = max(map(len, seqs))
    ids_BL = torch.full((len(seqs), width), vocab["<pad>"], dtype=torch.long)
    labels_BL = torch.full_like(ids_BL, -100)
    for i, (s, n) in enumerate(zip(seqs, n_prompt)):
        ids_BL[i, : len(s)] = torch.tensor(s)
        labels_BL[i, n : len(s)] = ids_BL[i, n : len(s)]
    return ids_BL, labels_BL


def lr_at(step: int, args: PretrainArgs) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    frac = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def train(args: PretrainArgs, state_path: Path):
    """Train from scratch or from the snapshot at ``state_path``; returns (model, tokenizer)."""
    tokenizer = build_tokenizer(args.task_spec)
    vocab = tokenizer.get_vocab()
    model = build_model(args.model_spec, tokenizer, args.seed).to(args.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    start = load_state(state_path, opt, model, args.device) if state_path.exists() else 0
    bar = tqdm(range(start, args.steps), desc="pretrain", initial=start, total=args.steps)
    for step in bar:
        rng = np.random.Generator(np.random.PCG64([args.seed, step]))
        ids_BL, labels_BL = (t.to(args.device) for t in make_batch(rng, args, vocab))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        loss = model(input_ids=ids_BL, labels=labels_BL).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretrain: loss is {loss.item()} at step {step}; last snapshot kept")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % args.checkpoint_every == 0 and step + 1 < args.steps:
            save_state(state_path, opt, step + 1, model)
    return model.eval(), tokenizer


def eval_problems(args: PretrainArgs):
    return [
        pr
        for k in range(1, args.k_eval_max + 1)
        for pr in generate_problems(args.seed + EVAL_SEED_OFFSET, k, args.eval_per_k, args.task_spec)
    ]


def format_table(table: dict[str, dict], p: int) -> str:
    head = f"{'k':>3} | {'deliberate':>15} | {'direct':>15} | {'free choice':>15} | {'chooses <think>':>15}"
    lines = [f"accuracy (greedy / sampled at T=1); chance = 1/p = {1 / p:.2f}", head, "-" * len(head)]
    for k, row in table.items():
        cells = [f"{row[m]['greedy']:6.2f} / {row[m]['sampled']:4.2f}" for m in (*MODES, "free")]
        rate = f"{row['free']['deliberate_rate_greedy']:6.2f} / {row['free']['deliberate_rate_sampled']:4.2f}"
        lines.append(f"{k:>3} | " + " | ".join(f"{c:>15}" for c in cells) + f" | {rate:>15}")
    return "\n".join(lines)


def main(args: PretrainArgs) -> dict:
    """Run (or resume) pretraining and the base evaluation; returns eval.json's content."""
    check_writable(args.out)
    init_run(args.out, "pretrain", args)
    base, state_path = args.out / "base", args.out / "pretrain_state.safetensors"
    eval_path = base / "eval.json"
    if eval_path.exists():
        print(f"{eval_path} exists: pretraining already finished")
        return read_json(eval_path)
    if not (base / "model.safetensors").exists():
        model, tokenizer = train(args, state_path)
        save_model(model, tokenizer, base, meta={"stage": "pretrain", "k_train_max": args.k_train_max})
        state_path.unlink(missing_ok=True)
        clear_stale_temps(state_path)
    model, tokenizer = load_hf(base, args.device), load_tokenizer(base)
    table = accuracy_by_k(model, tokenizer, eval_problems(args), seed=args.seed)
    result = {"k_train_max": args.k_train_max, "chance": 1 / args.p, "accuracy": table}
    write_json(eval_path, result)
    print(format_table(table, args.p))
    return result


if __name__ == "__main__":
    cli.run(main, PretrainArgs, PRESETS)
