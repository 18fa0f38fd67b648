"""Dictionaries across two checkpoints at one hook: a crosscoder over their paired activations, or a
difference SAE on (fine-tuned - base).

Both train on the canonical tokens the two checkpoints' activation caches share
(``probes.saes.crosscoder.aligned_rows``), on the probe set's train split, and are read on its
eval split. A crosscoder reading says which latents decode into the fine-tuned model only and
which of those Latent Scaling confirms (``probes.saes.crosscoder``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from jaxtyping import Int
from sae_lens.saes.sae import TrainingSAE

from probes.activations import ActivationCache
from probes.saes.crosscoder import NU_MAX, TUNED_ONLY, aligned_rows, paired, relative_norm, specificity
from probes.saes.train import SAESpec, TrainSpec, aligned_batches, build_crosscoder, build_sae, train_sae


def split_rows(base: ActivationCache, rows_2R: Int[np.ndarray, "two R"], split: str) -> Int[np.ndarray, "two R"]:
    """The aligned pairs whose tokens belong to one split of the probe set."""
    return rows_2R[:, base.seq_column("split")[rows_2R[0]] == split]


def train_on_pair(
    base: ActivationCache, tuned: ActivationCache, spec: SAESpec, train: TrainSpec, metadata: dict, *, difference: bool = False
) -> TrainingSAE:
    """A crosscoder (or, with ``difference``, a BatchTopK SAE on a_tuned - a_base) fitted on the pair's
    aligned train-split tokens."""
    rows_2R = split_rows(base, aligned_rows(base, tuned), "train")
    batches = aligned_batches(base, tuned, rows_2R, train.batch_size, difference=difference, seed=train.seed, chunk_rows=train.chunk_rows)
    build = build_sae if difference else build_crosscoder
    return train_sae(build(dataclasses.replace(spec, arch="batchtopk"), base.d_model, metadata, train.device), batches, train).sae


@dataclasses.dataclass(frozen=True)
class CrosscoderReading:
    """A crosscoder on the pair's held-out aligned tokens."""

    fve: float
    """Fraction of the variance of [a_base | a_tuned] its reconstruction explains."""
    relative_norm: list[float]
    """|d^tuned| / (|d^base| + |d^tuned|) per latent."""
    live: list[int]
    """Latents that fire on the held-out tokens."""
    tuned_only: list[int]
    """Live latents whose relative norm exceeds TUNED_ONLY."""
    nu: dict[int, tuple[float, float]]
    """Per fine-tune-only latent: the Latent Scaling ratios (error, reconstruction)."""
    confirmed: list[int]
    """Fine-tune-only latents with both ratios below NU_MAX in absolute value: the ones that count."""


@torch.no_grad()
def read_crosscoder(sae, base: ActivationCache, tuned: ActivationCache, split: str = "eval") -> CrosscoderReading:
    """Relative norms, live and fine-tune-only latents, and their Latent Scaling on one split's aligned tokens."""
    rows_2R = split_rows(base, aligned_rows(base, tuned), split)
    if rows_2R.shape[1] == 0:
        raise ValueError(f"{base.path}: no aligned canonical tokens in the {split!r} split")
    x_N2D = paired(*(torch.from_numpy(np.asarray(c.acts_ND[rows_2R[m]])) for m, c in enumerate((base, tuned)))).to(sae.device)
    codes_NF = sae.encode(x_N2D)
    fve = float(1 - ((x_N2D - sae.decode(codes_NF)) ** 2).sum() / ((x_N2D - x_N2D.mean(0)) ** 2).sum().clamp(min=1e-12))
    rel_F = relative_norm(sae.W_dec.detach()).cpu()
    live = torch.nonzero((codes_NF > 0).any(0)).flatten().tolist()
    tuned_only = [j for j in live if rel_F[j] > TUNED_ONLY]
    nu = specificity(sae, x_N2D, tuned_only)
    confirmed = [j for j in tuned_only if all(abs(v) < NU_MAX for v in nu[j])]
    return CrosscoderReading(fve, rel_F.tolist(), live, tuned_only, nu, confirmed)
