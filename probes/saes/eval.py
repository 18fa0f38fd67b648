"""Quality of an SAE on cached activations, and its faithfulness when spliced into the model.

* ``reconstruction_stats``: fraction of variance explained (overall and per token role),
  L0, dead and dense latent fractions, and the temporal smoothness of high- vs low-level
  codes, streamed over the cache in chunks.
* ``spliced``: replace the activation at a hook by a function of it (the SAE
  reconstruction, zeros, the mean) through TransformerBridge hooks. The bridge wraps the
  HF model's own modules, so the hook also fires when the HF model is called directly
  (e.g. by a KV-cached sampler): rollouts inside the context run on the spliced model.
* ``next_token_loss``: teacher-forced cross-entropy on completion tokens.

Applying one SAE to another checkpoint's cache and bridge gives the transfer evals.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor

from probes.activations import ROLES, ActivationCache
from probes.padding import right_pad

DENSE_FREQ = 0.1
"""A latent firing on more than this fraction of tokens counts as dense."""


@dataclasses.dataclass(frozen=True)
class ReconstructionStats:
    n_tokens: int
    fve: float
    """1 - sum ||x - x_hat||^2 / sum ||x - mean x||^2 over the rows."""
    fve_by_role: dict[str, float]
    l0: float
    """Mean number of active latents per token."""
    dead_frac: float
    """Latents that never fire on the rows."""
    dense_frac: float
    """Latents firing on more than DENSE_FREQ of the rows."""
    smooth_high: float
    """Mean cosine similarity of the high-level codes (first high_width latents) of adjacent tokens."""
    smooth_low: float
    """The same for the remaining latents."""

    def metrics(self, prefix: str = "sae") -> dict[str, float]:
        """Flat, namespaced metrics (``sae/fve``, ``sae/fve_by_role/operand`` ...)."""
        out = {
            f"{prefix}/{f}": getattr(self, f)
            for f in ("fve", "l0", "dead_frac", "dense_frac", "smooth_high", "smooth_low")
        }
        out[f"{prefix}/n_tokens"] = self.n_tokens
        out.update({f"{prefix}/fve_by_role/{r}": v for r, v in self.fve_by_role.items()})
        return out


def _pair_cosine(codes_NF: Float[Tensor, "N F"], prev_P: Tensor, next_P: Tensor) -> tuple[Tensor, Tensor]:
    """(sum of cosines, count) over pairs where at least one of the two codes is non-zero."""
    a_PF, b_PF = codes_NF[prev_P], codes_NF[next_P]
    keep_P = (a_PF.abs().sum(-1) > 0) | (b_PF.abs().sum(-1) > 0)
    cos_P = F.cosine_similarity(a_PF, b_PF, dim=-1, eps=1e-8)
    return cos_P[keep_P].double().sum(), keep_P.sum().double()


@torch.no_grad()
def _chunk_sums(
    sae: SAE, x_ND: Float[Tensor, "N D"], role_N: Int[Tensor, " N"], adjacent_N: Tensor, high_width: int
) -> dict[str, Tensor]:
    """Additive sufficient statistics of one chunk; ``adjacent_N[i]`` says row i follows row i-1."""
    codes_NF = sae.encode(x_ND)
    err_N = (sae.decode(codes_NF) - x_ND).double().pow(2).sum(-1)
    x_ND = x_ND.double()
    onehot_NR = F.one_hot(role_N.long(), len(ROLES)).double()
    next_P = torch.nonzero(adjacent_N).squeeze(-1)
    hi_sum, hi_n = _pair_cosine(codes_NF[:, :high_width], next_P - 1, next_P)
    lo_sum, lo_n = _pair_cosine(codes_NF[:, high_width:], next_P - 1, next_P)
    return {
        "n_R": onehot_NR.sum(0),
        "sse_R": onehot_NR.T @ err_N,
        "sum_x_RD": onehot_NR.T @ x_ND,
        "sum_x2_R": onehot_NR.T @ x_ND.pow(2).sum(-1),
        "fires_F": (codes_NF > 0).double().sum(0),
        "hi": torch.stack([hi_sum, hi_n]),
        "lo": torch.stack([lo_sum, lo_n]),
    }


def _fve(sse: Tensor, sum_x_D: Tensor, sum_x2: Tensor, n: Tensor) -> float:
    total = sum_x2 - sum_x_D.pow(2).sum() / n.clamp(min=1)
    return float(1 - sse / total) if n > 1 and total > 0 else float("nan")


def _row_chunks(rows_R: np.ndarray, chunk_rows: int) -> Iterator[np.ndarray]:
    rows_R = np.sort(rows_R)
    for lo in range(0, len(rows_R), chunk_rows):
        yield rows_R[lo : lo + chunk_rows]


def reconstruction_stats(
    sae: SAE, cache: ActivationCache, rows_R: Int[np.ndarray, " R"], *, high_width: int, chunk_rows: int = 1 << 15
) -> ReconstructionStats:
    """Reconstruction and sparsity of ``sae`` on the cached rows, streamed in chunks."""
    if cache.d_model != sae.cfg.d_in:
        raise ValueError(f"SAE d_in {sae.cfg.d_in} != cache d_model {cache.d_model} ({cache.path})")
    total: dict[str, Tensor] = {}
    for idx in _row_chunks(rows_R, chunk_rows):
        x_ND = torch.from_numpy(np.asarray(cache.acts_ND[idx])).to(sae.device)
        adjacent_N = torch.from_numpy(np.r_[False, (np.diff(idx) == 1) & (cache.pos_N[idx[1:]] > 0)])
        sums = _chunk_sums(
            sae, x_ND, torch.from_numpy(cache.role_N[idx]).to(sae.device), adjacent_N.to(sae.device), high_width
        )
        total = {k: total[k] + v.cpu() if k in total else v.cpu() for k, v in sums.items()}
    n_R = total["n_R"]
    by_role = {
        r: _fve(total["sse_R"][i], total["sum_x_RD"][i], total["sum_x2_R"][i], n_R[i])
        for i, r in enumerate(ROLES)
        if n_R[i] > 0
    }
    n = n_R.sum()
    freq_F = total["fires_F"] / n.clamp(min=1)
    return ReconstructionStats(
        n_tokens=int(n),
        fve=_fve(total["sse_R"].sum(), total["sum_x_RD"].sum(0), total["sum_x2_R"].sum(), n),
        fve_by_role=by_role,
        l0=float(total["fires_F"].sum() / n.clamp(min=1)),
        dead_frac=float((freq_F == 0).double().mean()),
        dense_frac=float((freq_F > DENSE_FREQ).double().mean()),
        smooth_high=float(total["hi"][0] / total["hi"][1]) if total["hi"][1] > 0 else float("nan"),
        smooth_low=float(total["lo"][0] / total["lo"][1]) if total["lo"][1] > 0 else float("nan"),
    )


def activation_mean(
    cache: ActivationCache, rows_R: Int[np.ndarray, " R"], chunk_rows: int = 1 << 16
) -> Float[Tensor, " D"]:
    """Mean activation over the rows (the mean-ablation reference), streamed."""
    sum_D = torch.zeros(cache.d_model, dtype=torch.float64)
    for idx in _row_chunks(rows_R, chunk_rows):
        sum_D += torch.from_numpy(np.asarray(cache.acts_ND[idx])).double().sum(0)
    return (sum_D / max(len(rows_R), 1)).float()


def high_level_width(sae: SAE, default_frac: float = 0.2) -> int:
    """The recorded high-level prefix width; for SAEs without one, the same fraction as a control."""
    width = sae.cfg.metadata.get("high_level_width")
    return int(width) if width is not None else round(default_frac * sae.cfg.d_sae)


Replacement = Callable[[Float[Tensor, "... D"]], Float[Tensor, "... D"]]


def sae_replacement(sae: SAE) -> Replacement:
    """x -> decode(encode(x)): the SAE reconstruction in place of the activation."""
    return lambda x: sae.decode(sae.encode(x)).to(x.dtype)


def constant_replacement(value_D: Float[Tensor, " D"]) -> Replacement:
    """x -> value at every position (zeros: zero ablation; the mean: mean ablation)."""
    return lambda x: value_D.to(x.device, x.dtype).expand_as(x).clone()


@contextlib.contextmanager
def spliced(bridge, hook_name: str, replace: Replacement | None) -> Iterator[None]:
    """Within the block, the activation at ``hook_name`` is ``replace(activation)``; None: clean."""
    if replace is None:
        yield
        return
    if hook_name not in bridge.hook_dict:
        raise KeyError(f"hook {hook_name!r} not found in the model")
    with bridge.hooks(fwd_hooks=[(hook_name, lambda acts, hook: replace(acts))]):
        yield


@torch.no_grad()
def next_token_loss(
    bridge, token_ids: Sequence[Sequence[int]], n_prompt: Sequence[int], *, pad_id: int, batch_size: int = 256
) -> float:
    """Mean cross-entropy of predicting each completion token from its prefix (teacher forced); ``bridge``
    may also be an HF-style model (e.g. two models in lockstep)."""
    device = next(bridge.parameters()).device
    total, count = 0.0, 0
    for lo in range(0, len(token_ids), batch_size):
        ids_BL = right_pad(token_ids[lo : lo + batch_size], pad_id)[0].to(device)
        out = bridge(ids_BL)
        logits_BLV = getattr(out, "logits", out)  # a bridge returns logits, an HF-style model an output
        target_BL = ids_BL[:, 1:].clone()
        pos_L = torch.arange(1, ids_BL.shape[1], device=device)
        lens_B = torch.tensor([len(s) for s in token_ids[lo : lo + batch_size]], device=device)
        starts_B = torch.tensor(n_prompt[lo : lo + batch_size], device=device)
        keep_BL = (pos_L[None] >= starts_B[:, None]) & (pos_L[None] < lens_B[:, None])
        target_BL[~keep_BL] = -100
        loss = F.cross_entropy(logits_BLV[:, :-1].flatten(0, 1).float(), target_BL.flatten(), reduction="sum")
        total, count = total + float(loss), count + int(keep_BL.sum())
    return total / max(count, 1)


def recovered(clean: float, spliced_value: float, ablated: float) -> float:
    """(ablated - spliced) / (ablated - clean): 1 means the splice costs nothing, 0 means it is as bad as ablation."""
    gap = ablated - clean
    return (ablated - spliced_value) / gap if gap != 0 else float("nan")
