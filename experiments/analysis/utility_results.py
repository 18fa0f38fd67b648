"""The utility study's decisions and statistics: each arm's payoff on held-out problems, the post-hoc
threshold, feature acquisition, and the computed verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from jaxtyping import Bool, Float

from experiments.harness.studies.reward_study import JsonFields, in_and_beyond
from probes.calibration import Utility, best_threshold
from probes.stats import seeds_then_rows

DIRECT, SYMMETRIC = "utility", "symmetric"
"""The trained arms, as their runs are named (``<arm>/seed<s>``): rewarded with the utility itself, and with the
symmetric binary reward (then thresholded post hoc)."""
DECISIONS = ("as sampled", "threshold 0.75 (theory)", "threshold fitted")
"""How a symmetric-trained model's samples become decisions: as the model wrote them, or answering only where
its probability of its own answer reaches the utility's threshold (stated or fitted on other problems)."""


@dataclasses.dataclass(frozen=True)
class Decisions:
    """One model's samples on the held-out problems: P problems x N samples."""

    correct_PN: Bool[np.ndarray, "P N"]
    abstained_PN: Bool[np.ndarray, "P N"]
    p_PN: Float[np.ndarray, "P N"]
    """The model's probability of its own answer (nan where it gave none)."""

    @classmethod
    def of_rows(cls, rows: Sequence[Mapping], n: int) -> Decisions:
        P = len(rows) // n

        def col(key: str, dtype: type) -> np.ndarray:
            return np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=dtype).reshape(P, n)

        return cls(col("correct", bool), col("abstained", bool), col("p", float))

    def answered(self, threshold: float | None) -> Bool[np.ndarray, "P N"]:
        """Where a sample answers: it did not abstain, and (with a threshold) its answer's probability reaches it."""
        keep = ~self.abstained_PN
        return keep if threshold is None else keep & (np.nan_to_num(self.p_PN, nan=-1.0) >= threshold)


def fitted_threshold(d: Decisions, fit_rows: np.ndarray, utility: Utility) -> float:
    """The threshold on p with the best mean utility on the fitting problems' answering samples."""
    sel = ~d.abstained_PN[fit_rows] & np.isfinite(d.p_PN[fit_rows])
    if not sel.any():
        return np.nextafter(1.0, 2.0)
    return best_threshold(d.p_PN[fit_rows][sel], d.correct_PN[fit_rows][sel], utility)


