"""The pruning study's statistics: held-out accuracy per (size, fraction, metric, policy), the crossover
contrasts (keep-hard minus keep-easy per size), the random-pruning power law, the RL-pool table and the verdict.

Accuracy intervals in the tables are two-level bootstraps (``probes.stats.seeds_then_rows``): training seeds
of each arm, then the held-out problems (the same for every arm, so differences are paired); with three seeds
they are descriptive. The crossover contrasts, which carry the claims, are Welch t intervals over the seeds'
accuracies (``probes.stats.welch_interval``, which keeps its error rate with three seeds where the seed
bootstrap does not), conditional on the held-out set. The verdict's two contrasts (smallest and largest size,
headline metric, ``crossover_fraction``) are Bonferroni-adjusted together (level 1 - 0.05 / 2); the secondary
metrics' contrasts are adjusted over all of them together.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from probes.layout import PruningLayout, read_json
from probes.stats import accuracy_by_arm, welch_interval

ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class Design:
    """What was run (the stage's settings the analysis needs)."""

    sizes: tuple[int, ...]
    fractions: tuple[float, ...]
    headline: str
    metrics: tuple[str, ...]
    other_fractions: tuple[float, ...]
    other_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    rl_fractions: tuple[float, ...]
    rl_seeds: tuple[int, ...]
    n_boot: int

    def cells(self, size: int) -> list[tuple[str, float]]:
        """(metric, fraction) of the pruned cells run at ``size``: the headline's fractions, the others' where they
        run."""
        others = [(m, f) for m in self.metrics for f in self.other_fractions] if size in self.other_sizes else []
        return [(m, f) for m, f in [(self.headline, f) for f in self.fractions] + others if f < 1]

    def grid(self, size: int) -> list[tuple[str, str, float]]:
        """(metric, policy, fraction) of every pruned arm at ``size``; ``random`` is one metric-free arm per
        fraction."""
        out = [("random", "random", f) for f in sorted({f for _, f in self.cells(size)})]
        return out + [(m, p, f) for m, f in self.cells(size) for p in ("keep_high", "keep_low")]

    @property
    def crossover_fraction(self) -> float:
        """The verdict's kept fraction: 0.5 when the headline grid has it, else its middle pruned fraction."""
        pruned = sorted(f for f in self.fractions if f < 1)
        return 0.5 if 0.5 in pruned else pruned[len(pruned) // 2]


@dataclasses.dataclass(frozen=True)
class Analysis:
    """pruning/results.json: the pruning study's design, numbers and verdict."""

    design: Design
    """What was run."""
    table: list[dict]
    """Per size, fraction, metric and policy: accuracy and its difference from random pruning at that size and
    fraction."""
    crossover: list[dict]
    """Per metric, fraction and size: keep-hard minus keep-easy accuracy."""
    power_law: dict
    """Random pruning's test error vs kept-set size: error = a * n^-b (least squares in log-log)."""
    rl: list[dict]
    """RL arms: accuracy, gain over the base model, difference from random pruning."""
    overlap_ks: list[int]
    """Knob values whose held-out problems may also be training examples (their space is too small to exclude them)."""
    verdict: str
    """Computed sentences: the headline metric's crossover contrasts and what the two policies kept."""
    verdict_class: str
    """crossover, easy_wins_small_only, hard_wins_large_only, no_crossover or incomplete."""

    def to_json(self) -> dict:
        """The dict results.json holds (``write_json`` writes its non-finite floats as null)."""
        return {**dataclasses.asdict(self), "design": dataclasses.asdict(self.design)}

    @classmethod
    def from_json(cls, d: Mapping) -> Analysis:
        """From ``to_json``'s dict or from results.json; a missing field is refused. The design's lists are tuples
        again, and a power law fitted to fewer than two sizes (nan, written null) is nan again."""
        fields = {f.name: d[f.name] for f in dataclasses.fields(cls)}
        design = Design(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["design"].items()})
        law = {k: math.nan if k in ("a", "b") and v is None else v for k, v in d["power_law"].items()}
        return cls(**{**fields, "design": design, "power_law": law})


def _load(root: Path, name: str, seeds: Sequence[int]) -> list[np.ndarray] | None:
    paths = [PruningLayout(root).arm(name, s) for s in seeds]
    return [np.array(read_json(p)["correct"], dtype=float) for p in paths] if all(p.exists() for p in paths) else None


def _arms_table(arms: dict[str, list[np.ndarray]], reference: str, n_boot: int) -> dict[str, dict]:
    """Accuracy of each arm over every held-out problem and its difference from ``reference`` (two-level bootstrap)."""
    return accuracy_by_arm(arms, np.arange(next(iter(arms.values()))[0].size), reference, n_boot=n_boot)


def composition(
    root: Path, records: Sequence[dict], d: Design, size: int, metric: str, policy: str, f: float
) -> dict[str, float]:
    """What an arm kept, mean over seeds: the share of deliberate completions and the mean k (the metrics may rank
    by mode or length rather than by difficulty within them)."""
    kept = [
        read_json(PruningLayout(root).arm(PruningLayout.arm_name(size, metric, policy, f), s))["rows"] for s in d.seeds
    ]
    rows = [records[i] for r in kept for i in r]
    return {
        "deliberate": float(np.mean([r["mode"] == "deliberate" for r in rows])),
        "k": float(np.mean([r["k"] for r in rows])),
    }


def supervised_table(root: Path, d: Design) -> list[dict]:
    """One row per size x fraction x (metric, policy) that has every seed's file."""
    records, out = read_json(PruningLayout(root).dataset(max(d.sizes))), []
    for size in d.sizes:
        grid = [("random", "random", 1.0), *d.grid(size)]
        for f in sorted({f for _, _, f in grid}):
            cells = [(m, p) for m, p, g in grid if g == f]
            arms = {
                f"{m}/{p}": runs
                for m, p in cells
                if (runs := _load(root, PruningLayout.arm_name(size, m, p, f), d.seeds)) is not None
            }
            if not arms:
                continue
            stats = _arms_table(arms, "random/random", d.n_boot)
            out += [
                {
                    "size": size,
                    "fraction": f,
                    "kept": round(size * f),
                    "metric": "all" if f == 1 else a.split("/")[0],
                    "policy": "all" if f == 1 else a.split("/")[1],
                    "acc": s["mean"],
                    "ci": s["ci"],
                    "vs_random": s["diff"],
                    "composition": composition(root, records, d, size, *a.split("/"), f),
                }
                for a, s in stats.items()
            ]
    return out


def crossover_rows(root: Path, d: Design) -> list[dict]:
    """Keep-hard minus keep-easy per metric, fraction and size; intervals adjusted as the module says."""
    cells = [(size, m, f) for size in d.sizes for m, f in d.cells(size)]
    n_secondary = sum(1 for _, m, f in cells if (m, f) != (d.headline, d.crossover_fraction))
    out = []
    for size, metric, f in sorted(cells, key=lambda c: (c[1] != d.headline, c[1], c[2], c[0])):
        headline = (metric, f) == (d.headline, d.crossover_fraction)
        level = 1 - ALPHA / 2 if headline else 1 - ALPHA / max(1, n_secondary)
        hi, lo = (_load(root, PruningLayout.arm_name(size, metric, p, f), d.seeds) for p in ("keep_high", "keep_low"))
        if hi is None or lo is None:
            continue
        diff, ci = welch_interval([c.mean() for c in hi], [c.mean() for c in lo], level)
        out.append(
            {
                "metric": metric,
                "fraction": f,
                "size": size,
                "hard_minus_easy": diff,
                "ci": list(ci),
                "level": level,
                "headline": headline,
            }
        )
    return out


def power_law(table: Sequence[dict]) -> dict:
    """Least-squares fit of log(error) = log(a) - b log(kept) over the random-pruning and unpruned cells."""
    pts = [(r["kept"], 1 - r["acc"]) for r in table if r["policy"] in ("random", "all") and 1 - r["acc"] > 0]
    if len({n for n, _ in pts}) < 2:
        return {"a": math.nan, "b": math.nan, "points": pts}
    x, y = np.log([n for n, _ in pts]), np.log([e for _, e in pts])
    slope, intercept = np.polyfit(x, y, 1)
    return {"a": float(np.exp(intercept)), "b": float(-slope), "points": pts}


def rl_table(root: Path, d: Design) -> list[dict]:
    """RL arms against random pruning at the same fraction, and their gain over the base model."""
    base = _load(root, "rl/base", (0,))
    out = []
    for f in d.rl_fractions:
        cells = {"random/random": "random"} | {
            f"{m}/{p}": m for m in ("failure_rate", "learnability") for p in ("keep_high", "keep_low")
        }
        arms = {
            a: runs
            for a in cells
            if (runs := _load(root, PruningLayout.arm_name("rl", *a.split("/"), f), d.rl_seeds)) is not None
        }
        full = _load(root, "rl/all", d.rl_seeds)
        if not arms or base is None or full is None:
            continue
        stats = _arms_table({**arms, "all": full, "base": base}, "random/random", d.n_boot)
        gains = _arms_table({**arms, "all": full, "base": base}, "base", d.n_boot)
        out += [
            {
                "fraction": f if a != "all" else 1.0,
                "arm": a,
                "acc": s["mean"],
                "ci": s["ci"],
                "vs_random": s["diff"],
                "gain": gains[a]["diff"],
            }
            for a, s in stats.items()
            if a != "base"
        ]
    return out


def _fmt(x: float, ci: Sequence[float]) -> str:
    return f"{x:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def verdict(crossover: Sequence[dict], table: Sequence[dict], d: Design) -> tuple[str, str]:
    """The crossover finding of the headline metric, in computed sentences (with what the two policies kept), and its
    class."""
    rows = {r["size"]: r for r in crossover if r["headline"]}
    small, large = min(d.sizes), max(d.sizes)
    if small not in rows or large not in rows:
        return f"The crossover contrast of {d.headline} is incomplete (runs missing).", "incomplete"
    s, g = rows[small], rows[large]
    easy_small = s["ci"][1] < 0
    hard_large = g["ci"][0] > 0
    cls = {(True, True): "crossover", (True, False): "easy_wins_small_only", (False, True): "hard_wins_large_only"}.get(
        (easy_small, hard_large), "no_crossover"
    )
    said = {
        "crossover": "Sorscher's crossover reproduces: keeping easy examples wins on the smallest dataset and keeping "
        "hard ones on the largest",
        "easy_wins_small_only": "keeping easy examples wins on the smallest dataset, but keeping hard ones does not "
        "win on the largest",
        "hard_wins_large_only": "keeping hard examples wins on the largest dataset, but keeping easy ones does not win "
        "on the smallest",
        "no_crossover": "Sorscher's crossover does not reproduce here: neither end shows the predicted winner",
    }[cls]
    head = (
        f"Pruning by {d.headline} to f = {d.crossover_fraction:g} (keep-hard minus keep-easy accuracy, "
        f"{100 * (1 - ALPHA / 2):.1f}% intervals): n = {small}: {_fmt(s['hard_minus_easy'], s['ci'])}; "
        f"n = {large}: {_fmt(g['hard_minus_easy'], g['ci'])}. "
    )
    kept = {
        (r["size"], r["policy"]): r["composition"]
        for r in table
        if (r["metric"], r["fraction"]) == (d.headline, d.crossover_fraction)
    }
    mix = "; ".join(
        f"n = {n}: {kept[n, 'keep_high']['deliberate']:.2f} vs {kept[n, 'keep_low']['deliberate']:.2f}"
        for n in (small, large)
        if (n, "keep_high") in kept and (n, "keep_low") in kept
    )
    return head + said[0].upper() + said[
        1:
    ] + f". Share of deliberate completions kept (keep-hard vs keep-easy): {mix}.", cls


def analyse(root: Path, d: Design, overlap_ks: Sequence[int]) -> Analysis:
    """Everything results.json and the report hold, from the arms' files under ``root``."""
    table = supervised_table(root, d)
    cross = crossover_rows(root, d)
    text, cls = verdict(cross, table, d)
    return Analysis(d, table, cross, power_law(table), rl_table(root, d), sorted(set(overlap_ks)), text, cls)
