"""Small statistics over seeds: bootstrap confidence intervals, noise floors, cosines."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Estimate:
    mean: float
    ci95: tuple[float, float]
    """Percentile-bootstrap 95% interval of the mean (equal to the mean for one value)."""
    n: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci95": list(self.ci95), "n": self.n}

    def excludes(self, value: float) -> bool:
        return not self.ci95[0] <= value <= self.ci95[1]


def bootstrap_mean(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Mean with a percentile-bootstrap 95% CI, resampling the values (e.g. seeds) with replacement."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Estimate(float("nan"), (float("nan"), float("nan")), 0)
    rng = np.random.Generator(np.random.PCG64(seed))
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return Estimate(float(x.mean()), (float(lo), float(hi)), int(x.size))


def noise_floor(same_band_values: Sequence[Sequence[float]]) -> float:
    """Mean absolute difference between seeds of the same band (pairs within each band).

    A between-band difference smaller than this is indistinguishable from seed noise.
    """
    diffs = [abs(a - b) for vals in same_band_values for i, a in enumerate(vals) for b in vals[i + 1 :]]
    return float(np.mean(diffs)) if diffs else float("nan")


def cosine(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cosine similarity; nan when either vector is zero."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float("nan")
