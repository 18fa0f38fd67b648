"""Which SAE latents carry a read-out of the model: attribution of a scalar read-out to latents.

A read-out is a log-probability ratio at one row of a token sequence,
``log P(num) - log P(den)`` with ``num`` and ``den`` sets of token ids (``den`` = the whole
vocabulary gives ``log P(num)``). The read-outs of the band study are task business (the
caller builds them): the direct answer among the numbers at the decision row, the running
result among the numbers at a trace row, the next trace token, or the mode logit
``log P(<think>) - log P(any number)``.

Attribution of latent j is activation x gradient: ``c_j(x_m) * W_dec[j] . dM/dx_m`` summed over
the rows m of a sequence, where x is the residual stream at the SAE's hook and M the sum of
the sequence's read-outs. It is the first-order change of M when the latent's decoder
contribution is removed at every row, the same intervention the causal checks make exactly
(``probes.causal.ablation_hook``). One backward pass per batch gives every sequence's
attributions, since sequences do not interact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from probes.padding import right_pad


@dataclasses.dataclass(frozen=True)
class Readouts:
    """Read-outs over token sequences: row r reads position ``pos_R[r]`` of sequence ``seq_R[r]``."""

    sequences: tuple[tuple[int, ...], ...]
    seq_R: Int[np.ndarray, " R"]
    pos_R: Int[np.ndarray, " R"]
    """Position whose next-token distribution is read (the row predicting the read token)."""
    num_RV: Bool[np.ndarray, "R V"]
    den_RV: Bool[np.ndarray, "R V"]
    label_R: Int[np.ndarray, " R"]
    """A class per row for linear probes (e.g. the token the row should predict)."""

    def __post_init__(self) -> None:
        n = len(self.seq_R)
        if not (len(self.pos_R) == len(self.label_R) == len(self.num_RV) == len(self.den_RV) == n):
            raise ValueError("Readouts: per-row arrays differ in length")
        if n and not (self.num_RV.any(1).all() and self.den_RV.any(1).all()):
            raise ValueError("Readouts: every row needs a non-empty numerator and denominator set")

    def subset(self, keep_S: Bool[np.ndarray, " S"]) -> Readouts:
        """The read-outs of the sequences with ``keep_S`` (sequences renumbered)."""
        new_S = np.cumsum(keep_S) - 1
        rows = keep_S[self.seq_R]
        seqs = tuple(s for s, k in zip(self.sequences, keep_S) if k)
        return Readouts(
            seqs, new_S[self.seq_R[rows]], self.pos_R[rows], self.num_RV[rows], self.den_RV[rows], self.label_R[rows]
        )


@dataclasses.dataclass(frozen=True)
class Attribution:
    """Read-out values, per-sequence latent attributions, and the codes at the read rows."""

    value_R: Float[np.ndarray, " R"]
    attr_SF: Float[np.ndarray, "S F"]
    """Per sequence, each latent's attribution to the sum of the sequence's read-outs."""
    codes_RF: Float[np.ndarray, "R F"]
    """SAE codes at the read rows (what a linear probe over latents sees)."""


def readout_values(
    logits_BLV: Float[Tensor, "B L V"], seq_R: Tensor, pos_R: Tensor, num_RV: Tensor, den_RV: Tensor
) -> Float[Tensor, " R"]:
    """``log P(num) - log P(den)`` at each read row."""
    logp_RV = torch.log_softmax(logits_BLV[seq_R, pos_R].float(), -1)
    masked = lambda m: torch.logsumexp(logp_RV.masked_fill(~m, -torch.inf), -1)  # noqa: E731
    return masked(num_RV) - masked(den_RV)


def _batch(bridge, sae, hook: str, ids_BL: Tensor, mask_BL: Tensor, seq_R, pos_R, num_RV, den_RV) -> tuple[Tensor, ...]:
    """(values_R, attr_BF, codes_RF) of one batch: one forward, one backward to the hook's activations."""
    captured: list[Tensor] = []

    def leaf(acts_BLD: Tensor, hook: object) -> Tensor:
        captured.append(acts_BLD.detach().requires_grad_(True))
        return captured[-1]

    with torch.enable_grad(), bridge.hooks(fwd_hooks=[(hook, leaf)]):
        logits = bridge.original_model(input_ids=ids_BL, attention_mask=mask_BL).logits
        value_R = readout_values(logits, seq_R, pos_R, num_RV, den_RV)
        (grad_BLD,) = torch.autograd.grad(value_R.sum(), captured[0])
    with torch.no_grad():
        codes_BLF = sae.encode(captured[0].detach()) * mask_BL[..., None]
        grad_BLF = grad_BLD.to(sae.W_dec.dtype) @ sae.W_dec.T  # each latent's decoder direction . gradient
        attr_BF = (codes_BLF * grad_BLF).sum(1)
        return value_R.detach(), attr_BF, codes_BLF[seq_R, pos_R]


