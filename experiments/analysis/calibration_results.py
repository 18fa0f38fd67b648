"""The calibration study's statistics: per reward variant and split, accuracy, ECE, Brier and AUROC of the
stated confidence with two-level bootstrap intervals, voting, and the computed verdict.

Intervals resample seeds (each variant's own) and then held-out problems (the same problems for every
variant, so differences are paired), so they carry both training and evaluation randomness. With three
seeds the seed level is coarse; the report says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from jaxtyping import Bool, Float

from experiments.harness.studies.reward_study import JsonFields, in_and_beyond
from probes.calibration import auroc, brier, ece, reliability_bins, weighted_vote
from probes.stats import seeds_then_rows

METRICS = ("accuracy", "ece", "brier", "auroc", "stated")
"""Per split: accuracy of all samples; ECE, Brier and AUROC over the samples that state a confidence; the share
that do."""
VOTES = ("majority", "weighted")


@dataclasses.dataclass(frozen=True)
class Samples:
    """One model's sampled completions on the held-out problems: P problems x N samples each."""

    correct_PN: Bool[np.ndarray, "P N"]
    q_PN: Float[np.ndarray, "P N"]
    """Stated confidence, nan where none was stated (or the sample abstained)."""
    answers: list[list[str]]
    """Each sample's answer as text ('' where there is none), for voting."""

    @classmethod
    def of_rows(cls, rows: Sequence[Mapping], n: int) -> Samples:
        """From problem-major rows (``n`` per problem) with ``correct``, ``q`` (None: not stated) and ``answer``."""
        P = len(rows) // n
        correct = np.array([r["correct"] for r in rows], dtype=bool).reshape(P, n)
        q = np.array([np.nan if r["q"] is None else r["q"] for r in rows], dtype=float).reshape(P, n)
        answers = [[rows[i * n + j]["answer"] for j in range(n)] for i in range(P)]
        return cls(correct, q, answers)


