"""Gain attribution across bands: the share of each run's gain each feature group carries.

The records are the runs' ``gain_attribution.json`` (``experiments.harness.reading.gain_attribution``),
made at the matched checkpoints of the seeds that hit the target. Per band and group: the
share carried, the mean share of its matched random groups (the control), and their difference
(**specific**: what the group carries beyond any group of its size and activity); each a mean over
seeds with a t interval. The band contrasts of the verdict compare the specific shares
(``experiments.analysis.contrasts``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from experiments.harness.reading.feature_groups import ATTRIBUTED
from experiments.harness.reading.gain_attribution import GainAttribution
from probes.bands import BANDS
from probes.layout import run_name
from probes.stats import Estimate, t_mean

FRACTIONS = ("carried", "random", "specific")
MEASURE = "the specific share of the gain carried (group minus its matched random groups)"
"""What the verdict's contrasts compare."""


def attribution_of(record: Mapping) -> GainAttribution:
    return GainAttribution(**{f.name: record[f.name] for f in dataclasses.fields(GainAttribution)})


def fraction_values(
    records: Mapping[str, Mapping], seeds: Sequence[int]
) -> dict[str, dict[str, dict[str, list[float]]]]:
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


def fraction_estimates(
    values: Mapping[str, Mapping[str, Mapping[str, list[float]]]],
) -> dict[str, dict[str, dict[str, Estimate]]]:
    return {b: {g: {k: t_mean(v) for k, v in per.items()} for g, per in groups.items()} for b, groups in values.items()}


def specific(values: Mapping[str, Mapping[str, Mapping[str, list[float]]]]) -> dict[str, dict[str, list[float]]]:
    """The contrasts' input: per band and group, the specific shares of the seeds."""
    return {b: {g: per["specific"] for g, per in groups.items()} for b, groups in values.items()}
