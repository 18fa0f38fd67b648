"""Tiny Hugging Face causal LMs with a word-level tokenizer for the embedded task.

Models are built from a small config, trained as plain HF modules, and saved with
``save_pretrained`` (safetensors) together with the tokenizer, so that
``probes.models.load_bridge`` (TransformerLens) and ``AutoModelForCausalLM`` both load
the directory with no extra code and no network.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from experiments.harness.rundir import atomic_dir
from experiments.harness.tasks.family import BOS, EOS, PAD, UNK, Task


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Shape of the tiny transformer."""

    arch: Literal["llama", "qwen2"] = "llama"
    """HF architecture family; both load through TransformerBridge."""
    d_model: int = 128
    """Residual stream width."""
    n_layers: int = 3
    """Number of transformer blocks."""
    n_heads: int = 4
    """Attention heads per block."""
    d_mlp: int = 512
    """Hidden width of each MLP."""
    max_len: int = 128
    """Longest sequence (prompt + completion) the model is configured for."""

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "d_mlp", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: {self.n_heads} does not divide d_model {self.d_model}")
        if self.arch not in ("llama", "qwen2"):
            raise ValueError(f"arch: must be 'llama' or 'qwen2', got {self.arch!r}")


def build_tokenizer(spec: Task) -> PreTrainedTokenizerFast:
    """Whitespace-split word-level tokenizer whose ids follow ``spec.vocab``."""
    vocab = {word: i for i, word in enumerate(spec.vocab)}
    core = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        model_max_length=10_000,
    )


def build_model(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast, seed: int) -> PreTrainedModel:
    """A freshly initialised causal LM; initialisation depends only on ``seed``."""
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=spec.d_model,
        intermediate_size=spec.d_mlp,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_heads,
        max_position_embeddings=spec.max_len,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    if spec.arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**common))
    return Qwen2ForCausalLM(Qwen2Config(**common))


def save_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    out_dir: Path,
    meta: dict | None = None,
) -> None:
    """Save model (safetensors) and tokenizer atomically; ``meta`` goes to bandlens.json."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "bandlens.json").write_text(json.dumps(meta or {}, indent=2))
