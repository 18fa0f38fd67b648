"""Padding token sequences into batches: the one padder every batch in bandlens goes through.

Right padding is exact for a causal model (real positions never attend to later pads);
left padding lines prompts up at their last token for batched sampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

NOT_TARGET = -100
"""Label of positions that are not training targets (prompt, padding), as Hugging Face uses it."""


def right_pad(
    seqs: Sequence[Sequence[int]], pad_id: int = 0, width: int = 0
) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    """Right-padded ids and the attention mask (1 on real tokens), at least ``width`` wide."""
    ids_BL = torch.full((len(seqs), max(width, *map(len, seqs))), pad_id, dtype=torch.long)
    mask_BL = torch.zeros_like(ids_BL)
    for i, s in enumerate(seqs):
        ids_BL[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask_BL[i, : len(s)] = 1
    return ids_BL, mask_BL


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    """Left-padded ids and the attention mask (for batched prompts)."""
    width = max(len(s) for s in seqs)
    ids_BL = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask_BL = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids_BL[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask_BL[i, width - len(s) :] = 1
    return ids_BL, mask_BL


def supervised_batch(
    seqs: Sequence[Sequence[int]], n_prompt: Sequence[int], pad_id: int, width: int = 0
) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    """Right-padded ids and labels; labels are NOT_TARGET on each prompt and on padding."""
    ids_BL, mask_BL = right_pad(seqs, pad_id, width)
    labels_BL = torch.where(mask_BL.bool(), ids_BL, NOT_TARGET)
    for i, n in enumerate(n_prompt):
        labels_BL[i, :n] = NOT_TARGET
    return ids_BL, labels_BL
