"""Every statistic bandlens reports: bootstrap CIs, noise floors, cosines, rank correlations,
quadratic fits, binned means, AUROC and correlation ratios. Pure functions of arrays."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Float
from scipy.stats import rankdata
from scipy.stats import t as student_t


@dataclasses.dataclass(frozen=True)
class Estimate:
    mean: float
    ci95: tuple[float, float]
    """95% interval of the mean: Student t over seeds (``t_mean``), percentile bootstrap over many problems
    (``bootstrap_mean``); equal to the mean for one value."""
    n: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci95": list(self.ci95), "n": self.n}

    @classmethod
    def from_dict(cls, d: dict) -> Estimate:
        """Inverse of ``as_dict`` after a JSON round trip (null, written for nan, reads back as nan)."""
        lo, hi = (math.nan if x is None else x for x in d["ci95"])
        return cls(math.nan if d["mean"] is None else d["mean"], (lo, hi), d["n"])

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


def t_mean(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean with a Student t interval, mean +- t(n - 1) s / sqrt(n): for a few seeds, where a percentile bootstrap
    is too narrow (it covered 76% at 3 seeds and 84% at 5 for a nominal 95%; tests/probes/test_stats.py simulates
    both). nan values are dropped; one value gives a point, none gives nan."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        m = float(x.mean()) if x.size else math.nan
        return Estimate(m, (m, m), int(x.size))
    half = float(student_t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Estimate(float(x.mean()), (float(x.mean()) - half, float(x.mean()) + half), int(x.size))


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


def _rank_corr(x_SN: np.ndarray, y_SN: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair: Pearson correlation of (tie-averaged) ranks; nan if a row is constant."""
    rx, ry = rankdata(x_SN, axis=1), rankdata(y_SN, axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    denom = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(1) / denom, np.nan)


def spearman(x: Sequence[float], y: Sequence[float], n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Spearman's rho of x and y with a percentile-bootstrap 95% CI over examples.

    Pairs with a nan on either side are dropped (``n`` counts the rest); inf ranks above
    every finite value. nan when fewer than 3 pairs remain or one side is constant.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    rho = _rank_corr(x[None], y[None])[0] if x.size >= 3 else math.nan
    if not math.isfinite(rho):
        return Estimate(math.nan, (math.nan, math.nan), int(x.size))
    idx_SN = np.random.Generator(np.random.PCG64(seed)).integers(0, x.size, size=(n_boot, x.size))
    boots = _rank_corr(x[idx_SN], y[idx_SN])
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return Estimate(float(rho), (float(lo), float(hi)), int(x.size))


def spearman_gap(
    x_a: Sequence[float],
    y_a: Sequence[float],
    x_b: Sequence[float],
    y_b: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """rho_a - rho_b of two independent samples, with a percentile-bootstrap interval at ``level``
    (each sample resampled on its own); nan where either rho is undefined."""
    parts = []
    for i, (x, y) in enumerate(((x_a, y_a), (x_b, y_b))):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        rho = _rank_corr(x[None], y[None])[0] if x.size >= 3 else math.nan
        idx_SN = np.random.Generator(np.random.PCG64([seed, i])).integers(0, x.size, size=(n_boot, x.size))
        parts.append((rho, _rank_corr(x[idx_SN], y[idx_SN]) if x.size >= 3 else np.full(n_boot, np.nan)))
    gap, boots = parts[0][0] - parts[1][0], parts[0][1] - parts[1][1]
    boots = boots[np.isfinite(boots)]
    if not math.isfinite(gap) or boots.size == 0:
        return math.nan, math.nan, math.nan
    lo, hi = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)])
    return float(gap), float(lo), float(hi)


@dataclasses.dataclass(frozen=True)
class QuadraticFit:
    """Least-squares y = a + b x + c x^2, with bootstrap CIs over examples."""

    curvature: Estimate
    """c: negative with a CI below 0 means an inverted U."""
    vertex: Estimate
    """-b / 2c: where the curve peaks (or dips)."""
    coef: tuple[float, float, float]
    """(a, b, c) on all examples."""


