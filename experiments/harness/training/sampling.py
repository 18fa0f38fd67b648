"""Batched, KV-cached sampling from an HF causal LM over left-padded prompts.

Rollouts dominate the cost of RL on CPU, so this loop feeds one new token per
sequence per step and reuses the key/value cache.
The model may be a plain HF model or the one inside a TransformerBridge
(``bridge.original_model``): then TransformerLens hooks added with ``bridge.hooks``
act on every sampled token. When draws are row-independent (per-row uniforms, greedy),
finished rows leave the batch: a model that keeps state per row (``patching.Lockstep``)
is told which rows stay through its ``keep_rows(keep_B)``. Under a shared generator, whose stream
depends on the rows beside each other, finished rows keep feeding <pad>.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformers import Cache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from experiments.harness import tally
from probes.padding import left_pad


class _SpareRoomLayer(DynamicLayer):
    """One layer's keys and values, written into spare room at the end of a buffer (doubled when full) instead of
    concatenated: DynamicLayer's cat copies the whole cache at every token, which was half of CPU sampling time."""

    def __init__(self) -> None:
        super().__init__()
        self.length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = key_states.shape[-2]
        if not self.is_initialized:
            self.dtype, self.device, self.is_initialized = key_states.dtype, key_states.device, True
            self._k, self._v = (t.new_empty(*t.shape[:2], n + 64, t.shape[-1]) for t in (key_states, value_states))
        if self.length + n > self._k.shape[-2]:
            grown = 2 * (self.length + n)
            self._k, self._v = (
                torch.cat([b[..., : self.length, :], b.new_empty(*b.shape[:2], grown - self.length, b.shape[-1])], -2)
                for b in (self._k, self._v)
            )
        self._k[..., self.length : self.length + n, :] = key_states
        self._v[..., self.length : self.length + n, :] = value_states
        self.length += n
        self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only these rows of the batch (rows that finished are dropped)."""
        if self.is_initialized:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]


LEAVE_AT = 8
"""Finished rows leave the batch together once they are at least 1/LEAVE_AT of it: each leaving copies the whole
cache, and rows leaving one by one made that copy at nearly every token (a lockstep attribution job of the default
study ran 1.01-1.08x faster leaving in eighths, the same bytes)."""


def kv_cache() -> Cache:
    """An empty key/value cache for one generation (filled in place by every forward)."""
    return Cache(layer_class_to_replicate=_SpareRoomLayer)


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    *,
    max_new: int,
    eos_id: int,
    pad_id: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    uniforms_BT: Float[Tensor, "B T"] | None = None,
    banned_first: Sequence[int] = (),
) -> list[list[int]]:
    """Complete each prompt; returns new token ids, up to and including <eos>.

    ``temperature == 0`` is greedy decoding. Sampling draws from ``generator``, or, given ``uniforms_BT`` (one
    row of at least ``max_new`` uniforms per prompt), takes row b's t-th token by inverting the CDF at
    uniforms_BT[b, t]: each completion's randomness is then its own, whatever else shares the batch.
    ``banned_first`` token ids are masked at the first new position only (used to force a direct answer by
    banning <think>). A completion that reaches ``max_new`` without <eos> is returned truncated.
    """
    device = next(model.parameters()).device
    ids_BL, mask_BL = (t.to(device) for t in left_pad(prompts, pad_id))
    pos_BL = (mask_BL.cumsum(-1) - 1).clamp(min=0)
    cache = kv_cache()
    out = model(input_ids=ids_BL, attention_mask=mask_BL, position_ids=pos_BL, use_cache=True, past_key_values=cache)
    logits_BV = out.logits[:, -1]
    next_pos_B = pos_BL[:, -1] + 1
    # Row-independent draws (uniforms, greedy) let finished rows leave the batch: a row's floats do not depend on
    # the rows beside it, so its tokens stay the same. A shared generator's stream does depend on them.
    compact = uniforms_BT is not None or temperature == 0
    live_B = torch.arange(len(prompts), device=device)  # batch positions of the rows still sampling
    new_BT = torch.full((len(prompts), max_new), pad_id, dtype=torch.long, device=device)
    done_B = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    positions = sum(len(p) for p in prompts)  # computed by forward passes (host-side counts: no device sync)
    for t in range(max_new):
        if t == 0 and banned_first:
            logits_BV[:, list(banned_first)] = -torch.inf
        if temperature == 0:
            tok_B = logits_BV.argmax(-1)
        else:
            probs_BV = torch.softmax(logits_BV.float() / temperature, -1)
            tok_B = (
                _draw(probs_BV, generator) if uniforms_BT is None else _invert(probs_BV, uniforms_BT[live_B.cpu(), t])
            )
        tok_B = torch.where(done_B, pad_id, tok_B)
        new_BT[live_B, t] = tok_B
        done_B |= tok_B == eos_id
        if done_B.all() or t == max_new - 1:
            break
        if compact and done_B.sum() * LEAVE_AT >= len(done_B):
            keep_B = (~done_B).nonzero().squeeze(-1)
            cache.batch_select_indices(keep_B)
            if hasattr(model, "keep_rows"):
                model.keep_rows(keep_B)
            live_B, tok_B, done_B = live_B[keep_B], tok_B[keep_B], done_B[keep_B]
            mask_BL, next_pos_B = mask_BL[keep_B], next_pos_B[keep_B]
        mask_BL = torch.cat([mask_BL, torch.ones_like(mask_BL[:, :1])], dim=1)  # done rows are ignored
        positions += len(tok_B)
        out = model(
            input_ids=tok_B[:, None],
            attention_mask=mask_BL,
            position_ids=next_pos_B[:, None],
            use_cache=True,
            past_key_values=cache,
        )
        logits_BV = out.logits[:, -1]
        next_pos_B = next_pos_B + 1
    tally.add("sampled", positions)
    return [_until_eos(row.tolist(), eos_id) for row in new_BT[:, : t + 1].cpu()]


def _draw(probs_BV: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row. The caller's generator drives the draw whatever the model's device: a CPU
    generator (every seed stream here) draws on the CPU from the probabilities, so a seed gives the same
    stream on every device, and tokens differ only where float differences between devices move a
    probability across the draw."""
    if generator is None or generator.device == probs_BV.device:
        return torch.multinomial(probs_BV, 1, generator=generator).squeeze(-1)
    return torch.multinomial(probs_BV.to(generator.device), 1, generator=generator).squeeze(-1).to(probs_BV.device)


def _invert(probs_BV: Float[Tensor, "B V"], u_B: Float[Tensor, " B"]) -> Int[Tensor, " B"]:
    """The token whose CDF interval holds u: the first v with cumsum(probs)[v] > u (the uniforms come from CPU
    generators, so a seed gives the same stream on every device)."""
    cdf_BV = probs_BV.cumsum(-1)
    u_B1 = (
        u_B.to(device=cdf_BV.device, dtype=cdf_BV.dtype)[:, None] * cdf_BV[:, -1:]
    )  # rounding: the CDF may end below 1
    return (cdf_BV <= u_B1).sum(-1).clamp(max=probs_BV.shape[-1] - 1)


def _until_eos(row: list[int], eos_id: int) -> list[int]:
    return row[: row.index(eos_id) + 1] if eos_id in row else row
