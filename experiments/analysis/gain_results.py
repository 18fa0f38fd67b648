"""Gain attribution across bands: the share of each run's gain each feature group carries.

The records are the runs' ``gain_attribution.json`` (``experiments.harness.gain_attribution``),
made at the matched checkpoints of the seeds that hit the target. Per band and group: the
share carried (mean over seeds with a 95% CI), the same for a matched random group (the
control), and the share the group brings to the base model alone (the reverse patch). The
band contrasts of the verdict compare the carried shares (``experiments.analysis.contrasts``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from experiments.analysis.contrasts import GROUPS
from experiments.harness.gain_attribution import GainAttribution
from probes.bands import BANDS
from probes.layout import run_name
from probes.stats import Estimate, bootstrap_mean

FRACTIONS = ("carried", "random", "reverse")
ATTRIBUTED = (*GROUPS, "mode")
"""Groups whose share of the gain is measured: the contrasts' three, and the mode-choice group (reported
beside them, not in the verdict's family: RL can raise accuracy by choosing to deliberate more often)."""
MEASURE = "share of the gain carried"
"""What the verdict's contrasts compare."""


def attribution_of(record: Mapping) -> GainAttribution:
    return GainAttribution(**{f.name: record[f.name] for f in dataclasses.fields(GainAttribution)})


def fraction_values(records: Mapping[str, Mapping], seeds: Sequence[int]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per band, group and fraction: the values over the band's seeds that have a record."""
    out = {b: {g: {k: [] for k in FRACTIONS} for g in ATTRIBUTED} for b in BANDS}
    for band in BANDS:
        for seed in seeds:
            record = records.get(run_name(band, seed))
            if record is None:
                continue
            for group, fracs in attribution_of(record).fractions().items():
                if group in ATTRIBUTED:
                    for kind, value in fracs.items():
                        out[band][group][kind].append(value)
    return out


def fraction_estimates(values: Mapping[str, Mapping[str, Mapping[str, list[float]]]]) -> dict[str, dict[str, dict[str, Estimate]]]:
    return {b: {g: {k: bootstrap_mean(v) for k, v in per.items()} for g, per in groups.items()} for b, groups in values.items()}


def carried(values: Mapping[str, Mapping[str, Mapping[str, list[float]]]]) -> dict[str, dict[str, list[float]]]:
    """The contrasts' input: per band and group, the carried shares of the seeds."""
    return {b: {g: per["carried"] for g, per in groups.items()} for b, groups in values.items()}