def quadratic_fit(x: Sequence[float], y: Sequence[float], n_boot: int = 1000, seed: int = 0) -> QuadraticFit:
    """Quadratic fit of y on x (nan pairs dropped) with percentile-bootstrap CIs of c and the vertex."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 4 or np.unique(x).size < 3:
        nan = Estimate(math.nan, (math.nan, math.nan), int(x.size))
        return QuadraticFit(nan, nan, (math.nan,) * 3)
    c, b, a = np.polyfit(x, y, 2)
    rng = np.random.Generator(np.random.PCG64(seed))
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, x.size, x.size)
        if np.unique(x[i]).size >= 3:
            boots.append(np.polyfit(x[i], y[i], 2))
    cs, bs = np.array(boots)[:, 0], np.array(boots)[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        vs = -bs / (2 * cs)

    def est(value: float, samples: np.ndarray) -> Estimate:
        lo, hi = np.nanpercentile(samples, [2.5, 97.5])
        return Estimate(float(value), (float(lo), float(hi)), int(x.size))

    return QuadraticFit(est(c, cs), est(-b / (2 * c), vs), (float(a), float(b), float(c)))


def binned_means(x: Sequence[float], y: Sequence[float], edges: Sequence[float]) -> list[dict]:
    """Mean of y (with a bootstrap CI) in each bin [lo, hi) of x; the last bin includes its upper edge."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        sel = (x >= lo) & ((x < hi) | ((i == len(edges) - 2) & (x <= hi))) & np.isfinite(y)
        out.append({"lo": float(lo), "hi": float(hi), **bootstrap_mean(y[sel]).as_dict()})
    return out


def weighted_auroc(
    scores_PF: Float[np.ndarray, "P F"],
    w_pos_P: Float[np.ndarray, " P"],
    w_neg_P: Float[np.ndarray, " P"],
    block: int = 256,
) -> Float[np.ndarray, " F"]:
    """Per column, P(pos > neg) + P(pos = neg) / 2 (Mann-Whitney U), a point of weight w counting w times.

    nan when a class is empty."""
    w_pos, w_neg = float(np.sum(w_pos_P)), float(np.sum(w_neg_P))
    out_F = np.full(scores_PF.shape[1], np.nan)
    if w_pos <= 0 or w_neg <= 0:
        return out_F
    wp_P, wn_P = torch.as_tensor(w_pos_P, dtype=torch.float64), torch.as_tensor(w_neg_P, dtype=torch.float64)
    for lo in range(0, scores_PF.shape[1], block):
        x_BP = torch.as_tensor(np.ascontiguousarray(scores_PF[:, lo : lo + block].T), dtype=torch.float64)
        sorted_BP, order_BP = x_BP.sort(dim=1)
        cum_neg_BP = torch.nn.functional.pad(wn_P[order_BP].cumsum(1), (1, 0))
        below_BP = cum_neg_BP.gather(1, torch.searchsorted(sorted_BP, x_BP, right=False))
        at_or_below_BP = cum_neg_BP.gather(1, torch.searchsorted(sorted_BP, x_BP, right=True))
        wins_B = ((below_BP + at_or_below_BP) / 2 * wp_P).sum(1)
        out_F[lo : lo + block] = (wins_B / (w_pos * w_neg)).numpy()
    return out_F


def correlation_ratio(
    sum_VF: Float[np.ndarray, "V F"], n_V: Float[np.ndarray, " V"], sum_sq_F: Float[np.ndarray, " F"]
) -> Float[np.ndarray, " F"]:
    """eta^2 = between-group / total sum of squares, from per-group sums and counts.

    nan for an activation constant on these rows; with no association it is about (V - 1) / (n - 1).
    """
    n = n_V.sum()
    if n < 2:
        return np.full(sum_VF.shape[1], np.nan)
    total_F = sum_VF.sum(0)
    correction_F = total_F**2 / n
    ss_total_F = sum_sq_F - correction_F
    ss_between_F = (sum_VF**2 / np.maximum(n_V, 1)[:, None]).sum(0) - correction_F
    constant_F = ss_total_F <= 1e-12 * np.maximum(sum_sq_F, 1e-300)
    return np.where(constant_F, np.nan, np.clip(ss_between_F / np.where(constant_F, 1, ss_total_F), 0, 1))


