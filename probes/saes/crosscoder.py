"""Crosscoder: one BatchTopK dictionary over the activations of two models at the same tokens.

A row is the pair ``[a_base | a_tuned]`` (2·D wide). The encoder reads both halves and every
latent has one decoder half per model, so a latent that only the fine-tuned model uses shows up
as a decoder whose base half has shrunk to nothing. The relative decoder norm of latent j,

    r_j = |d_j^tuned| / (|d_j^base| + |d_j^tuned|),

is ~0 for base-only, ~0.5 for shared and ~1 for fine-tune-only latents (Lindsey et al. 2024).

It plugs into sae_lens as a ``TrainingSAE`` subclass of BatchTopK (Minder et al. 2025 found
BatchTopK crosscoders far less prone to the artifacts of L1 ones), registered like the T-SAE,
so ``SAETrainer`` drives it and it saves as an ordinary sae_lens SAE on 2·D-wide inputs whose
metadata names the two models. Top-k selection weighs each code by the L2 norm of its whole
decoder row (sae_lens's ``rescale_acts_by_decoder_norm``), which charges a shared latent no
more than a model-specific one; weighing by the *sum* of per-model norms, as L1 crosscoders do,
favours model-specific latents, one source of those artifacts.

Latent Scaling (Minder et al.) checks a fine-tune-only latent before it is counted: how much
of its fine-tuned decoder direction, scaled by its code, the *base* model's activations hold,
relative to the fine-tuned model's. See ``latent_scaling`` and ``specificity``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig, register_sae_training_class
from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY
from torch import Tensor
from typing_extensions import override

from probes.activations import ActivationCache
from probes.diff import rows_of

ARCHITECTURE = "crosscoder_batchtopk"
MODELS = ("base", "tuned")
"""The halves of a crosscoder row, in order."""
SHARED, TUNED_ONLY = (0.3, 0.7), 0.9
"""Relative decoder norm bands: shared inside SHARED; fine-tune-only above TUNED_ONLY (base-only below
1 - TUNED_ONLY)."""
NU_MAX = 0.3
"""A fine-tune-only latent counts only when both Latent Scaling ratios stay below this (set before any result)."""


@dataclass
class CrosscoderTrainingSAEConfig(BatchTopKTrainingSAEConfig):
    """BatchTopK config whose ``d_in`` is the width of both models' activations side by side."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE

    @property
    def d_model(self) -> int:
        return self.d_in // len(MODELS)


class CrosscoderTrainingSAE(BatchTopKTrainingSAE):
    """BatchTopK SAE trained on ``[a_base | a_tuned]`` rows; the decoder splits into one half per model."""

    cfg: CrosscoderTrainingSAEConfig  # type: ignore[assignment]

    def __init__(self, cfg: CrosscoderTrainingSAEConfig, use_error_term: bool = False):
        if cfg.d_in % len(MODELS):
            raise ValueError(f"d_in: a crosscoder row holds {len(MODELS)} models' activations, got {cfg.d_in}")
        super().__init__(cfg, use_error_term)


def register() -> None:
    """Make the architecture known to sae_lens's training-class registry; idempotent."""
    if ARCHITECTURE not in SAE_TRAINING_CLASS_REGISTRY:
        register_sae_training_class(ARCHITECTURE, CrosscoderTrainingSAE, CrosscoderTrainingSAEConfig)


def paired(base_ND: Float[Tensor, "N D"], tuned_ND: Float[Tensor, "N D"]) -> Float[Tensor, "N two_D"]:
    """Crosscoder rows from the two models' activations at the same tokens."""
    if base_ND.shape != tuned_ND.shape:
        raise ValueError(
            f"paired activations must match in shape, got {tuple(base_ND.shape)} and {tuple(tuned_ND.shape)}"
        )
    return torch.cat([base_ND, tuned_ND], dim=-1)


