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


def _pad(
    seqs: Sequence[Sequence[int]], pad_id: int, width: int, left: bool
) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    # One scatter of all tokens, no per-row copies: filling a boolean mask walks it row by row,
    # the order of the concatenated sequences, whichever side the padding is on.
    lens_B = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    pos_BL = torch.arange(max(width, int(lens_B.max())))[None, :]
    start_B1 = (pos_BL.shape[1] - lens_B if left else torch.zeros_like(lens_B))[:, None]
    mask_BL = (pos_BL >= start_B1) & (pos_BL < start_B1 + lens_B[:, None])
    ids_BL = torch.full(mask_BL.shape, pad_id, dtype=torch.long)
    ids_BL[mask_BL] = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
    return ids_BL, mask_BL.long()


def right_pad(
    seqs: Sequence[Sequence[int]], pad_id: int = 0, width: int = 0
) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    """Right-padded ids and the attention mask (1 on real tokens), at least ``width`` wide."""
    return _pad(seqs, pad_id, width, left=False)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    """Left-padded ids and the attention mask (for batched prompts)."""
    return _pad(seqs, pad_id, 0, left=True)


def supervised_batch(
    seqs: Sequence[Sequence[int]], n_prompt: Sequence[int], pad_id: int, width: int = 0
) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    """Right-padded ids and labels; labels are NOT_TARGET on each prompt and on padding."""
    ids_BL, mask_BL = right_pad(seqs, pad_id, width)
    answer_BL = torch.arange(ids_BL.shape[1])[None, :] >= torch.tensor(n_prompt, dtype=torch.long)[:, None]
    return ids_BL, torch.where(mask_BL.bool() & answer_BL, ids_BL, NOT_TARGET)