def spearman_rows(x_K: Float[np.ndarray, " K"], y_FK: Float[np.ndarray, "F K"]) -> Float[np.ndarray, " F"]:
    """Spearman correlation of x with each row of y (average ranks for ties); nan below 3 points, nan or constant
    rows."""
    if len(x_K) < 3:
        return np.full(len(y_FK), np.nan)
    centre = (len(x_K) + 1) / 2
    rx_K = rankdata(x_K) - centre
    ry_FK = rankdata(y_FK, axis=1) - centre  # nan rows stay nan
    num_F, den_F = ry_FK @ rx_K, np.sqrt((ry_FK**2).sum(1) * (rx_K**2).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den_F > 0, num_F / np.where(den_F > 0, den_F, 1), np.nan)


@dataclasses.dataclass(frozen=True)
class Contrast:
    """A two-sample comparison of seed-level values by an exact permutation test."""

    diff: float
    """mean(a) - mean(b)."""
    p: float
    """Two-sided permutation p-value: share of relabellings with |diff| at least the observed one."""
    n_a: int
    n_b: int

    @property
    def min_p(self) -> float:
        """The smallest p-value the test can give at these sizes: with equal groups each split
        and its mirror image tie, so 2 / C(n_a + n_b, n_a); else 1 / C(n_a + n_b, n_a)."""
        splits = math.comb(self.n_a + self.n_b, self.n_a)
        return min(1.0, (2 if self.n_a == self.n_b else 1) / splits)


@functools.lru_cache(maxsize=64)
def _splits(n: int, k: int) -> np.ndarray:
    """Every way to put k of n pooled values in the first group, one boolean row each."""
    idx = np.array(list(itertools.combinations(range(n), k)))
    in_a = np.zeros((len(idx), n), bool)
    in_a[np.arange(len(idx))[:, None], idx] = True
    in_a.flags.writeable = False
    return in_a


def permutation_test(a: Sequence[float], b: Sequence[float]) -> Contrast:
    """Exact two-sided permutation test of a difference in means, over every relabelling of the
    pooled values into groups of the original sizes (nan values are dropped first).

    Under the null that labels are exchangeable it keeps its nominal level at any sample size:
    P(p <= alpha) <= alpha. p is nan when a group is empty."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return Contrast(math.nan, math.nan, int(x.size), int(y.size))
    pooled = np.r_[x, y]
    in_a = _splits(pooled.size, x.size)
    diffs = (in_a @ pooled) / x.size - (~in_a @ pooled) / y.size
    observed = x.mean() - y.mean()
    p = float(np.mean(np.abs(diffs) >= abs(observed) - 1e-12))
    return Contrast(float(observed), p, int(x.size), int(y.size))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone); nan inputs stay nan and do not count."""
    p = np.asarray(p_values, float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def spearman_p(x: Sequence[float], y: Sequence[float], n_perm: int = 2000, seed: int = 0) -> float:
    """Two-sided permutation p-value of Spearman's rho (nan pairs dropped): (1 + #shuffles of y with
    |rho| >= the observed |rho|) / (1 + n_perm), valid at any sample size. nan where rho is nan."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    rho = _rank_corr(x[None], y[None])[0] if x.size >= 3 else math.nan
    if not math.isfinite(rho):
        return math.nan
    rng = np.random.Generator(np.random.PCG64(seed))
    shuffled_SN = rng.permuted(np.broadcast_to(y, (n_perm, y.size)), axis=1)
    null = _rank_corr(np.broadcast_to(x, shuffled_SN.shape), shuffled_SN)
    return float((1 + np.sum(np.abs(null) >= abs(rho) - 1e-12)) / (1 + n_perm))


def paired_spearman_difference(
    x: Sequence[float], z: Sequence[float], y: Sequence[float], n_boot: int = 1000, seed: int = 0
) -> Estimate:
    """rho(x, y) - rho(z, y) on the same examples (nan in any of the three dropped), with a
    percentile-bootstrap CI resampling examples once for both correlations."""
    x, z, y = (np.asarray(a, dtype=float) for a in (x, z, y))
    keep = ~(np.isnan(x) | np.isnan(z) | np.isnan(y))
    x, z, y = x[keep], z[keep], y[keep]
    if x.size < 3:
        return Estimate(math.nan, (math.nan, math.nan), int(x.size))
    diff = lambda i: _rank_corr(x[i], y[i]) - _rank_corr(z[i], y[i])  # noqa: E731
    idx_SN = np.random.Generator(np.random.PCG64(seed)).integers(0, x.size, size=(n_boot, x.size))
    return Estimate(float(diff(np.arange(x.size)[None])[0]), _ci95(diff(idx_SN)), int(x.size))


def _ci95(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval at ``level`` (95% unless given) of the finite samples (nan when there are none)."""
    s, tail = samples[np.isfinite(samples)], (1 - level) / 2 * 100
    return (math.nan, math.nan) if s.size == 0 else tuple(float(v) for v in np.percentile(s, [tail, 100 - tail]))


def spearman_brown(r: float, m: float) -> float:
    """Reliability of the mean of m parallel measurements whose pairwise correlation is r (nan where
    r <= -1 / (m - 1), which no parallel measurements give: a resample of a few examples can)."""
    r = np.asarray(r, float)
    den = 1 + (m - 1) * r
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, m * r / den, math.nan)
    return float(out) if out.ndim == 0 else out


