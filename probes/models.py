"""Loading checkpoints to read them: plain HF and TransformerLens's TransformerBridge.

Works for any local HF causal-LM directory with safetensors weights and a saved
tokenizer — the harness's own checkpoints or a user's. Nothing is fetched from a hub
and nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase


def offline_mode() -> None:
    """Keep Hugging Face libraries off the network (nothing in bandlens downloads weights or
    data) and quiet (their loading bars and warnings would drown the stage's own progress)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


class CheckpointError(Exception):
    """A checkpoint directory that cannot be loaded (the message names the path)."""


def _check_dir(model_dir: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (model_dir / name).is_file():
            raise CheckpointError(f"{model_dir}: not a checkpoint directory (missing {name})")


def load_tokenizer(model_dir: str | Path) -> PreTrainedTokenizerBase:
    model_dir = Path(model_dir)
    _check_dir(model_dir)
    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)


def load_hf(model_dir: str | Path, device: str = "cpu") -> PreTrainedModel:
    """The HF model in eval mode, weights from safetensors only."""
    model_dir = Path(model_dir)
    _check_dir(model_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, use_safetensors=True, dtype=torch.float32
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        raise CheckpointError(
            f"{model_dir / 'model.safetensors'}: cannot load model ({type(e).__name__}: {e})"
        ) from None
    return model.to(device).eval()


def load_bridge(model_dir: str | Path, device: str = "cpu"):
    """TransformerBridge over the checkpoint, in compatibility mode without weight processing.

    Hook names follow TransformerLens (``blocks.{l}.hook_resid_post`` ...). The tokenizer
    is loaded from the directory: one built only in memory makes ``boot_transformers``
    fail with ``KeyError: 'name_or_path'``.
    """
    from transformer_lens.model_bridge import TransformerBridge

    model_dir = Path(model_dir)
    hf_model = load_hf(model_dir, device)
    bridge = TransformerBridge.boot_transformers(
        str(model_dir), hf_model=hf_model, tokenizer=load_tokenizer(model_dir), device=device
    )
    # No weight processing: folded/centred weights would change the residual basis (and,
    # for RMSNorm models, the function), and SAEs here read and splice the HF model's own stream.
    bridge.enable_compatibility_mode(disable_warnings=True, no_processing=True)
    return bridge