def aligned_rows(base: ActivationCache, tuned: ActivationCache) -> Int[np.ndarray, "two R"]:
    """Row pairs ``[base rows, tuned rows]`` holding the same token of the same canonical sequence in
    both caches, each distinct prefix once: the tokens two checkpoints both read (their own samples
    differ). A pair whose tokens differ means the caches hold different probe sets: ValueError."""

    def keyed(cache: ActivationCache) -> dict[tuple, int]:
        rows_R = rows_of(cache, "canonical")
        pid_R, mode_R = cache.seq_column("pid")[rows_R], cache.seq_column("mode")[rows_R]
        return {(p, m, int(t)): int(r) for p, m, t, r in zip(pid_R, mode_R, cache.pos_N[rows_R], rows_R)}

    kb, kt = keyed(base), keyed(tuned)
    common = sorted(kb.keys() & kt.keys(), key=kb.__getitem__)
    rows_2R = np.array([[kb[k] for k in common], [kt[k] for k in common]], dtype=np.int64).reshape(2, -1)
    if (base.token_N[rows_2R[0]] != tuned.token_N[rows_2R[1]]).any():
        raise ValueError(f"{base.path} and {tuned.path}: the same canonical positions hold different tokens")
    return rows_2R


def decoders(W_dec: Float[Tensor, "F two_D"]) -> Float[Tensor, "two F D"]:
    """Each model's decoder: ``[0]`` the base half of every latent, ``[1]`` the fine-tuned half."""
    return torch.stack(W_dec.chunk(len(MODELS), dim=-1))


def relative_norm(W_dec: Float[Tensor, "F two_D"]) -> Float[Tensor, " F"]:
    """|d^tuned| / (|d^base| + |d^tuned|) per latent (0.5 for an all-zero decoder)."""
    norms_2F = decoders(W_dec).norm(dim=-1)
    total_F = norms_2F.sum(0)
    return torch.where(total_F > 0, norms_2F[1] / total_F.clamp(min=1e-12), torch.full_like(total_F, 0.5))


def latent_scaling(
    codes_N: Float[Tensor, " N"], target_ND: Float[Tensor, "N D"], vector_D: Float[Tensor, " D"]
) -> float:
    """beta minimising sum_n |target_n - beta code_n vector|^2: how much of ``vector``, scaled by the
    latent's code, the targets hold (closed form; nan when the latent never fires)."""
    denom = float((codes_N**2).sum() * (vector_D**2).sum())
    return float(vector_D @ (target_ND.T @ codes_N)) / denom if denom > 0 else float("nan")


@torch.no_grad()
def specificity(sae, rows_N2D: Float[Tensor, "N two_D"], latents: Sequence[int]) -> dict[int, tuple[float, float]]:
    """Latent Scaling ratios (nu_err, nu_rec) of each latent, probed with its fine-tuned decoder direction d.

    * nu_err: beta of d in the base model's reconstruction error over beta of d in the fine-tuned
      model's error with the latent's own contribution added back. High: the base model holds the
      direction but the dictionary shrank the latent's base decoder away (complete shrinkage).
    * nu_rec: beta of d in the base model's reconstruction by the other latents over the same in the
      fine-tuned model's. High: the base model carries the concept through other latents (decoupling).

    A truly fine-tune-only latent has both near 0."""
    codes_NF = sae.encode(rows_N2D)  # one encoding for every latent asked about
    recon_2ND = torch.stack(sae.decode(codes_NF).chunk(len(MODELS), dim=-1))
    acts_2ND = torch.stack(rows_N2D.chunk(len(MODELS), dim=-1))
    dec_2FD = decoders(sae.W_dec)
    out = {}
    for j in latents:
        f_N, d_D = codes_NF[:, j], dec_2FD[1, j]
        own_2ND = f_N[None, :, None] * dec_2FD[:, j][:, None, :]
        err_2ND, others_2ND = acts_2ND - recon_2ND + own_2ND, recon_2ND - own_2ND
        beta_err = [latent_scaling(f_N, err_2ND[m], d_D) for m in range(len(MODELS))]
        beta_rec = [latent_scaling(f_N, others_2ND[m], d_D) for m in range(len(MODELS))]
        out[j] = (_ratio(beta_err), _ratio(beta_rec))
    return out


def _ratio(betas: list[float]) -> float:
    base, tuned = betas
    return base / tuned if tuned else float("nan")
