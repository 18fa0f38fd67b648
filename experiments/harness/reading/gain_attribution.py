"""How much of a run's accuracy gain each feature group carries: patching at the matched point.

For a fine-tuned model T (the run at its matched point) and its base model B, at the SAE's hook:

* **carried**: patch the group's codes in T back to B's values on the same tokens; the share of
  T's gain over B that disappears, ``(acc(T) - acc(T <- B on G)) / gain``;
* **random**: the same for each of the group's matched random groups (the causal check's, alike in
  firing rate and activation mass); their mean is the control, what any group of that size and
  activity carries;
* **specific**: carried minus that mean, what is specific to the group.

Shares need not lie in [0, 1] nor sum to 1 over groups: patching a group back can *raise* accuracy
(its change cost accuracy while the gain came from elsewhere: a negative share), groups compute
overlapping things, and the model is not additive in its latents.

One gain, one measurement: every accuracy is scored on the run's own evaluation draws, whose rows
each have their own random numbers (``rollout.sampled_rollouts``). The gain divided by is the matched
gain itself; T's plain accuracy on the same draws must give it again. A group is patched on every
row; its n random groups each on a disjoint 1/n of the rows, paired with T's outcome on those rows,
so the mean over all n costs one pass. All conditions go through the sampler in one pass, each
batch's rows with their own latent mask (``probes.causal.row_patch_hook``). A slice of rows also
goes through the patching path with nothing patched: it must reproduce T's outcomes there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from experiments.harness.reading.patching import Lockstep
from probes.causal import row_patch_hook

Scorer = Callable[..., np.ndarray]
"""``score(model, rows=None, on_batch=None)``: per-row correctness of ``model`` on the run's evaluation draws
(all rows, or ``rows``; ``on_batch`` sees each batch's positions in ``rows`` before it is sampled)."""


@dataclasses.dataclass(frozen=True)
class GainAttribution:
    """Accuracies of one run's matched point under each patch, all on the run's evaluation draws."""

    acc_base: float
    """B's accuracy (the run's step-0 evaluation)."""
    matched_acc: float
    """T's accuracy at the matched point as the matching evaluated it."""
    acc_tuned: float
    """T's accuracy measured again here (the same draws: it must equal matched_acc)."""
    patched: dict[str, float]
    """Per group: T's accuracy with the group's codes patched back to base values."""
    random_patched: dict[str, list[float]]
    """Per group: for each matched random group, T's accuracy with it patched, on that group's slice of rows."""
    random_tuned: dict[str, list[float]]
    """Per group: T's accuracy on each of those slices, unpatched."""
    path_agreement: float
    """Share of a slice of rows where the patching path with nothing patched gives T's own outcome."""

    @property
    def gain(self) -> float:
        """The matched gain: what every share is a share of."""
        return self.matched_acc - self.acc_base

    def fractions(self) -> dict[str, dict[str, float]]:
        """Per group: the share of the gain carried, the mean share its random groups carry, and the difference."""
        g = self.gain if self.gain else float("nan")
        out = {}
        for name in self.patched:
            carried = (self.acc_tuned - self.patched[name]) / g
            pairs = list(zip(self.random_tuned[name], self.random_patched[name]))
            random = sum(t - p for t, p in pairs) / len(pairs) / g if pairs else float("nan")
            out[name] = {"carried": carried, "random": random, "specific": carried - random}
        return out


def slices(n_rows: int, n: int) -> list[np.ndarray]:
    """n disjoint slices of the rows, row m in slice m mod n: each spread over every problem and sample slot."""
    return [np.arange(r, n_rows, n) for r in range(n)]


def attribute_gain(
    score: Scorer,
    n_rows: int,
    acc_base: float,
    matched_acc: float,
    tuned_bridge,
    base_bridge,
    sae,
    hook: str,
    groups: Mapping[str, Sequence[int]],
    randoms: Mapping[str, Sequence[Sequence[int]]],
) -> GainAttribution:
    """Score T plainly, then every patch of every non-empty group and of each of its random groups in one pass."""
    tuned = score(tuned_bridge.original_model)
    live = {name: list(g) for name, g in groups.items() if g}
    conditions: list[tuple[str, Sequence[int], np.ndarray]] = [("path", [], slices(n_rows, 64)[0])]
    conditions += [(f"carried/{name}", g, np.arange(n_rows)) for name, g in live.items()]
    for name in live:
        conditions += [
            (f"random/{name}/{i}", r, part)
            for i, (r, part) in enumerate(zip(randoms[name], slices(n_rows, len(randoms[name]))))
        ]
    masks_CF = torch.zeros(len(conditions), sae.cfg.d_sae)
    for c, (_, latents, _) in enumerate(conditions):
        masks_CF[c, list(latents)] = 1.0
    cond_R = np.concatenate([np.full(len(rows), c) for c, (_, _, rows) in enumerate(conditions)])
    current: list[torch.Tensor] = [masks_CF[:0]]
    # Each batch's masks, of the rows still sampled (finished rows leave the batch: ``Lockstep.live_rows``).
    pair = Lockstep(
        tuned_bridge, base_bridge, hook, lambda acts: row_patch_hook(sae, lambda: pair.live_rows(current[0]), acts)
    )
    correct_R = score(
        pair,
        rows=np.concatenate([rows for _, _, rows in conditions]),
        on_batch=lambda idx: current.__setitem__(0, masks_CF[cond_R[idx]]),
    )
    per = {name: correct_R[cond_R == c] for c, (name, _, _) in enumerate(conditions)}
    rows_of = {name: rows for name, _, rows in conditions}
    random_of = lambda name, f: [float(f(i)) for i in range(len(randoms[name]))]  # noqa: E731
    return GainAttribution(
        acc_base=acc_base,
        matched_acc=matched_acc,
        acc_tuned=float(tuned.mean()),
        patched={name: float(per[f"carried/{name}"].mean()) for name in live},
        random_patched={name: random_of(name, lambda i, n=name: per[f"random/{n}/{i}"].mean()) for name in live},
        random_tuned={
            name: random_of(name, lambda i, n=name: tuned[rows_of[f"random/{n}/{i}"]].mean()) for name in live
        },
        path_agreement=float((per["path"] == tuned[rows_of["path"]]).mean()),
    )