def payoff_stats(payoff: np.ndarray, answered: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """Mean utility, share answered, accuracy of the answers."""
    n = answered.sum()
    return {
        "utility": float(payoff.mean()),
        "answer_rate": float(answered.mean()),
        "answer_accuracy": float((correct & answered).sum() / n) if n else np.nan,
    }


def utility_arms(
    direct: Sequence[Decisions], symmetric: Sequence[Decisions], fit_rows: np.ndarray, utility: Utility
) -> tuple[dict, list[float]]:
    """Per arm, each seed's (payoff, answered, correct) arrays: the utility-trained runs as sampled, and the
    symmetric runs under each of DECISIONS. Returns them with the symmetric runs' fitted thresholds."""

    def arrays(d: Decisions, t: float | None):
        answered = d.answered(t)
        return utility.of(answered, d.correct_PN), answered, d.correct_PN

    thresholds = [fitted_threshold(d, fit_rows, utility) for d in symmetric]
    arms = {"direct (utility reward)": [arrays(d, None) for d in direct]}
    arms["post hoc: " + DECISIONS[0]] = [arrays(d, None) for d in symmetric]
    arms["post hoc: " + DECISIONS[1]] = [arrays(d, utility.threshold) for d in symmetric]
    arms["post hoc: " + DECISIONS[2]] = [arrays(d, t) for d, t in zip(symmetric, thresholds)]
    return arms, thresholds


def utility_table(
    arms: Mapping[str, Sequence[tuple]], rows: np.ndarray, level: float, n_boot: int, seed: int
) -> dict[str, dict]:
    return seeds_then_rows(
        arms, rows, payoff_stats, reference="direct (utility reward)", level=level, n_boot=n_boot, seed=seed
    )


def verdict(
    tables: Mapping[str, Mapping[str, dict]], features: Mapping[str, Mapping[str, dict]], level: float
) -> tuple[str, str]:
    """(class, sentence): does thresholding a symmetric-trained model (fitted threshold) beat training on the
    utility directly, per split, and what happened to the computation underneath."""
    head, classes = [], []
    for split, table in tables.items():
        d = table["post hoc: " + DECISIONS[2]]["utility"]["diff"]
        classes.append("post_hoc_better" if d["ci"][0] > 0 else "direct_better" if d["ci"][1] < 0 else "no_difference")
        head.append(f"{split}: utility, post hoc minus direct, {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    feats = []
    for name, table in features.items():
        d = table[SYMMETRIC][name]["diff"]
        feats.append(f"{name} {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    cls = classes[0] if len(set(classes)) == 1 else "mixed"
    lead = {
        "post_hoc_better": "Training on the symmetric reward and thresholding its answer probability beat training on "
        "the utility directly",
        "direct_better": "Training on the utility directly beat thresholding a symmetric-trained model",
        "no_difference": "Thresholding a symmetric-trained model and training on the utility directly did not differ "
        "in utility",
        "mixed": "Thresholding a symmetric-trained model against training on the utility directly differed between "
        "splits",
    }[cls]
    return cls, (
        f"{lead} ({'; '.join(head)}); feature acquisition, symmetric minus utility-trained: "
        f"{', '.join(feats)} ({level:.1%} intervals over seeds and problems)."
    )


def feature_tables(
    reads: Mapping[str, Mapping], seeds: Sequence[int], splits: Mapping[str, np.ndarray], level: float, n_boot: int
) -> dict[str, dict]:
    """Symmetric against utility-trained runs: forced-deliberate accuracy per split (paired on problems), and the
    computation probe's test accuracy (one value per seed)."""

    def runs(arm: str, key: str):
        return [(np.asarray(reads[f"{arm}/seed{s}"][key], dtype=float).reshape(-1),) for s in seeds]

    out = {}
    for name, rows in splits.items():
        stat = f"forced-deliberate accuracy, {name}"
        out[stat] = seeds_then_rows(
            {a: runs(a, "forced_deliberate") for a in (DIRECT, SYMMETRIC)},
            rows,
            lambda x, stat=stat: {stat: float(x.mean())},
            reference=DIRECT,
            level=level,
            n_boot=n_boot,
        )
    stat = "computation probe accuracy"
    probe = {a: [(np.array([reads[f"{a}/seed{s}"]["probe"]["accuracy"]]),) for s in seeds] for a in (DIRECT, SYMMETRIC)}
    out[stat] = seeds_then_rows(
        probe, np.array([0]), lambda x: {stat: float(x.mean())}, reference=DIRECT, level=level, n_boot=n_boot
    )
    return out


@dataclasses.dataclass(frozen=True)
class UtilityResult(JsonFields):
    """results.json: the utility study's numbers and verdict."""

    preset: str
    band: str
    seeds: list[int]
    payoffs: list[float]
    """Payoffs of a right answer, a wrong one and an abstention."""
    threshold_theory: float
    """The probability above which answering pays (right for a calibrated probability)."""
    thresholds_fitted: list[float]
    """Per seed, the symmetric run's threshold fitted on the even-numbered held-out problems."""
    k_train_max: int
    """The largest knob in pretraining: the splits are k up to it (in distribution) and above it (beyond)."""
    level: float
    """Interval level (95% Bonferroni-adjusted over the five comparisons)."""
    splits: dict[str, dict[str, dict]]
    """Per split (odd-numbered held-out problems) and arm: utility, answer rate and accuracy of the answers, with
    intervals and differences from the direct arm."""
    features: dict[str, dict[str, dict]]
    """Feature acquisition (``feature_tables``): per measure, each trained arm with its interval."""
    base: dict[str, float]
    """Per split, the base model's sampled accuracy."""
    probe_controls: dict[str, dict[str, float]]
    """Per model: the computation probe's accuracy, its accuracy on shuffled labels, and the majority baseline."""
    verdict_class: str
    """post_hoc_better, direct_better, no_difference or mixed."""
    verdict: str


def analyse(
    reads: Mapping[str, Mapping],
    k_P: np.ndarray,
    k_train_max: int,
    *,
    preset: str,
    band: str,
    seeds: Sequence[int],
    eval_samples: int,
    payoffs: Sequence[float],
    level: float,
    n_boot: int,
) -> UtilityResult:
    """Every number of the study from what was read of each model (``base`` and ``<arm>/seed<s>``: its sampled
    ``rows``, ``forced_deliberate`` correctness per problem and ``probe`` accuracies); ``k_P`` is each held-out
    problem's knob. Thresholds are fitted on the even-numbered held-out problems, utilities measured on the others."""
    utility = Utility(*payoffs)
    decisions = {m: Decisions.of_rows(r["rows"], eval_samples) for m, r in reads.items()}
    fit_rows, eval_rows = np.arange(0, k_P.size, 2), np.arange(1, k_P.size, 2)
    arms, thresholds = utility_arms(
        [decisions[f"{DIRECT}/seed{s}"] for s in seeds],
        [decisions[f"{SYMMETRIC}/seed{s}"] for s in seeds],
        fit_rows,
        utility,
    )
    splits = in_and_beyond(k_P, k_train_max, eval_rows)
    tables = {name: utility_table(arms, rows, level, n_boot, seed=i) for i, (name, rows) in enumerate(splits.items())}
    every_row = in_and_beyond(k_P, k_train_max)
    features = feature_tables(reads, seeds, {name: every_row[name] for name in splits}, level, n_boot)
    cls, sentence = verdict(tables, features, level)
    controls = {m: {k: r["probe"][k] for k in ("accuracy", "shuffled_accuracy", "majority")} for m, r in reads.items()}
    return UtilityResult(
        preset=preset,
        band=band,
        seeds=list(seeds),
        payoffs=list(payoffs),
        threshold_theory=utility.threshold,
        thresholds_fitted=thresholds,
        k_train_max=k_train_max,
        level=level,
        splits=tables,
        features=features,
        base={name: float(decisions["base"].correct_PN[rows].mean()) for name, rows in splits.items()},
        probe_controls=controls,
        verdict_class=cls,
        verdict=sentence,
    )
