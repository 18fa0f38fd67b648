"""The refinement study's statistics: held-out accuracy per arm and split, the two claims and the computed verdict,
and what the student's reads say about each refinement level (pure functions of plain data), and its typed result.

Table intervals are two-level bootstraps (``probes.stats.seeds_then_rows``): each arm's training seeds, then the
held-out problems, the same problems for every arm, so differences are paired on problems; with three seeds they
are descriptive. The verdict's decisions (``tests``: claim x split) use Welch t intervals over the two arms' seeds'
accuracies (``probes.stats.welch_interval``, conditional on the held-out problems), which keep their error rate with
three seeds where the seed bootstrap does not. Every interval is Bonferroni-adjusted over the decisions, so a claim
that "holds" has its interval clear of 0 at the family-wise 5% level.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from jaxtyping import Bool, Float, Int

from experiments.harness.training.fixed_data import Schedule
from probes.stats import accuracy_by_arm, welch_interval

ALPHA = 0.05
LEVELS = ("full", "compressed", "direct")
"""Refinements of one verified teacher trace, from most to least written-out (sophistication 0, 1, 2)."""
MAIN_ARMS = ("original", "all_refinements", "student_filtered", "random_same_size")
"""Arms (a)-(d); the first is every table's reference."""
SPLITS = ("in range", "beyond")
"""Held-out problems with k within the student's pretraining range, and larger k."""


@dataclasses.dataclass(frozen=True)
class Test:
    """One decision of the verdict: a contrast of two arms in one split, and the sign the claim predicts."""

    claim: str
    split: str
    arm: str
    against: str
    direction: int
    """+1: the claim predicts ``arm`` above ``against``; -1: below."""


def frontier_arm(i: int) -> str:
    """The arm trained on frontier bin ``i`` (0: nearest the student's frontier)."""
    return f"frontier/bin{i}"


def tests(n_bins: int) -> tuple[Test, ...]:
    """The verdict's decisions: self-filtering helps beyond the student's range (the filtered refinements against a
    random subset of the same size), and refinements beyond the frontier hurt, in each split (the furthest bin
    against the nearest)."""
    far, near = frontier_arm(n_bins - 1), frontier_arm(0)
    return (
        Test("self-filtering helps", "beyond", "student_filtered", "random_same_size", +1),
        *(Test("beyond the frontier hurts", split, far, near, -1) for split in SPLITS),
    )


def level_of(n_tests: int) -> float:
    """Interval level: 95% Bonferroni-adjusted over the verdict's decisions."""
    return 1 - ALPHA / n_tests


def split_rows(k_P: Int[np.ndarray, " P"], k_train_max: int) -> dict[str, Int[np.ndarray, " R"]]:
    """Row indices of each of ``SPLITS``."""
    return {"in range": np.flatnonzero(k_P <= k_train_max), "beyond": np.flatnonzero(k_P > k_train_max)}


def split_tables(
    runs: Mapping[str, Sequence[Bool[np.ndarray, " P"]]],
    splits: Mapping[str, np.ndarray],
    reference: str,
    level: float,
    n_boot: int,
    seed: int,
) -> dict[str, dict[str, dict]]:
    """``probes.stats.accuracy_by_arm`` in each split (split -> arm -> cell); each split its own bootstrap stream."""
    return {
        s: accuracy_by_arm(runs, rows, reference, level, n_boot, seed + i) for i, (s, rows) in enumerate(splits.items())
    }


@dataclasses.dataclass(frozen=True)
class Claim:
    """A decided test: the paired difference ``arm - against`` with its interval, and what it says."""

    claim: str
    split: str
    arm: str
    against: str
    diff: float
    ci: tuple[float, float]
    outcome: str
    """"holds" (interval clear of 0 in the claimed direction), "opposite" (clear of 0 the other way) or
    "no difference"."""

    @classmethod
    def from_json(cls, d: Mapping) -> Claim:
        """From ``dataclasses.asdict``'s dict or from results.json, where a nan difference or bound was written null."""
        lo, hi = (_nan_for_none(x) for x in d["ci"])
        return cls(d["claim"], d["split"], d["arm"], d["against"], _nan_for_none(d["diff"]), (lo, hi), d["outcome"])


def _nan_for_none(x: float | None) -> float:
    return math.nan if x is None else x


def outcome(ci: Sequence[float], direction: int) -> str:
    """What an interval says about a claim predicting the sign ``direction``."""
    lo, hi = ci
    if not np.isfinite(lo) or not np.isfinite(hi) or lo <= 0 <= hi:
        return "no difference"
    return "holds" if (lo > 0) == (direction > 0) else "opposite"


def decide(
    test: Test, runs: Mapping[str, Sequence[Bool[np.ndarray, " P"]]], splits: Mapping[str, np.ndarray], level: float
) -> Claim:
    """The test's difference on the split's problems, with a Welch interval over the two arms' seeds."""
    rows = splits[test.split]
    acc = {a: [float(np.mean(np.asarray(c)[rows])) for c in runs[a]] for a in (test.arm, test.against)}
    d, ci = welch_interval(acc[test.arm], acc[test.against], level)
    return Claim(test.claim, test.split, test.arm, test.against, d, ci, outcome(ci, test.direction))


