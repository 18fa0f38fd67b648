"""Dictionaries of what fine-tuning changed, read from paired activations of a base and a tuned model.

Both kinds read the two models' activations at the same tokens and write a change
``Δ = a_tuned - a_base`` as a sum of latent contributions ``codes_j · change_dec_j``:

* ``crosscoder`` (``probes.saes.crosscoder``): codes from ``[a_base | a_tuned]``; a latent's
  change direction is its tuned decoder half minus its base half (for a fine-tune-only latent,
  almost all of it is the tuned half);
* ``difference``: a plain SAE on ``a_tuned - a_base``; its decoder is the change direction.

One reading serves every intervention: ``group_change`` is the part of the change a latent group
accounts for. Steering the base model adds it to ``a_base``; ablating it in the tuned model
subtracts it from ``a_tuned`` (the other latents and the error term untouched). Splicing
replaces one model's activation by its reconstruction from the pair. The partner model's
activations at the same tokens come from a model run in lockstep (the caller fills ``partner``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from probes.activations import ActivationCache
from probes.causal import HookFn
from probes.saes.crosscoder import MODELS, decoders

Kind = Literal["crosscoder", "difference"]
DICTIONARIES: tuple[Kind, ...] = ("crosscoder", "difference")
"""The kinds of change dictionary (not to be confused with the behaviour feature groups a latent joins)."""
Side = Literal["base", "tuned"]


def kind_of(sae) -> Kind:
    """The kind its metadata records (``metadata.dictionary``, written when it was built)."""
    kind = sae.cfg.metadata.get("dictionary")
    if kind not in DICTIONARIES:
        raise ValueError(f"not a change dictionary: metadata.dictionary is {kind!r}, expected one of {DICTIONARIES}")
    return kind


@dataclasses.dataclass(frozen=True)
class ChangeDictionary:
    """A crosscoder or a difference SAE, read as latent contributions to ``a_tuned - a_base``."""

    sae: object
    kind: Kind

    @classmethod
    def of(cls, sae) -> ChangeDictionary:
        return cls(sae, kind_of(sae))

    @functools.cached_property
    def change_dec(self) -> Float[Tensor, "F D"]:
        """Each latent's change direction (computed once: the hooks read it at every generated token)."""
        if self.kind == "difference":
            return self.sae.W_dec
        base_FD, tuned_FD = decoders(self.sae.W_dec)
        return tuned_FD - base_FD

    def codes(self, base: Float[Tensor, "... D"], tuned: Float[Tensor, "... D"]) -> Float[Tensor, "... F"]:
        x = torch.cat([base, tuned], dim=-1) if self.kind == "crosscoder" else tuned - base
        return self.sae.encode(x.to(self.sae.W_dec))  # the dictionary's dtype and device

    def reconstruct(self, base: Float[Tensor, "... D"], tuned: Float[Tensor, "... D"]) -> tuple[Tensor, Tensor]:
        """(a_base, a_tuned) as the dictionary rebuilds them: a crosscoder decodes both halves; a
        difference SAE rebuilds each model's activation from the other's plus or minus the decoded change."""
        recon = self.sae.decode(self.codes(base, tuned))
        if self.kind == "crosscoder":
            base_hat, tuned_hat = recon.chunk(len(MODELS), dim=-1)
            return base_hat, tuned_hat
        return tuned - recon, base + recon

    def group_change(self, base: Tensor, tuned: Tensor, latents: Sequence[int]) -> Float[Tensor, "... D"]:
        """The part of the change that ``latents`` account for."""
        idx = torch.as_tensor(list(latents), dtype=torch.long)
        return self.codes(base, tuned)[..., idx] @ self.change_dec[idx]

    def view(self, partner: list[Tensor]) -> TunedView:
        """The dictionary as an SAE over the tuned model's activations (``partner[-1]``: the base's)."""
        return TunedView(self, partner)


@dataclasses.dataclass(frozen=True)
class TunedView:
    """``encode``/``W_dec`` over the tuned model's activations, for attribution (``probes.attribution``):
    codes from the pair, decoder the change directions."""

    dictionary: ChangeDictionary
    partner: list[Tensor]

    def encode(self, tuned: Tensor) -> Tensor:
        return self.dictionary.codes(self.partner[-1].to(tuned.device), tuned)

    @property
    def W_dec(self) -> Tensor:
        return self.dictionary.change_dec


def _pair(side: Side, acts: Tensor, partner: list[Tensor]) -> tuple[Tensor, Tensor]:
    other = partner[-1].to(acts.device)
    return (acts, other) if side == "base" else (other, acts)


def change_hook(dictionary: ChangeDictionary, latents: Sequence[int], side: Side, partner: list[Tensor]) -> HookFn:
    """Steer the base model with the group's change (side "base": ``a_base + Δ_G``) or ablate it in
    the tuned model (side "tuned": ``a_tuned - Δ_G``); ``partner[-1]`` holds the other model's activations."""
    sign = 1.0 if side == "base" else -1.0

    def hook(acts_BLD: Tensor, hook: object) -> Tensor:
        with torch.no_grad():
            delta = dictionary.group_change(*_pair(side, acts_BLD, partner), latents)
        return acts_BLD + sign * delta.to(acts_BLD.dtype)

    return hook


def splice_hook(dictionary: ChangeDictionary, side: Side, partner: list[Tensor]) -> HookFn:
    """Replace the model's activation by the dictionary's reconstruction of it from the pair."""
    index = MODELS.index(side)

    def hook(acts_BLD: Tensor, hook: object) -> Tensor:
        with torch.no_grad():
            return dictionary.reconstruct(*_pair(side, acts_BLD, partner))[index].to(acts_BLD.dtype)

    return hook


def paired_cache(kind: Kind, base: ActivationCache, tuned: ActivationCache) -> ActivationCache:
    """The tuned cache with every row's activations replaced by the dictionary's input (``[a_base |
    a_tuned]`` or ``a_tuned - a_base``), for browsing a change latent with ``probes.browse``. The caches
    must hold the same token sequences row for row (canonical-only probe sets of one spec do)."""
    if base.n_tokens != tuned.n_tokens or (base.token_N != tuned.token_N).any() or (base.seq_N != tuned.seq_N).any():
        raise ValueError(f"{base.path} and {tuned.path}: not the same token sequences row for row")
    a_base, a_tuned = np.asarray(base.acts_ND), np.asarray(tuned.acts_ND)
    acts = np.concatenate([a_base, a_tuned], axis=1) if kind == "crosscoder" else a_tuned - a_base
    return dataclasses.replace(tuned, acts_ND=acts)
