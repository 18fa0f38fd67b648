"""The behaviour feature groups: the one registry of what each group is read by, what its causal check
expects, and which analyses use it.

A latent joins at most one group (``experiments.harness.reading.labelling``). Every list of groups (read-outs,
labels, checks, contrasts, gain attribution, model diffing, reports) comes from here, in this order.
Not to be confused with the *dictionaries* of model diffing (``probes.saes.change.DICTIONARIES``).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class FeatureGroup:
    """One behaviour feature group."""

    name: str
    """The group's key in features.json, results.json and every table."""
    readout: str
    """The read-out it is selected by: a key of ``readouts.task_readouts`` (a ``Problem.targets`` kind)."""
    behaviour: str
    """The behaviour its causal check expects ablating it to move (one of ``rollout.BEHAVIOURS``)."""
    sign: float
    """The direction ablation must move that behaviour: -1 down, +1 up, 0 either way."""
    off_target: str | None
    """The behaviour ablation must move less, for a double dissociation (None: no dissociation)."""
    checked_on: str
    """The test problems its check reads: "direct works" (k <= shortcut_k), "trace only" (k > shortcut_k), "all"."""
    contrasted: bool
    """Whether the verdict's band contrasts compare it (``experiments.analysis.contrasts``)."""
    attributed: bool
    """Whether its share of the gain is measured (``experiments.analysis.gain_results``)."""


FEATURE_GROUPS: tuple[FeatureGroup, ...] = (
    FeatureGroup(
        name="shortcut",
        readout="shortcut",
        behaviour="direct_correct",
        sign=-1.0,
        off_target="deliberate_correct",
        checked_on="direct works",
        contrasted=True,
        attributed=True,
    ),
    FeatureGroup(
        name="computation",
        readout="computation",
        behaviour="step_acc",
        sign=-1.0,
        off_target=None,
        checked_on="all",
        contrasted=True,
        attributed=True,
    ),
    FeatureGroup(
        name="deliberation",
        readout="deliberation",
        behaviour="deliberate_correct",
        sign=-1.0,
        off_target="direct_correct",
        checked_on="trace only",
        contrasted=True,
        attributed=True,
    ),
    # The choice to deliberate: its gain share is reported beside the contrasted three, not in the verdict's
    # family (RL can raise accuracy by choosing to deliberate more often).
    FeatureGroup(
        name="mode",
        readout="mode",
        behaviour="p_think",
        sign=0.0,
        off_target=None,
        checked_on="all",
        contrasted=False,
        attributed=True,
    ),
)
"""Every group, in the order of every table and results.json key (checks and problem sets fixed before any result)."""
BY_NAME: dict[str, FeatureGroup] = {g.name: g for g in FEATURE_GROUPS}
NAMES: tuple[str, ...] = tuple(g.name for g in FEATURE_GROUPS)
"""Every group's name: the labelling's groups, the model-diffing labels."""
READOUTS: tuple[str, ...] = tuple(g.readout for g in FEATURE_GROUPS)
"""The read-outs ``readouts.task_readouts`` computes, one per group."""
CONTRASTED: tuple[str, ...] = tuple(g.name for g in FEATURE_GROUPS if g.contrasted)
"""The groups the verdict's band contrasts compare."""
ATTRIBUTED: tuple[str, ...] = tuple(g.name for g in FEATURE_GROUPS if g.attributed)
"""The groups whose share of the gain is measured."""