def verdict(claims: Sequence[Claim], level: float) -> str:
    """One computed sentence: per claim and split, its difference, interval and outcome."""
    parts = []
    for name in dict.fromkeys(c.claim for c in claims):
        said = [
            f"{c.split}: {c.outcome} ({c.arm} - {c.against} {c.diff:+.3f} [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}])"
            for c in claims
            if c.claim == name
        ]
        parts.append(f"{name[0].upper()}{name[1:]}? " + "; ".join(said) + ".")
    return (
        " ".join(parts)
        + f" Accuracy differences, {level:.1%} intervals (95% Bonferroni-adjusted over {len(claims)} tests), Welch "
        "over seeds."
    )


def frontier_bins(pass_rate_N: Float[np.ndarray, " N"], n_bins: int, seed: int) -> Int[np.ndarray, " N"]:
    """Quantile bin of each sample by its problem's student pass rate: bin 0 holds the highest pass rates (nearest
    the student's frontier), bin ``n_bins - 1`` the lowest (furthest beyond it). Ties are ranked at random, so a
    coarse pass rate (few samples) still splits into bins of equal size (within one)."""
    p = np.asarray(pass_rate_N, dtype=float)
    tiebreak = np.random.Generator(np.random.PCG64(seed)).permutation(p.size)
    rank = np.empty(p.size, dtype=int)
    rank[np.lexsort((tiebreak, -p))] = np.arange(p.size)  # last key sorts first
    return rank * n_bins // max(p.size, 1)


@dataclasses.dataclass(frozen=True)
class ReadsAtK:
    """The student's reads of one level's samples at one k."""

    n: int
    """Samples."""
    ifd: float | None
    """Mean IFD over the finite ones (None: none is)."""
    rifd: float | None
    """Mean reverse IFD over the finite ones (None: none is)."""


@dataclasses.dataclass(frozen=True)
class LevelReads:
    """The student's reads of one level's samples (``original`` or one of ``LEVELS``)."""

    n: int
    """Samples."""
    kept_share: float | None
    """Share the student's filter keeps (None for the originals, which it does not judge)."""
    ifd: float | None
    """Mean IFD over the finite ones (None: none is)."""
    rifd: float | None
    """Mean reverse IFD over the finite ones (None: none is)."""
    per_k: dict[str, ReadsAtK]
    """The same per k (keys are k as text, as in JSON)."""

    @classmethod
    def from_json(cls, d: Mapping) -> LevelReads:
        return cls(d["n"], d["kept_share"], d["ifd"], d["rifd"], {k: ReadsAtK(**r) for k, r in d["per_k"].items()})


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def read_summary(
    level_N: Sequence[str],
    k_N: Int[np.ndarray, " N"],
    ifd_N: Float[np.ndarray, " N"],
    rifd_N: Float[np.ndarray, " N"],
    kept_N: Bool[np.ndarray, " N"],
) -> dict[str, LevelReads]:
    """Per level (``original`` and each of ``LEVELS`` present): samples, the share the student filter keeps, mean IFD
    and r-IFD, and those two means per k."""
    level_N, k_N = np.asarray(level_N), np.asarray(k_N)
    ifd_N, rifd_N, kept_N = (np.asarray(a, dtype=float) for a in (ifd_N, rifd_N, kept_N))
    out = {}
    for level in ("original", *LEVELS):
        sel = level_N == level
        if not sel.any():
            continue
        per_k = {
            str(k): ReadsAtK(
                int((sel & (k_N == k)).sum()), _mean(ifd_N[sel & (k_N == k)]), _mean(rifd_N[sel & (k_N == k)])
            )
            for k in sorted(set(k_N[sel].tolist()))
        }
        out[level] = LevelReads(
            int(sel.sum()),
            None if level == "original" else _mean(kept_N[sel]),
            _mean(ifd_N[sel]),
            _mean(rifd_N[sel]),
            per_k,
        )
    return out


@dataclasses.dataclass(frozen=True)
class FrontierBin:
    """One quantile bin of the refinements by their problem's distance beyond the student's frontier."""

    arm: str
    """The arm trained on it (``frontier_arm``)."""
    n: int
    """Refinements in the bin (the arm trains on a subsample of the smallest bin's size)."""
    distance: float
    """Their mean distance beyond the frontier (1 - the student's pass rate)."""
    mean_k: float
    """Their mean k."""


@dataclasses.dataclass(frozen=True)
class Frontier:
    """The frontier bins and their arms' accuracies."""

    bins: list[FrontierBin]
    """Nearest the student's frontier first."""
    splits: dict[str, dict[str, dict]]
    """Per split and bin arm: accuracy with its interval and its difference from the nearest bin (``split_tables``)."""


