"""The utility study's decisions and statistics: each arm's payoff on held-out problems, the post-hoc
threshold, feature acquisition, and the computed verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from jaxtyping import Bool, Float

from probes.calibration import Utility, best_threshold
from probes.stats import seeds_then_rows

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
        col = lambda key, dtype: np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=dtype).reshape(P, n)  # noqa: E731
        return cls(col("correct", bool), col("abstained", bool), col("p", float))

    def answered(self, threshold: float | None) -> Bool[np.ndarray, "P N"]:
        """Where a sample answers: it did not abstain, and (with a threshold) its answer's probability reaches it."""
        keep = ~self.abstained_PN
        return keep if threshold is None else keep & (np.nan_to_num(self.p_PN, nan=-1.0) >= threshold)


def fitted_threshold(d: Decisions, fit_rows: np.ndarray, utility: Utility) -> float:
    """The threshold on p with the best mean utility on the fitting problems' answering samples."""
    sel = ~d.abstained_PN[fit_rows] & np.isfinite(d.p_PN[fit_rows])
    return best_threshold(d.p_PN[fit_rows][sel], d.correct_PN[fit_rows][sel], utility) if sel.any() else np.nextafter(1.0, 2.0)


def payoff_stats(payoff: np.ndarray, answered: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """Mean utility, share answered, accuracy of the answers."""
    n = answered.sum()
    return {"utility": float(payoff.mean()), "answer_rate": float(answered.mean()),
            "answer_accuracy": float((correct & answered).sum() / n) if n else np.nan}  # fmt: skip


def utility_arms(direct: Sequence[Decisions], symmetric: Sequence[Decisions], fit_rows: np.ndarray, utility: Utility) -> tuple[dict, list[float]]:
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


def utility_table(arms: Mapping[str, Sequence[tuple]], rows: np.ndarray, level: float, n_boot: int, seed: int) -> dict[str, dict]:
    return seeds_then_rows(arms, rows, payoff_stats, reference="direct (utility reward)", level=level, n_boot=n_boot, seed=seed)


def verdict(tables: Mapping[str, Mapping[str, dict]], features: Mapping[str, Mapping[str, dict]], level: float) -> tuple[str, str]:
    """(class, sentence): does thresholding a symmetric-trained model (fitted threshold) beat training on the
    utility directly, per split, and what happened to the computation underneath."""
    head, classes = [], []
    for split, table in tables.items():
        d = table["post hoc: " + DECISIONS[2]]["utility"]["diff"]
        classes.append("post_hoc_better" if d["ci"][0] > 0 else "direct_better" if d["ci"][1] < 0 else "no_difference")
        head.append(f"{split}: utility, post hoc minus direct, {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    feats = []
    for name, table in features.items():
        d = table["symmetric"][name]["diff"]
        feats.append(f"{name} {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    cls = classes[0] if len(set(classes)) == 1 else "mixed"
    lead = {"post_hoc_better": "Training on the symmetric reward and thresholding its answer probability beat training on the utility directly",
            "direct_better": "Training on the utility directly beat thresholding a symmetric-trained model",
            "no_difference": "Thresholding a symmetric-trained model and training on the utility directly did not differ in utility",
            "mixed": "Thresholding a symmetric-trained model against training on the utility directly differed between splits"}[cls]  # fmt: skip
    return cls, (f"{lead} ({'; '.join(head)}); feature acquisition, symmetric minus utility-trained: {', '.join(feats)} "
                 f"({level:.1%} intervals over seeds and problems).")  # fmt: skip
