"""Checkpoint diffing in one shared SAE basis: how much each latent group's activity moved.

Activity is the mean SAE code of a latent over a fixed set of token rows; a group's
activity is the mean over its latents. Change is relative to the base checkpoint,
(a_ckpt - a_base) / a_base, so groups of different typical magnitude compare. The
whole-dictionary view keeps every latent's change as a vector, so two bands' changes
at matched gain can be compared by cosine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from probes.activations import ActivationCache
from probes.bands import BANDS
from probes.layout import band_of_run, checkpoint_name
from probes.matched_gain import MatchedPoint

VIEWS = ("sampled", "canonical")
"""Rows a latent's activity is averaged over: the checkpoint's own completions, or fixed canonical ones."""


@torch.no_grad()
def latent_means(sae, cache: ActivationCache, rows_R: Int[np.ndarray, " R"], chunk_rows: int = 1 << 14) -> Float[Tensor, " F"]:
    """Mean code of every latent over the rows, streamed in chunks."""
    total_F = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    for lo in range(0, len(rows_R), chunk_rows):
        idx = np.sort(rows_R[lo : lo + chunk_rows])
        x_ND = torch.from_numpy(np.asarray(cache.acts_ND[idx])).to(sae.device)
        total_F += sae.encode(x_ND).double().sum(0).cpu()
    return (total_F / max(len(rows_R), 1)).float()


def group_activity(means_F: Float[Tensor, " F"], groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Mean activity of each group's latents (nan for an empty group)."""
    return {g: float(means_F[list(idx)].mean()) if len(idx) else float("nan") for g, idx in groups.items()}


def relative_change(after: Mapping[str, float], before: Mapping[str, float], eps: float = 1e-8) -> dict[str, float]:
    """(after - before) / before per key."""
    return {g: (after[g] - before[g]) / (abs(before[g]) + eps) for g in before}


def change_vector(means_F: Float[Tensor, " F"], base_F: Float[Tensor, " F"], live_F: Tensor) -> np.ndarray:
    """Per-latent change over live latents, scaled by the base activity so big latents don't dominate."""
    scale_F = base_F.abs() + base_F[live_F].abs().mean()
    return ((means_F - base_F) / scale_F)[live_F].numpy()


def rows_of(cache: ActivationCache, source: str) -> Int[np.ndarray, " R"]:
    """Unique-prefix rows of one kind of sequence: 'sampled' (the checkpoint's own) or 'canonical'."""
    return np.flatnonzero(cache.unique_N & (cache.seq_column("source") == source))


def matched_values(
    changes: Mapping[str, Mapping[str, float | None]], points: Mapping[str, MatchedPoint], groups: Sequence[str]
) -> dict[str, dict[str, list[float]]]:
    """Per band and group: the change at each run's matched checkpoint, for the runs that reached it.

    ``changes`` maps checkpoint names (``<run>/ckpt-<step>``, as in diff.json) to each group's
    change; ``points`` maps run names to their matched points (``probes.matched_gain``)."""
    out: dict[str, dict[str, list[float]]] = {b: {g: [] for g in groups} for b in BANDS}
    for name, point in points.items():
        if point.reached:
            change = changes[f"{name}/{checkpoint_name(point.step)}"]
            for g in groups:
                out[band_of_run(name)][g].append(math.nan if change[g] is None else change[g])
    return out
