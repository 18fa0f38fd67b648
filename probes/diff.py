"""Checkpoint diffing in one shared SAE basis: how much each latent group's activity moved.

Activity is the mean SAE code of a latent over a view's token rows, stratified: the rows
are split into strata by (token role, chain length k), with each problem's decision row
(the ``=`` that precedes the mode choice) a stratum of its own per k, and every stratum
weighs the same. A group's activity is the mean over its latents. Change is relative to
the base checkpoint, (a_ckpt - a_base) / a_base, so groups of different typical magnitude
compare. The whole-dictionary view keeps every latent's change as a vector, so two bands'
changes at matched gain can be compared by cosine.

Views (``VIEWS``; the first is the headline):

* ``canonical``: teacher-forced canonical completions (deliberate trace and direct answer)
  of a fixed problem set, each distinct prefix once: the same tokens for every checkpoint.
* ``sampled``: the checkpoint's own completions of the same problems, every row, reweighted
  by the same strata so a change in the mix of modes or lengths does not move the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from probes.activations import ROLES, ActivationCache
from probes.bands import BANDS
from probes.layout import band_of_run, point_name
from probes.matched_gain import MatchedPoint

VIEWS = ("canonical", "sampled")
"""Token views a latent's activity is averaged over; the first is the headline."""


@torch.no_grad()
def latent_means(
    sae, cache: ActivationCache, rows_R: Int[np.ndarray, " R"], chunk_rows: int = 1 << 14
) -> Float[Tensor, " F"]:
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


@torch.no_grad()
def sequence_activity(
    sae, acts_BLD: Float[Tensor, "B L D"], mask_BL: Tensor, group: Sequence[int]
) -> Float[Tensor, " B"]:
    """Per sequence: the mean code of the group's latents, averaged over the masked positions (0 where none),
    computed on the SAE's device and returned on the CPU."""
    codes_BL = sae.encode(acts_BLD.to(sae.W_dec.device))[..., list(group)].mean(-1)
    mask_BL = mask_BL.to(codes_BL)
    return ((codes_BL * mask_BL).sum(1) / mask_BL.sum(1).clamp(min=1)).cpu()


def relative_change(after: Mapping[str, float], before: Mapping[str, float], eps: float = 1e-8) -> dict[str, float]:
    """(after - before) / before per key."""
    return {g: (after[g] - before[g]) / (abs(before[g]) + eps) for g in before}


def change_vector(means_F: Float[Tensor, " F"], base_F: Float[Tensor, " F"], live_F: Tensor) -> np.ndarray:
    """Per-latent change over live latents, scaled by the base activity so big latents don't dominate."""
    scale_F = base_F.abs() + base_F[live_F].abs().mean()
    return ((means_F - base_F) / scale_F)[live_F].numpy()


def rows_of(cache: ActivationCache, view: str) -> Int[np.ndarray, " R"]:
    """Rows of a view: unique-prefix rows of canonical sequences, or every row of sampled ones."""
    source_N = cache.seq_column("source") == view
    if view == "canonical":
        return np.flatnonzero(source_N & cache.unique_N)
    if view == "sampled":
        return np.flatnonzero(source_N)
    raise ValueError(f"view: must be one of {VIEWS}, got {view!r}")


def strata(cache: ActivationCache, rows_R: Int[np.ndarray, " R"]) -> Int[np.ndarray, " R"]:
    """Stratum of each row: (token role, k), with decision rows (``pos == n_prompt - 1``) as one more role."""
    k_R = cache.seq_column("k")[rows_R].astype(np.int64)
    decision_R = cache.pos_N[rows_R] == cache.seq_column("n_prompt")[rows_R] - 1
    role_R = np.where(decision_R, len(ROLES), cache.role_N[rows_R])
    return role_R * (k_R.max(initial=0) + 1) + k_R


@torch.no_grad()
def stratified_means(
    sae, cache: ActivationCache, rows_R: Int[np.ndarray, " R"], chunk_rows: int = 1 << 14
) -> Float[Tensor, " F"]:
    """Mean code of every latent over the rows, each stratum (``strata``) weighted equally."""
    _, stratum_R = np.unique(strata(cache, rows_R), return_inverse=True)
    n_strata = int(stratum_R.max(initial=-1)) + 1
    sums_SF = torch.zeros(n_strata, sae.cfg.d_sae, dtype=torch.float64)
    order = np.argsort(rows_R, kind="stable")  # contiguous reads
    for lo in range(0, len(order), chunk_rows):
        sel = order[lo : lo + chunk_rows]
        x_ND = torch.from_numpy(np.asarray(cache.acts_ND[rows_R[sel]])).to(sae.device)
        sums_SF.index_add_(0, torch.from_numpy(stratum_R[sel]), sae.encode(x_ND).double().cpu())
    counts_S = torch.from_numpy(np.bincount(stratum_R, minlength=n_strata)).double()
    return (sums_SF / counts_S.clamp(min=1)[:, None]).mean(0).float() if n_strata else torch.zeros(sae.cfg.d_sae)


def matched_values(
    changes: Mapping[str, Mapping[str, float | None]], points: Mapping[str, MatchedPoint], groups: Sequence[str]
) -> dict[str, dict[str, list[float]]]:
    """Per band and group: the change at each run's matched checkpoint, for the runs that reached it.

    ``changes`` maps checkpoint names (``<run>/checkpoint-<step>``, as in diff.json) to each group's
    change; ``points`` maps run names to their matched points (``probes.matched_gain``)."""
    out: dict[str, dict[str, list[float]]] = {b: {g: [] for g in groups} for b in BANDS}
    for name, point in points.items():
        if point.reached:
            change = changes[f"{name}/{point_name(point.step)}"]
            for g in groups:
                out[band_of_run(name)][g].append(math.nan if change[g] is None else change[g])
    return out
