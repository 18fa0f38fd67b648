"""Temporal SAE (T-SAE): Matryoshka BatchTopK plus a contrastive loss on adjacent tokens.

The first Matryoshka level (~20% of latents, "high-level") gets an extra symmetric
InfoNCE loss that pulls the codes of adjacent tokens t-1, t of one sequence together and
pushes the other pairs of the batch apart. This is *not* sae_lens's
``TemporalSAE`` (attention-predicted codes), hence the distinct architecture name.

It plugs into sae_lens as a ``TrainingSAE`` subclass: ``SAETrainer`` drives it like any
other SAE. Its data provider yields pair batches laid out ``(two B) D`` — the B tokens
t-1 first, then the B tokens t — so the trainer's bookkeeping (samples, firing counts,
normalisation) sees ordinary rows. The loss weight is a sae_lens training coefficient,
so the trainer can warm it up. Saved, it is an ordinary JumpReLU SAE whose metadata
records the high-level width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from sae_lens import register_sae_training_class
from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY
from sae_lens.saes.matryoshka_batchtopk_sae import (
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
)
from sae_lens.saes.sae import TrainCoefficientConfig, TrainStepInput, TrainStepOutput
from torch import Tensor
from typing_extensions import override

ARCHITECTURE = "tsae_matryoshka_batchtopk"
COEFFICIENT = "temporal_contrastive"


def unit_rows(x_BH: Float[Tensor, "B H"], eps: float = 1e-6) -> Float[Tensor, "B H"]:
    """Rows scaled to unit norm; all-zero rows stay zero and pass no gradient
    (``F.normalize`` would send a 1/eps gradient into them)."""
    norm_B1 = x_BH.norm(dim=-1, keepdim=True)
    return x_BH * (norm_B1 > 0) / norm_B1.clamp(min=eps)


def info_nce(prev_BH: Float[Tensor, "B H"], next_BH: Float[Tensor, "B H"], temperature: float) -> Float[Tensor, ""]:
    """Symmetric InfoNCE: row i of ``prev`` should match row i of ``next`` among all rows.

    Codes are compared by cosine similarity; an all-zero code row (no active high-level
    latent) matches nothing (its logits are all 0) and passes no gradient.
    """
    logits_BB = unit_rows(prev_BH) @ unit_rows(next_BH).T / temperature
    labels_B = torch.arange(logits_BB.shape[0], device=logits_BB.device)
    return 0.5 * (F.cross_entropy(logits_BB, labels_B) + F.cross_entropy(logits_BB.T, labels_B))


def split_pairs(x_2BF: Float[Tensor, "two_B F"]) -> Float[Tensor, "two B F"]:
    """Undo the provider's ``(two B) F`` layout: [0] are the tokens t-1, [1] the tokens t."""
    return rearrange(x_2BF, "(two B) F -> two B F", two=2)


@dataclass
class TemporalMatryoshkaTrainingSAEConfig(MatryoshkaBatchTopKTrainingSAEConfig):
    """Matryoshka BatchTopK config plus the contrastive loss on the first level's codes.

    Args:
        contrastive_coefficient: weight of the InfoNCE loss (≈0.1 in the T-SAE recipe).
        contrastive_temperature: InfoNCE temperature on cosine similarities.
        contrastive_warm_up_steps: steps over which the trainer ramps the weight up from 0.
    """

    contrastive_coefficient: float = 0.1
    contrastive_temperature: float = 0.1
    contrastive_warm_up_steps: int = 0

    @override
    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE

    @property
    def high_level_width(self) -> int:
        return self.matryoshka_widths[0]


class TemporalMatryoshkaTrainingSAE(MatryoshkaBatchTopKTrainingSAE):
    """Matryoshka BatchTopK SAE trained on (t-1, t) pair batches with the InfoNCE term."""

    cfg: TemporalMatryoshkaTrainingSAEConfig  # type: ignore[assignment]

    @override
    def get_coefficients(self) -> dict[str, TrainCoefficientConfig | float]:
        return {
            COEFFICIENT: TrainCoefficientConfig(
                value=self.cfg.contrastive_coefficient, warm_up_steps=self.cfg.contrastive_warm_up_steps
            )
        }

    @override
    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        if step_input.sae_in.shape[0] % 2:
            raise ValueError("T-SAE batches must hold (t-1, t) pairs laid out (two B) D")
        output = super().training_forward_pass(step_input)
        high_2BH = output.feature_acts[:, : self.cfg.high_level_width]
        prev_BH, next_BH = split_pairs(high_2BH)
        weight = step_input.coefficients.get(COEFFICIENT, self.cfg.contrastive_coefficient)
        loss = weight * info_nce(prev_BH, next_BH, self.cfg.contrastive_temperature)
        output.losses["temporal_contrastive_loss"] = loss
        output.loss = output.loss + loss
        return output


def register() -> None:
    """Make the architecture known to sae_lens (its training-class registry); idempotent.

    Called by ``probes.saes.train.build_sae`` before a T-SAE is built, never on import."""
    if ARCHITECTURE not in SAE_TRAINING_CLASS_REGISTRY:
        register_sae_training_class(ARCHITECTURE, TemporalMatryoshkaTrainingSAE, TemporalMatryoshkaTrainingSAEConfig)
