"""How much of a run's accuracy gain each feature group carries: patching at the matched checkpoint.

For a fine-tuned checkpoint T and its base model B, at the SAE's hook:

* **carried**: patch the group's codes in T back to B's values on the same tokens; the share of
  T's gain over B that disappears, ``(acc(T) - acc(T <- B on G)) / (acc(T) - acc(B))``;
* **random**: the same with a random group matched in firing rate and activation mass (the
  control: how much any group of that size carries);
* **reverse**: give B the group's codes from T; the share of the gain that the group alone
  brings, ``(acc(B <- T on G) - acc(B)) / (acc(T) - acc(B))``.

Every accuracy is measured through the same lockstep path (an empty group for the unpatched
models), with the run's own evaluation draws, so the conditions share their random numbers.
The base SAE reads T here; its reconstruction quality on T is reported beside the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from experiments.harness.patching import Lockstep
from probes.causal import patch_hook


@dataclasses.dataclass(frozen=True)
class GainAttribution:
    """Accuracies of one run's matched checkpoint under each patch."""

    acc_base: float
    acc_tuned: float
    patched: dict[str, float]
    """Per group: accuracy of the tuned model with the group's codes patched back to base values."""
    random_patched: dict[str, float]
    """Per group: the same with a matched random group of equal size."""
    reverse: dict[str, float]
    """Per group: accuracy of the base model given the tuned model's codes on the group."""

    @property
    def gain(self) -> float:
        return self.acc_tuned - self.acc_base

    def fractions(self) -> dict[str, dict[str, float]]:
        """Per group: the share of the gain carried, carried by the random group, and brought by the reverse patch."""
        g = self.gain if self.gain else float("nan")
        return {
            name: {"carried": (self.acc_tuned - self.patched[name]) / g,
                   "random": (self.acc_tuned - self.random_patched[name]) / g,
                   "reverse": (self.reverse[name] - self.acc_base) / g}
            for name in self.patched
        }  # fmt: skip


def attribute_gain(
    accuracy: Callable[[object], float],
    tuned_bridge,
    base_bridge,
    sae,
    hook: str,
    groups: Mapping[str, Sequence[int]],
    randoms: Mapping[str, Sequence[int]],
) -> GainAttribution:
    """Measure every patch of every non-empty group; ``accuracy(model)`` evaluates an HF-style model."""
    run = lambda main, donor, group: accuracy(Lockstep(main, donor, hook, lambda acts: patch_hook(sae, group, acts)))  # noqa: E731
    live = {name: g for name, g in groups.items() if g}
    return GainAttribution(
        acc_base=run(base_bridge, tuned_bridge, []),
        acc_tuned=run(tuned_bridge, base_bridge, []),
        patched={name: run(tuned_bridge, base_bridge, g) for name, g in live.items()},
        random_patched={name: run(tuned_bridge, base_bridge, randoms[name]) for name in live},
        reverse={name: run(base_bridge, tuned_bridge, g) for name, g in live.items()},
    )