def attribute(bridge, sae, hook: str, readouts: Readouts, pad_id: int, batch_size: int = 128) -> Attribution:
    """Read-outs and latent attributions for every sequence (gradients flow only to the hook's activations)."""
    device = sae.W_dec.device
    parts: list[tuple[Tensor, ...]] = []
    for lo in range(0, len(readouts.sequences), batch_size):
        hi = min(lo + batch_size, len(readouts.sequences))
        rows = np.flatnonzero((readouts.seq_R >= lo) & (readouts.seq_R < hi))
        ids_BL, mask_BL = (t.to(device) for t in right_pad(readouts.sequences[lo:hi], pad_id))
        arrays = (readouts.seq_R[rows] - lo, readouts.pos_R[rows], readouts.num_RV[rows], readouts.den_RV[rows])
        parts.append(_batch(bridge, sae, hook, ids_BL, mask_BL, *(torch.as_tensor(a, device=device) for a in arrays)))
    d_sae = sae.W_dec.shape[0]
    cat = lambda i, shape: torch.cat([p[i] for p in parts]).double().cpu().numpy() if parts else np.zeros(shape)  # noqa: E731
    return Attribution(cat(0, (0,)), cat(1, (0, d_sae)), cat(2, (0, d_sae)))


def positive_share(attr_F: Float[np.ndarray, " F"]) -> Float[np.ndarray, " F"]:
    """Each latent's share of the total positive attribution (0 for latents that work against the read-out)."""
    pos_F = np.clip(attr_F, 0, None)
    total = pos_F.sum()
    return pos_F / total if total > 0 else pos_F


def select_groups(
    attr_by_readout: dict[str, Float[np.ndarray, " F"]], live_F: Bool[np.ndarray, " F"], share: float, max_group: int
) -> dict[str, list[int]]:
    """Disjoint latent groups, one per read-out, from mean attributions on a labelling split.

    A live latent joins the read-out to which it gives the largest share of positive attribution.
    Each group is then the smallest set of its latents, largest shares first, whose shares sum to
    ``share`` of the read-out's positive attribution, capped at ``max_group`` latents.
    """
    names = list(attr_by_readout)
    share_MF = np.stack([positive_share(attr_by_readout[n]) for n in names])
    owner_F = np.where(live_F & (share_MF.max(0) > 0), share_MF.argmax(0), -1)
    groups = {}
    for m, name in enumerate(names):
        mine = np.flatnonzero(owner_F == m)
        mine = mine[np.argsort(-share_MF[m, mine], kind="stable")]
        n = int(np.searchsorted(np.cumsum(share_MF[m, mine]), share - 1e-12) + 1)
        groups[name] = sorted(mine[: min(n, max_group, len(mine))].tolist())
    return groups


def group_share(attr_F: Float[np.ndarray, " F"], group: Sequence[int]) -> float:
    """The group's share of positive attribution (confirmation on a split the selection did not see)."""
    return float(positive_share(attr_F)[list(group)].sum())
