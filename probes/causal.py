"""Causal checks of feature labels: ablate a latent group at its hook, compare with random groups.

Ablating a group removes exactly the group's contribution to the residual stream,
``x - codes[:, G] @ W_dec[G]``, and keeps everything the SAE does not explain (its error
term), so only the named latents change. A label passes when ablating its group moves
the behaviour it is named after further than every random group of the same size.

Generation is the caller's business (probes never import experiments): the hook
functions here are handed to TransformerLens (``bridge.hooks(fwd_hooks=...)``); calls to
the HF model inside the bridge (``bridge.original_model``) fire them too, so KV-cached
sampling runs under the ablation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

HookFn = Callable[[Tensor, object], Tensor]


def group_contribution(sae, acts_BLD: Float[Tensor, "B L D"], latents: Sequence[int]) -> Float[Tensor, "B L D"]:
    """The part of the SAE reconstruction written by ``latents``."""
    idx = torch.as_tensor(list(latents), dtype=torch.long)
    codes_BLG = sae.encode(acts_BLD)[..., idx]
    return codes_BLG @ sae.W_dec[idx]


def ablation_hook(sae, latents: Sequence[int], scale: float = 0.0) -> HookFn:
    """Hook that rescales a group's contribution: 0 ablates it, > 1 amplifies it (steering)."""

    def hook(acts_BLD: Tensor, hook: object) -> Tensor:
        with torch.no_grad():
            contrib = group_contribution(sae, acts_BLD, latents)
        return acts_BLD + (scale - 1.0) * contrib.to(acts_BLD.dtype)

    return hook


def random_groups(candidates: Sequence[int], size: int, n: int, seed: int) -> list[list[int]]:
    """``n`` random groups of ``size`` latents drawn from ``candidates`` (e.g. the live latents)."""
    rng = np.random.Generator(np.random.PCG64([seed, size]))
    size = min(size, len(candidates))
    return [sorted(rng.choice(candidates, size=size, replace=False).tolist()) for _ in range(n)]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    metric: str
    """The behaviour the label is named after, e.g. 'direct_acc'."""
    effect: float
    """Change of that metric when the group is ablated (ablated - clean)."""
    random_effects: tuple[float, ...]
    """The same change for random groups of equal size."""
    passed: bool
    """Effect in the expected direction and larger in size than every random group's."""
    all_effects: dict[str, float]
    """Every measured metric's change under the group's ablation."""


def judge(
    metric: str, direction: float, clean: Mapping[str, float], ablated: Mapping[str, float], randoms: Sequence[Mapping[str, float]]
) -> CheckResult:
    """Compare a group's ablation effect on ``metric`` (expected sign ``direction``) with random groups."""
    effect = ablated[metric] - clean[metric]
    random_effects = tuple(r[metric] - clean[metric] for r in randoms)
    beats_all = all(direction * effect > direction * e for e in random_effects)
    passed = bool(direction * effect > 0 and beats_all)
    all_effects = {k: ablated[k] - clean[k] for k in clean if k in ablated}
    return CheckResult(metric, effect, random_effects, passed, all_effects)