@dataclasses.dataclass(frozen=True)
class RefinementResult:
    """refinement/results.json: the refinement study's settings, numbers and verdict."""

    preset: str
    k_train_max: int
    """The student's pretraining range: held-out problems up to it are "in range", larger ones "beyond"."""
    teacher_k_max: int
    """The teacher's training range, and the study's problems' (k = 1..teacher_k_max)."""
    seeds: list[int]
    """Fine-tuning seeds per arm."""
    ft: Schedule
    """Every arm's fine-tuning schedule (equal compute)."""
    teacher_steps: int
    """Updates that made the teacher from the student's weights."""
    level: float
    """Interval level (95% Bonferroni-adjusted over the verdict's decisions)."""
    n_tests: int
    """The verdict's decisions."""
    n_eval: dict[str, int]
    """Held-out problems per split."""
    competence: dict[str, dict[str, float]]
    """Per model and mode ("student, deliberate", "teacher, deliberate", "student, free choice"): greedy held-out
    accuracy per k (as text) before fine-tuning."""
    student_before: dict[str, float]
    """Per split: the student's greedy free-choice accuracy before fine-tuning."""
    teacher_verified: int
    """Training problems whose teacher trace was right (each gave the three refinements)."""
    n_problems: int
    """Training problems."""
    reads: dict[str, LevelReads]
    """Per level: what the student's reads say (``read_summary``)."""
    n_train: dict[str, list[int]]
    """Per arm: examples trained on, per seed."""
    arms: dict[str, dict[str, dict]]
    """Per split and arm (a)-(d): accuracy with its interval and its difference from the originals
    (``split_tables``)."""
    frontier: Frontier
    claims: list[Claim]
    """The verdict's decisions, in ``tests`` order."""
    reported: list[Claim]
    """Contrasts reported beside them but not decided (self-filtering in range)."""
    verdict: str

    def to_json(self) -> dict:
        """The dict results.json holds (``write_json`` writes its non-finite floats as null)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping) -> RefinementResult:
        """From ``to_json``'s dict or from results.json; a missing field is refused."""
        fields = {f.name: d[f.name] for f in dataclasses.fields(cls)}
        frontier = Frontier([FrontierBin(**b) for b in d["frontier"]["bins"]], d["frontier"]["splits"])
        return cls(
            **{
                **fields,
                "ft": Schedule(**d["ft"]),
                "reads": {lv: LevelReads.from_json(r) for lv, r in d["reads"].items()},
                "frontier": frontier,
                "claims": [Claim.from_json(c) for c in d["claims"]],
                "reported": [Claim.from_json(c) for c in d["reported"]],
            }
        )


def analyse(
    files: Mapping[str, list[dict]],
    bins: list[FrontierBin],
    reads: Mapping,
    k_P: Int[np.ndarray, " P"],
    k_train_max: int,
    n_bins: int,
    n_boot: int,
    header: Mapping,
) -> RefinementResult:
    """The competence tables, read summary, arm and frontier tables, the claims and the verdict, from every arm's
    files (held-out correctness per seed), the frontier bins, the cached reads and the held-out problems' k;
    ``header`` holds the result's settings (preset, teacher_k_max, seeds, ft, teacher_steps)."""
    runs = {a: [np.array(f["correct"], dtype=bool) for f in fs] for a, fs in files.items()}
    splits = split_rows(k_P, k_train_max)
    free = reads["competence"]["student, free choice"]  # per k, so a split's accuracy weighs each k by its problems
    decided = tests(n_bins)
    level = level_of(len(decided))
    arms = [frontier_arm(b) for b in range(n_bins)]
    claims = [decide(t, runs, splits, level) for t in decided]
    in_range = decide(dataclasses.replace(decided[0], split="in range"), runs, splits, level)  # reported only
    samples = reads["samples"]
    return RefinementResult(
        **header,
        k_train_max=k_train_max,
        level=level,
        n_tests=len(decided),
        n_eval={s: int(rows.size) for s, rows in splits.items()},
        competence=reads["competence"],
        student_before={s: float(np.mean([free[str(k)] for k in k_P[rows]])) for s, rows in splits.items()},
        teacher_verified=sum(p["teacher_verified"] for p in reads["problems"]),
        n_problems=len(reads["problems"]),
        reads=read_summary(
            [s["level"] for s in samples],
            np.array([s["k"] for s in samples]),
            np.array([s["ifd"] for s in samples]),
            np.array([s["rifd"] for s in samples]),
            np.array([bool(s["keep_by_student"]) for s in samples]),
        ),
        n_train={a: [f["n_train"] for f in fs] for a, fs in files.items()},
        arms=split_tables({a: runs[a] for a in MAIN_ARMS}, splits, MAIN_ARMS[0], level, n_boot, seed=0),
        frontier=Frontier(bins, split_tables({b: runs[b] for b in arms}, splits, arms[0], level, n_boot, seed=10)),
        claims=claims,
        reported=[in_range],
        verdict=verdict(claims, level),
    )
