"""Causal checks of feature labels: ablate a latent group at its hook, compare with random groups.

Ablating a group removes exactly the group's contribution to the residual stream,
``x - codes[:, G] @ W_dec[G]``, and keeps everything the SAE does not explain (its error
term), so only the named latents change. A group passes when ablating it moves the
behaviour it is named after the expected way (CI over problems excluding 0), further than every
random group of the same size drawn to fire as often and as strongly, and, for a dissociation,
further than it moves the behaviour the group is not about.

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

from probes.stats import Estimate, bootstrap_mean

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


def patch_hook(sae, latents: Sequence[int], donor: Sequence[Tensor]) -> HookFn:
    """Hook that gives a group the codes of a donor model on the same tokens:
    ``x + (codes_donor[:, G] - codes[:, G]) @ W_dec[G]`` (the error term and other latents untouched).
    ``donor[-1]`` holds the donor's activations at this hook for the current forward (the caller fills it)."""

    def hook(acts_BLD: Tensor, hook: object) -> Tensor:
        with torch.no_grad():
            delta = group_contribution(sae, donor[-1].to(acts_BLD.device), latents) - group_contribution(
                sae, acts_BLD, latents
            )
        return acts_BLD + delta.to(acts_BLD.dtype)

    return hook


def row_patch_hook(sae, mask: Callable[[], Tensor], donor: Sequence[Tensor]) -> HookFn:
    """``patch_hook`` with a latent set per row: row b takes the donor's codes on the latents where ``mask()[b]``
    is 1 (``mask()`` gives the current batch's B x F mask), so one pass scores many patches at once."""

    def hook(acts_BLD: Tensor, hook: object) -> Tensor:
        with torch.no_grad():
            diff_BLF = sae.encode(donor[-1].to(acts_BLD.device)) - sae.encode(acts_BLD)
            delta_BLD = (diff_BLF * mask().to(diff_BLF)[:, None, :]) @ sae.W_dec
        return acts_BLD + delta_BLD.to(acts_BLD.dtype)

    return hook


def matched_random_groups(
    group: Sequence[int],
    candidates: Sequence[int],
    fire_F: np.ndarray,
    mass_F: np.ndarray,
    n: int,
    seed: int,
    pool: int = 8,
) -> list[list[int]]:
    """``n`` random groups as large as ``group``, each member's stand-in drawn from the ``pool``
    candidates nearest to it in (firing-rate rank, activation-mass rank): a random group that
    fires as often and as strongly as the group, so an effect is not just the size of what is removed."""
    cand = np.asarray([c for c in candidates if c not in set(group)], dtype=np.int64)
    everyone = np.r_[cand, np.asarray(group, dtype=np.int64)]
    rank = lambda x: np.argsort(np.argsort(x[everyone], kind="stable"), kind="stable") / max(len(everyone) - 1, 1)  # noqa: E731
    pos_E2 = np.stack([rank(fire_F), rank(mass_F)], 1)
    rng = np.random.Generator(np.random.PCG64([seed, len(group)]))
    out = []
    for _ in range(n):
        free = np.ones(len(cand), bool)
        picks = []
        for g in range(len(cand), len(everyone)):
            if not free.any():
                break
            dist = np.where(free, np.abs(pos_E2[: len(cand)] - pos_E2[g]).sum(1), np.inf)
            near = np.argsort(dist, kind="stable")[: min(pool, int(free.sum()))]
            pick = int(rng.choice(near))
            free[pick] = False
            picks.append(int(cand[pick]))
        out.append(sorted(picks))
    return out


@dataclasses.dataclass(frozen=True)
class Expectation:
    """What ablating a group should do: move ``behaviour`` in direction ``sign`` (0: either way),
    and, with an ``off_target`` behaviour, move it more than that one (a dissociation)."""

    behaviour: str
    sign: float
    off_target: str | None = None


@dataclasses.dataclass(frozen=True)
class CheckResult:
    behaviour: str
    effect: Estimate
    """Mean change of the named behaviour over problems (ablated - clean), 95% bootstrap CI over problems."""
    random_effects: tuple[float, ...]
    """The same mean change for each random group."""
    percentile: float
    """Share of random groups whose change, in the expected direction, is smaller than the group's."""
    dissociation: Estimate | None
    """Expected-direction change of the named behaviour minus that of the off-target one, per problem."""
    effects: dict[str, float]
    """Every behaviour's mean change under the group's ablation."""
    random_mean_effects: dict[str, float]
    """Every behaviour's mean change, averaged over the random groups (specificity)."""
    passed: bool
    """The change goes the expected way with a CI excluding 0, beats every random group, and (with an
    off-target behaviour) exceeds the off-target change with a CI excluding 0."""


def _delta(clean: Mapping[str, np.ndarray], ablated: Mapping[str, np.ndarray], b: str) -> np.ndarray:
    return np.asarray(ablated[b], float) - np.asarray(clean[b], float)


def check(
    expect: Expectation,
    clean: Mapping[str, np.ndarray],
    ablated: Mapping[str, np.ndarray],
    randoms: Sequence[Mapping[str, np.ndarray]],
    seed: int = 0,
) -> CheckResult:
    """Judge one group's ablation against random groups' from per-problem behaviours (nan: not read
    on that problem, e.g. direct answers where they cannot work)."""
    signed = (lambda x: np.abs(x)) if expect.sign == 0 else (lambda x: expect.sign * x)  # noqa: E731
    mean = lambda d: float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")  # noqa: E731
    delta = _delta(clean, ablated, expect.behaviour)
    effect = bootstrap_mean(delta[np.isfinite(delta)], seed=seed)
    rand = tuple(mean(_delta(clean, r, expect.behaviour)) for r in randoms)
    percentile = float(np.mean([signed(r) < signed(effect.mean) for r in rand])) if rand else float("nan")
    lo, hi = effect.ci95
    ci_ok = (lo > 0 if expect.sign > 0 else hi < 0) if expect.sign else (lo > 0 or hi < 0)
    dissociation = None
    if expect.off_target:
        d = expect.sign * (delta - _delta(clean, ablated, expect.off_target))
        dissociation = bootstrap_mean(d[np.isfinite(d)], seed=seed)
    passed = bool(
        signed(effect.mean) > 0 and ci_ok and percentile == 1.0 and (dissociation is None or dissociation.ci95[0] > 0)
    )
    return CheckResult(
        expect.behaviour,
        effect,
        rand,
        percentile,
        dissociation,
        effects={b: mean(_delta(clean, ablated, b)) for b in clean},
        random_mean_effects={
            b: float(np.mean([mean(_delta(clean, r, b)) for r in randoms])) if randoms else float("nan") for b in clean
        },
        passed=passed,
    )
