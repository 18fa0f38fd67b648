"""Feature-guided credit: a reward bonus for failed rollouts from a causally confirmed feature group's activity.

A remedy for hard samples (issue: from reading to acting). On a hard pool most groups fail every rollout, so their
group-relative advantages are all zero and the update learns nothing from them. Here a failed rollout earns
``weight`` times the share of its completion tokens on which the group is active (any of its latents' codes above
zero) in a dictionary read at ``hook`` of the policy being trained. Among failures, those that use the group more
then get a positive advantage. The dictionary and its group come from the base model, fixed before training (the
band study's SAE and its labels); the weight is fixed before any result. A successful rollout gets no bonus, so the
bonus never outranks a success while ``weight`` < 1 and the task reward is binary.

Every update logs the group's activity and the share of the paid reward that came from the bonus, so reward
hacking (activity rising without accuracy) shows in ``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from experiments.harness.training.rollout import Rollout
from probes.layout import RunDirError, read_json
from probes.padding import right_pad
from probes.saes.train import load_sae

HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_post")
"""The hooks a shaper reads: a block's residual-stream output (the output of HF decoder layer i)."""


@dataclasses.dataclass(frozen=True)
class ShapingSpec:
    """Which group pays a failed rollout, and how much."""

    sae: Path
    """sae_lens directory of the dictionary (trained on the base model)."""
    latents: tuple[int, ...]
    """The group's latents in it."""
    weight: float
    """A failed rollout's bonus when the group is active on every completion token."""

    def __post_init__(self) -> None:
        if not self.latents:
            raise ValueError("shaping: the group has no latents")
        if not 0.0 < self.weight < 1.0:
            raise ValueError(f"shaping weight: must lie in (0, 1), got {self.weight}")


class Shaper:
    """A ``ShapingSpec``'s dictionary loaded once; ``bonus`` per rollout, ``activity`` as the share of active tokens."""

    def __init__(self, spec: ShapingSpec, device: str = "cpu") -> None:
        self.spec, self.sae = spec, load_sae(spec.sae, device)
        match = HOOK.fullmatch(self.sae.cfg.metadata.hook_name)
        if match is None:
            raise ValueError(f"shaping: {spec.sae} reads {self.sae.cfg.metadata.hook_name}, not a block's resid_post")
        self.layer = int(match.group(1))
        self.latents = torch.tensor(spec.latents, device=device)

    @classmethod
    def of(cls, features: Path, group: str, weight: float, device: str = "cpu") -> Shaper:
        """The shaper paying ``group`` of a band study's ``sae/<name>/features.json`` (the dictionary beside it), or a
        one-line RunDirError naming what is missing."""
        if not features.is_file():
            raise RunDirError(f"shaping: {features} does not exist (a band study's sae/<name>/features.json)")
        latents = read_json(features).get("groups", {}).get(group)
        if not latents:
            raise RunDirError(f"shaping: {features} has no latents in group {group!r}")
        return cls(ShapingSpec(features.parent, tuple(latents), weight), device)

    @torch.no_grad()
    def activity(self, model, rollouts: list[Rollout]) -> Float[np.ndarray, " B"]:
        """Per rollout, the share of its completion tokens where any of the group's latents fires."""
        ids_BL, mask_BL = right_pad([list(r.prompt_ids) + list(r.completion_ids) for r in rollouts])
        device = next(model.parameters()).device
        seen: list[Tensor] = []
        layer = model.model.layers[self.layer]
        handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple) else out))
        try:
            model(input_ids=ids_BL.to(device), attention_mask=mask_BL.to(device))
        finally:
            handle.remove()
        codes_BLF = self.sae.encode(seen[0].float())
        active_BL: Bool[Tensor, "B L"] = (codes_BLF[..., self.latents] > 0).any(-1).cpu()
        shares = []
        for b, r in enumerate(rollouts):
            start, n = len(r.prompt_ids), len(r.completion_ids)
            shares.append(float(active_BL[b, start : start + n].float().mean()) if n else 0.0)
        return np.array(shares)

    def bonus(self, model, groups: list[list[Rollout]]) -> tuple[Float[np.ndarray, "N G"], Float[np.ndarray, "N G"]]:
        """(bonus, activity) per rollout: ``weight`` x activity for a failed rollout, 0 for a success."""
        flat = [r for g in groups for r in g]
        activity = self.activity(model, flat).reshape(len(groups), -1)
        failed = np.array([[not r.parsed.correct for r in g] for g in groups])
        return self.spec.weight * activity * failed, activity