def _pairwise_rho(v_SN: np.ndarray) -> float:
    """Mean Spearman rho over all pairs of rows (seeds): the single-measurement reliability."""
    pairs = list(itertools.combinations(range(len(v_SN)), 2))
    return float(np.mean(_rank_corr(v_SN[[i for i, _ in pairs]], v_SN[[j for _, j in pairs]])))


@dataclasses.dataclass(frozen=True)
class Reliability:
    """How repeatable a measurement averaged over m seeds is, and the correlation it caps."""

    single: Estimate
    """Seed-to-seed Spearman rho (mean over seed pairs): the reliability of one seed's value."""
    of_mean: Estimate
    """Spearman-Brown reliability of the m-seed mean, m r / (1 + (m - 1) r)."""
    ceiling: Estimate
    """sqrt(of_mean): the largest correlation an error-free predictor can have with the m-seed mean."""
    m: int


def _nan_estimate(n: int) -> Estimate:
    return Estimate(math.nan, (math.nan, math.nan), n)


def reliability(values_SN: Float[np.ndarray, "S N"], n_boot: int = 1000, seed: int = 0) -> Reliability:
    """Reliability of the seed mean of a per-example measurement (rows are seeds), with percentile-
    bootstrap CIs over examples; examples with a nan in any seed are dropped. Spearman-Brown is exact
    for Pearson correlations of parallel measurements; on ranks it is the usual approximation."""
    v = np.asarray(values_SN, float)
    v = v[:, np.isfinite(v).all(0)]
    m, n = v.shape
    if m < 2 or n < 3:
        return Reliability(_nan_estimate(n), _nan_estimate(n), _nan_estimate(n), m)
    idx_BN = np.random.Generator(np.random.PCG64(seed)).integers(0, n, size=(n_boot, n))
    r, boots = _pairwise_rho(v), np.array([_pairwise_rho(v[:, i]) for i in idx_BN])

    def est(f) -> Estimate:
        with np.errstate(invalid="ignore"):
            return Estimate(float(f(np.array(r))), _ci95(f(boots)), n)

    of_mean = lambda x: spearman_brown(x, m)  # noqa: E731
    return Reliability(est(lambda x: x), est(of_mean), est(lambda x: np.sqrt(np.clip(of_mean(x), 0, None))), m)