def metrics(correct: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """The METRICS of a pool of samples."""
    c, v = correct.ravel(), q.ravel()
    stated = np.isfinite(v)
    cs, vs = c[stated], v[stated]
    return {
        "accuracy": float(c.mean()) if c.size else np.nan,
        "ece": ece(vs, cs),
        "brier": brier(vs, cs),
        "auroc": auroc(vs, cs) if vs.size else np.nan,
        "stated": float(stated.mean()) if c.size else np.nan,
    }


def vote_accuracy(s: Samples, rows: np.ndarray) -> dict[str, float]:
    """Share of problems whose voted answer is right: plain majority, and weighted by the stated q (a sample
    without one weighs 0). A vote is right when a sample carrying the voted answer is."""
    out = {}
    for how in VOTES:
        right = []
        for i in rows:
            answers = s.answers[i]
            weights = np.ones(len(answers)) if how == "majority" else np.nan_to_num(s.q_PN[i], nan=0.0)
            if how == "weighted" and weights.sum() == 0:
                weights = np.ones(len(answers))  # nothing stated: the plain vote
            voted = weighted_vote(answers, weights)
            right.append(bool(voted) and any(c for a, c in zip(answers, s.correct_PN[i]) if a == voted))
        out[how] = float(np.mean(right)) if right else np.nan
    return out


def _pool(runs: Sequence[Samples], seeds_S, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    correct = np.concatenate([runs[s].correct_PN[rows] for s in seeds_S])
    return correct, np.concatenate([runs[s].q_PN[rows] for s in seeds_S])


def split_table(
    runs_by_variant: Mapping[str, Sequence[Samples]],
    rows: np.ndarray,
    n_boot: int,
    seed: int,
    reference: str,
    level: float,
) -> dict[str, dict]:
    """Per variant: each metric (seeds pooled) with a two-level bootstrap interval at ``level`` and its difference
    from ``reference`` (paired on problems; ``probes.stats.seeds_then_rows``), and the vote accuracies."""
    arms = {v: [(r.correct_PN, r.q_PN) for r in runs] for v, runs in runs_by_variant.items()}
    out = seeds_then_rows(arms, rows, metrics, reference, level, n_boot, seed)
    for v, runs in runs_by_variant.items():
        votes = [vote_accuracy(run, rows) for run in runs]
        out[v]["votes"] = {how: float(np.mean([x[how] for x in votes])) for how in VOTES}
    return out


def reliability(runs: Sequence[Samples], rows: np.ndarray) -> list[dict]:
    """The reliability diagram's bins for one variant and split (seeds pooled)."""
    c, q = _pool(runs, np.arange(len(runs)), rows)
    stated = np.isfinite(q)
    return [dataclasses.asdict(b) for b in reliability_bins(q[stated], c[stated])]


def verdict(tables: Mapping[str, Mapping[str, dict]], reference: str, tested: str, level: float) -> tuple[str, str]:
    """(class, sentence): does ``tested`` (brier) lower ECE against ``reference`` (binary) without lowering
    accuracy, in every split? Intervals at ``level`` (Bonferroni over the splits x 2 metrics)."""
    parts, classes = [], []
    for split, table in tables.items():
        e, a = table[tested]["ece"]["diff"], table[tested]["accuracy"]["diff"]
        calibrates = e["ci"][1] < 0
        costs = a["ci"][1] < 0
        classes.append("trade_off" if calibrates and costs else "no_trade_off" if calibrates else "no_calibration_gain")
        parts.append(
            f"{split}: ECE {e['mean']:+.3f} [{e['ci'][0]:+.3f}, {e['ci'][1]:+.3f}], accuracy {a['mean']:+.3f} "
            f"[{a['ci'][0]:+.3f}, {a['ci'][1]:+.3f}]"
        )
    cls = classes[0] if len(set(classes)) == 1 else "mixed"
    head = {
        "no_trade_off": f"The {tested} reward lowered ECE against {reference} without lowering accuracy in every split",
        "trade_off": f"The {tested} reward lowered ECE against {reference} but cost accuracy",
        "no_calibration_gain": f"The {tested} reward did not lower ECE against {reference} (interval not below 0)",
        "mixed": f"The {tested} reward's effect against {reference} differed between splits",
    }[cls]
    return cls, f"{head} ({'; '.join(parts)}; {level:.1%} intervals over seeds and problems)."


@dataclasses.dataclass(frozen=True)
class CalibrationResult(JsonFields):
    """results.json: the calibration study's numbers and verdict."""

    preset: str
    band: str
    rewards: list[str]
    """The variants trained; the first is the reference."""
    seeds: list[int]
    k_train_max: int
    """The largest knob in pretraining: the splits are k up to it (in distribution) and above it (beyond)."""
    level: float
    """Interval level (95% Bonferroni-adjusted over the verdict's comparisons)."""
    splits: dict[str, dict[str, dict]]
    """Per split and variant (the base model first): each of METRICS with its interval and difference from the
    reference (``split_table``), and the vote accuracies."""
    reliability: dict[str, dict[str, list[dict]]]
    """Per split and variant: the reliability diagram's bins (seeds pooled)."""
    verdict_class: str
    """no_trade_off, trade_off, no_calibration_gain or mixed."""
    verdict: str


def analyse(
    runs: Mapping[str, Sequence[Samples]],
    k_P: np.ndarray,
    k_train_max: int,
    *,
    preset: str,
    band: str,
    seeds: Sequence[int],
    tested: str,
    level: float,
    n_boot: int,
) -> CalibrationResult:
    """Every number of the study from the models' samples: ``runs`` holds the base model's (one run) and each
    reward variant's (one run per seed, in ``seeds`` order), the first variant after the base model the
    reference; ``k_P`` is each held-out problem's knob."""
    rewards = [v for v in runs if v != "base"]
    splits = in_and_beyond(k_P, k_train_max)
    tables = {
        name: split_table(runs, rows, n_boot, seed=i, reference=rewards[0], level=level)
        for i, (name, rows) in enumerate(splits.items())
    }
    diagrams = {name: {v: reliability(r, rows) for v, r in runs.items()} for name, rows in splits.items()}
    cls, sentence = verdict(tables, rewards[0], tested, level)
    return CalibrationResult(
        preset=preset,
        band=band,
        rewards=rewards,
        seeds=list(seeds),
        k_train_max=k_train_max,
        level=level,
        splits=tables,
        reliability=diagrams,
        verdict_class=cls,
        verdict=sentence,
    )
