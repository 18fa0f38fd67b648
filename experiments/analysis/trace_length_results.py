"""The trace-length study's typed result: per measured run, each setting's length-difficulty correlation and its gap
to the in-distribution one, the same after GRPO per band run and per band, and the base model's per-problem rows.

``trace_length.json`` holds ``TraceLengthResult.to_json()``. Undefined statistics (the in-distribution setting's gap
to itself, the rho of a setting whose difficulty is constant) are nan, written as null and read back as nan.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from probes.stats import Estimate


def _nan_for_none(x: float | None) -> float:
    return math.nan if x is None else x


@dataclasses.dataclass(frozen=True)
class TraceRow:
    """One problem of one setting, as a model traced it (greedy, forced deliberate)."""

    model: str
    """``base``, or a band run's name (its final checkpoint)."""
    setting: str
    pid: str
    k: int
    difficulty: int
    """The operations a correct trace performs (chain length k for arithmetic, A*'s operation count for mazes)."""
    generated: int
    """Generated trace tokens (between ``<think>`` and ``</think>``, or to the end)."""
    canonical: int
    """The correct trace's tokens."""
    valid_trace: bool
    """Every step right, none skipped."""
    correct: bool
    """The answer is right."""


@dataclasses.dataclass(frozen=True)
class Gap:
    """A setting's rho minus the in-distribution rho (nan for the in-distribution setting itself)."""

    mean: float
    ci: tuple[float, float]
    """Percentile-bootstrap interval at ``level``."""
    level: float
    """95% Bonferroni-adjusted over the out-of-distribution settings."""

    @classmethod
    def from_json(cls, d: Mapping) -> Gap:
        lo, hi = (_nan_for_none(x) for x in d["ci"])
        return cls(_nan_for_none(d["mean"]), (lo, hi), d["level"])


@dataclasses.dataclass(frozen=True)
class SettingSummary:
    """One setting's statistics for one model."""

    setting: str
    """``in distribution``, ``beyond, pooled``, ``k = K``, or another loop density (mazes)."""
    axis: str
    """What moves it away from pretraining: "none", "knob" (larger problems) or "density" (maze loops)."""
    distance: float
    """Knob steps beyond the pretraining range (mean over its knobs), or loop-density difference."""
    knobs: list[int]
    n: int
    """Problems."""
    rho: Estimate
    """Spearman's rho of generated length with difficulty, bootstrap 95% CI (nan: constant difficulty)."""
    gap_to_in_distribution: Gap
    constant_difficulty: bool
    """One difficulty only (one arithmetic k): nothing to rank."""
    mean_generated: float
    mean_canonical: float
    mean_difficulty: float
    valid_trace_rate: float
    accuracy: float

    @classmethod
    def from_json(cls, d: Mapping) -> SettingSummary:
        fields = {f.name: d[f.name] for f in dataclasses.fields(cls)}
        return cls(
            **{
                **fields,
                "rho": Estimate.from_dict(d["rho"]),
                "gap_to_in_distribution": Gap.from_json(d["gap_to_in_distribution"]),
            }
        )


@dataclasses.dataclass(frozen=True)
class BandCell:
    """One setting's rho after GRPO on one band, over the band's runs."""

    rho: list[float]
    """Each run's final-checkpoint rho (nan: undefined), in run-name order."""
    mean: float
    """Their mean over the defined ones (nan: none is)."""
    change: Estimate
    """Change from the base model's rho on the same problems, bootstrap 95% CI over the runs with a defined rho."""

    @classmethod
    def from_json(cls, d: Mapping) -> BandCell:
        return cls([_nan_for_none(r) for r in d["rho"]], _nan_for_none(d["mean"]), Estimate.from_dict(d["change"]))


@dataclasses.dataclass(frozen=True)
class RunLengths:
    """One measured run."""

    run: str
    """Its directory."""
    task: dict[str, Any]
    """Its task's parameters (``Task.params``)."""
    k_train_max: int
    """The largest knob in its pretraining."""
    settings: list[SettingSummary]
    """The base model's, in-distribution first."""
    after_rl: dict[str, list[SettingSummary]]
    """Per band run (with ``--band-runs``): its final checkpoint's, on the same problems."""
    by_band: dict[str, dict[str, BandCell]]
    """Per band and setting: rho after GRPO and its change from the base model's."""
    rows: list[TraceRow]
    """The base model's rows (the figure's scatter)."""

    @classmethod
    def from_json(cls, d: Mapping) -> RunLengths:
        summaries = lambda xs: [SettingSummary.from_json(s) for s in xs]  # noqa: E731
        return cls(
            d["run"],
            d["task"],
            d["k_train_max"],
            summaries(d["settings"]),
            {m: summaries(v) for m, v in d["after_rl"].items()},
            {b: {s: BandCell.from_json(c) for s, c in cells.items()} for b, cells in d["by_band"].items()},
            [TraceRow(**r) for r in d["rows"]],
        )


@dataclasses.dataclass(frozen=True)
class TraceLengthResult:
    """trace_length/trace_length.json: the study's run and those it was asked to show beside it."""

    runs: list[RunLengths]
    """``--run`` first, then each of ``--also``."""

    def to_json(self) -> dict:
        """The dict trace_length.json holds (``write_json`` writes its non-finite floats as null)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping) -> TraceLengthResult:
        """From ``to_json``'s dict or from trace_length.json (a null is nan again); a missing field is refused."""
        return cls([RunLengths.from_json(r) for r in d["runs"]])