def disattenuated(
    x_N: Sequence[float], values_SN: Float[np.ndarray, "S N"], n_boot: int = 1000, seed: int = 0
) -> Estimate:
    """Spearman rho of x with the seed mean of the values, divided by the square root of that mean's
    Spearman-Brown reliability: the correlation x would have with an error-free value (x itself
    taken as exact). Percentile-bootstrap CI over examples, resampling both parts together."""
    x, v = np.asarray(x_N, float), np.asarray(values_SN, float)
    keep = np.isfinite(v).all(0) & ~np.isnan(x)
    x, v = x[keep], v[:, keep]
    m, n = v.shape
    if m < 2 or n < 3:
        return _nan_estimate(n)

    def stat(i: np.ndarray) -> float:
        rel = spearman_brown(_pairwise_rho(v[:, i]), m)
        return float(_rank_corr(x[i][None], v[:, i].mean(0)[None])[0] / np.sqrt(rel)) if rel > 0 else math.nan

    idx_BN = np.random.Generator(np.random.PCG64(seed)).integers(0, n, size=(n_boot, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return Estimate(stat(np.arange(n)), _ci95(np.array([stat(i) for i in idx_BN])), n)


def seeds_then_rows(
    arms: Mapping[str, Sequence[tuple[np.ndarray, ...]]],
    rows: np.ndarray,
    statistic: Callable[..., dict[str, float]],
    reference: str,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, dict]]:
    """Per arm and statistic: the value over every seed and row, a two-level percentile-bootstrap interval
    at ``level`` and the difference from the ``reference`` arm with its interval.

    ``arms[a][s]`` holds seed s's arrays, indexed by row on their first axis; ``statistic`` maps the chosen
    seeds' chosen rows, concatenated array by array, to named values. Each draw resamples every arm's seeds
    (training randomness), then rows (evaluation problems) once for all arms, so differences are paired on
    rows. With few seeds the seed level is coarse (3 seeds give 10 distinct multisets)."""
    rng = np.random.Generator(np.random.PCG64(seed))

    def value(runs, seeds_S, rows_R) -> dict[str, float]:
        return statistic(*(np.concatenate([runs[s][i][rows_R] for s in seeds_S]) for i in range(len(runs[0]))))

    point = {a: value(runs, range(len(runs)), rows) for a, runs in arms.items()}
    draws: dict[str, list[dict[str, float]]] = {a: [] for a in arms}
    for _ in range(n_boot):
        rows_R = rows[rng.integers(0, rows.size, rows.size)]
        for a, runs in arms.items():
            draws[a].append(value(runs, rng.integers(0, len(runs), len(runs)), rows_R))
    interval = lambda x: list(_ci95(x, level))  # noqa: E731
    out: dict[str, dict[str, dict]] = {}
    for a in arms:
        d = {m: np.array([x[m] for x in draws[a]]) for m in point[a]}
        ref = {m: np.array([x[m] for x in draws[reference]]) for m in point[a]}
        out[a] = {
            m: {
                "mean": point[a][m],
                "ci": interval(d[m]),
                "diff": {"mean": point[a][m] - point[reference][m], "ci": interval(d[m] - ref[m])},
            }
            for m in point[a]
        }
    return out


def accuracy_by_arm(
    arms: Mapping[str, Sequence[np.ndarray]],
    rows: np.ndarray,
    reference: str,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict]:
    """Per arm, mean correctness over its seeds' 0/1 arrays on ``rows``, with its difference from ``reference``
    (``seeds_then_rows``: {"mean", "ci", "diff": {"mean", "ci"}})."""
    runs = {a: [(np.asarray(c, dtype=float),) for c in seeds] for a, seeds in arms.items()}
    res = seeds_then_rows(runs, rows, lambda c: {"accuracy": float(c.mean())}, reference, level, n_boot, seed)
    return {a: r["accuracy"] for a, r in res.items()}


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """mean(a) - mean(b) and its Welch t interval at ``level``: one value per seed on each side, so training
    randomness sets the width. It keeps its error rate with three seeds a side, where a seed-level bootstrap
    does not (tests/probes/test_stats.py simulates both); zero spread on both sides gives a point interval."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        raise ValueError(f"welch_interval: needs two values a side, got {x.size} and {y.size}")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    d = float(x.mean() - y.mean())
    if va + vb == 0:
        return d, (d, d)
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    half = float(student_t.ppf(0.5 + level / 2, df) * math.sqrt(va + vb))
    return d, (d - half, d + half)
