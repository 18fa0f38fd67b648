"""The value study's numbers: per-example table, metric-value correlations, the value curve
over base pass rate, band drift and one-sample degeneration. Computed, never hand-written."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from experiments.analysis.value_inference import STRATA, ceilings, forgetting, leakage, supervised, survivors, tests
from experiments.harness.tasks.family import MODES
from probes.bands import BANDS, band_of, ledger_pass_rates, relabel, stale_fraction, stale_fractions, transitions
from probes.difficulty import learnability, ledger_scores, memorization
from probes.stats import binned_means, bootstrap_mean, quadratic_fit, spearman

BEHAVIOURS = ("accuracy", "mean_length", "direct_rate", "copied_answer_rate", "skipped_step_rate")
"""Rollout behaviour compared between a one-sample run's first and last update."""

PASS_RATE_EDGES = (0.0, 1 / 8, 3 / 8, 5 / 8, 7 / 8, 1.0)
"""Bins of base pass rate for the value curve."""

METRICS = {
    "k": "chain length (intrinsic difficulty)",
    "pass_rate": "base pass rate (fresh samples)",
    "learnability": "base p(1-p)",
    "band_label_pass_rate": "pass rate behind the band label (bands/table.json)",
    "length": "base mean generated length (tokens)",
    "trace_length": "base mean length of its deliberate completions",
    "loss/deliberate": "base loss, deliberate completion",
    "loss/direct": "base loss, direct answer",
    "el2n/deliberate": "EL2N early in SFT, deliberate",
    "el2n/direct": "EL2N early in SFT, direct",
    "grand/deliberate": "GraNd early in SFT, deliberate",
    "grand/direct": "GraNd early in SFT, direct",
    "forgetting/deliberate": "forgetting events in SFT, deliberate (median over runs, never learned = inf)",
    "forgetting/direct": "forgetting events in SFT, direct (median over runs, never learned = inf)",
    "ledger/learnability": "mean p(1-p) over its band-run visits",
    "ledger/pass_rate_end": "pass rate at its last band-run visit",
    "ledger/forgetting": "solved->unsolved flips over band-run visits (never solved = inf)",
    "grad_cos/blind": "cosine(example GRPO gradient, validation-set policy gradient), independent rollouts",
    "grad_adam/blind": "validation gain of Adam's first step on the example (first order), independent rollouts",
    "grad_cos/target_aware": "cosine(example gradient, policy gradient of the eval set value is measured on), value "
    "run's rollouts",
    "grad_adam/target_aware": "eval gain of Adam's first step on the example, value run's own rollouts",
    "memorization": "own pass rate trained with - without it (GRPO on random halves)",
}
"""Difficulty metrics and value estimates, in report order."""

GRADIENT_METRICS = ("grad_cos/blind", "grad_adam/blind", "grad_cos/target_aware", "grad_adam/target_aware")
TARGET_AWARE = ("grad_cos/target_aware", "grad_adam/target_aware")
"""Estimates that see the eval set value is measured on: reported, never counted as difficulty metrics."""

TARGETS = ("value", "damage")
"""What the metrics are correlated with."""


def _mean_over(runs: Sequence[Sequence[float]]) -> np.ndarray:
    return np.mean(np.array(runs, dtype=float), axis=0)


def example_table(sample, base, sft, shots, grads, memo, ledgers, score_step: int) -> dict[str, np.ndarray]:
    """One column per metric or value, one entry per sampled problem (nan where unmeasured); EL2N and
    GraNd are read at ``score_step`` of the scoring runs."""
    pids = [r["pid"] for r in sample]
    cols: dict[str, np.ndarray] = {
        "k": np.array([r["k"] for r in sample], float),
        "pass_rate": np.array(base["pass_rate"]),
        "learnability": learnability(base["pass_rate"]),
        "band_label_pass_rate": np.array([r["pass_rate"] for r in sample]),
        "length": np.array(base["length"]),
        "trace_length": np.array(base["trace_length"], float),
    }
    for mode in MODES:
        cols[f"loss/{mode}"] = np.array(base[f"loss/{mode}"])
        for name in ("el2n", "grand"):
            cols[f"{name}/{mode}"] = _mean_over([run[f"{name}/{mode}@{score_step}"] for run in sft])
    cols |= {f"forgetting/{m}": c for m, c in forgetting(sft).items()}
    scores = ledger_scores([lg for runs in ledgers.values() for lg in runs])
    for key in ("learnability", "pass_rate_end", "forgetting"):
        cols[f"ledger/{key}"] = np.array([scores.get(pid, {}).get(key, math.nan) for pid in pids])
    for key in GRADIENT_METRICS:
        cols[key] = np.array([g[key] for g in grads])
    if memo:
        cols["memorization"] = memorization(
            np.array([m["inside"] for m in memo]), np.array([m["pass_rate"] for m in memo])
        )
    by_pid = [{r["pid"]: r for r in rows} for rows in shots.values()]
    for key in ("value", "value_greedy", "damage", "repair", *(f"value/{b}" for b in BANDS)):
        per_seed = np.array(
            [[runs[pid].get(key, math.nan) if pid in runs else math.nan for pid in pids] for runs in by_pid]
        )
        cols[key] = np.nanmean(per_seed, 0) if per_seed.size else np.full(len(pids), math.nan)
        for i, seed in enumerate(shots):
            cols[f"{key}@seed{seed}"] = per_seed[i]
    return cols


def correlations(cols: Mapping[str, np.ndarray], n_boot: int) -> dict[str, dict]:
    """Spearman rho (bootstrap CI, n) of every available metric with value and with damage."""
    return {m: {t: spearman(cols[m], cols[t], n_boot).as_dict() for t in TARGETS} for m in METRICS if m in cols}


def by_band(cols: Mapping[str, np.ndarray], bands: Sequence[str]) -> dict[str, dict]:
    """Per static band: mean value, damage and eval-band changes with bootstrap CIs over problems."""
    arr = np.asarray(bands)
    keys = ("value", "value_greedy", "damage", "repair", *(f"value/{b}" for b in BANDS))
    return {b: {k: bootstrap_mean(cols[k][(arr == b) & np.isfinite(cols[k])]).as_dict() for k in keys} for b in BANDS}


def value_curve(cols: Mapping[str, np.ndarray], n_boot: int) -> dict:
    fit = quadratic_fit(cols["pass_rate"], cols["value"], n_boot)
    return {
        "bins": binned_means(cols["pass_rate"], cols["value"], PASS_RATE_EDGES),
        "damage_bins": binned_means(cols["pass_rate"], cols["damage"], PASS_RATE_EDGES),
        "curvature": fit.curvature.as_dict(),
        "vertex": fit.vertex.as_dict(),
        "coef": list(fit.coef),
        "inverted_u": bool(fit.curvature.ci95[1] < 0 and 0 < fit.vertex.mean < 1),
    }


def drift(
    ledgers: Mapping[str, Sequence[Sequence[dict]]], table: dict, window: int, base_rates: Mapping[str, float]
) -> dict:
    """How fast pool problems leave their static band during their band's GRPO runs.

    At each step N (every ``window`` steps) a problem's band is re-read from the ledger's
    groups sampled in (N - window, N]; ``stale`` is the fraction no longer in the static
    band (mean over runs). ``label_noise`` is the same fraction at the base model, from
    fresh base samples of the value-study sample: what re-measuring alone changes."""
    th = table["thresholds"]
    out: dict[str, dict] = {}
    for band in BANDS:
        static = {r["pid"]: band for r in table["pools"][band]}
        noise = {
            pid: band_of(rate, th["hard_max"], th["easy_min"]) for pid, rate in base_rates.items() if pid in static
        }
        curve, trans = [], {}
        last = max((row["step"] for lg in ledgers.get(band, []) for row in lg), default=0)
        for step in range(window, last + 1, window):
            fracs = stale_fractions(ledgers[band], static, band, step, window, th["hard_max"], th["easy_min"])
            curve.append(
                {
                    "step": step,
                    "stale": float(np.nanmean(fracs)),
                    "measured": float(np.mean([len(ledger_pass_rates(lg, step, window)) for lg in ledgers[band]])),
                }
            )
            trans = transitions(
                static, relabel(ledger_pass_rates(ledgers[band][0], step, window), th["hard_max"], th["easy_min"])
            )
        out[band] = {
            "curve": curve,
            "transitions_first_run_last_window": trans,
            "label_noise": stale_fraction({p: band for p in noise}, noise, band),
            "label_noise_n": len(noise),
        }
    return out


def degeneration(shots: Mapping[int, list[dict]], sample: Sequence[dict], base_behaviour: Mapping[str, float]) -> dict:
    """Per band, rollout behaviour at a one-sample run's first vs last update, eval behaviour
    after it, and the share of runs that never saw a reward difference (no update at all)."""
    band_of_pid = {r["pid"]: r["band"] for r in sample}
    out = {}
    for band in BANDS:
        rows = [r for runs in shots.values() for r in runs if band_of_pid.get(r["pid"]) == band]
        if not rows:
            continue
        inert = [all(x in (0.0, 1.0) for x in r["reward"]) for r in rows]
        out[band] = {
            "runs": len(rows),
            "inert_frac": float(np.mean(inert)),
            "reward_curve": np.mean([r["reward"] for r in rows], 0).tolist(),
            **{
                f"rollout/{b}": {
                    "first": _nanmean([r["behaviour_first"].get(b) for r in rows]),
                    "last": _nanmean([r["behaviour_last"].get(b) for r in rows]),
                }
                for b in BEHAVIOURS
            },
            **{
                f"eval/{b}": {
                    "base": base_behaviour.get(b, math.nan),
                    "after": _nanmean([r["eval_behaviour"].get(b) for r in rows]),
                }
                for b in BEHAVIOURS
            },
        }
    return out


def _nanmean(xs) -> float:
    a = np.array([math.nan if x is None else x for x in xs], dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else math.nan


def _best(ests: Mapping[str, dict]) -> str | None:
    """The metric with the largest |rho| (None when none is finite)."""
    finite = {m: abs(e["mean"]) for m, e in ests.items() if np.isfinite(e["mean"])}
    return max(finite, key=finite.get) if finite else None


def _rho(e: dict) -> str:
    return f"{e['mean']:+.2f} [{e['ci95'][0]:+.2f}, {e['ci95'][1]:+.2f}]"


def _p(t: dict) -> str:
    return f"Holm p = {t['p_holm']:.3f}" if t.get("p_holm") is not None else f"p = {t['p']:.3f}, outside the family"


def verdict(tested: dict, rel: dict, leak: dict, curve: dict, bands: dict, degen: dict) -> str:
    """One sentence from the numbers: the best difficulty metric against value's ceiling, how many tests
    survive Holm, inside the medium band, what seeing the eval set buys the gradient estimate, the
    curve's shape, and what hard problems are worth."""
    family = [m for m in tested if m not in TARGET_AWARE]
    best = _best({m: tested[m]["all"] for m in family})
    if best is None:
        return "No metric could be correlated with value (too few measured problems)."
    t = tested[best]["all"]
    text = f"The best difficulty metric for one-sample value is {best} (Spearman {_rho(t)}, {_p(t)}, n = {t['n']}"
    if rel:
        text += (
            f"; disattenuated {_rho(t['disattenuated'])}, against a ceiling of {rel['value']['ceiling']['mean']:.2f} "
            f"for value's {rel['value']['m']}-seed mean"
        )
    n_tests = len(family) * len(STRATA)
    text += (
        f"); {len(survivors(tested))} of {n_tests} metric x stratum tests survive Holm's correction "
        f"({len(survivors(tested, False))} uncorrected)"
    )
    best_mid = _best({m: tested[m]["medium"] for m in family})
    if best_mid is not None:
        ceiling = f", ceiling {rel['value_within_bands']['medium']['ceiling']['mean']:.2f}" if rel else ""
        text += (
            f"; inside the medium band{ceiling}, the best is {best_mid} ({_rho(tested[best_mid]['medium'])}, "
            f"{_p(tested[best_mid]['medium'])})"
        )
    g = leak["grad_cos"]
    text += (
        f"; gradient alignment that sees the eval set reaches {_rho(g['target_aware'])} against {_rho(g['blind'])} "
        f"blind (difference {_rho(g['difference'])})"
    )
    cv = curve["curvature"]
    text += (
        f"; value is an inverted U in base pass rate (peak near {curve['vertex']['mean']:.2f}, curvature {_rho(cv)})"
        if curve["inverted_u"]
        else f"; value is not an inverted U in base pass rate (curvature {_rho(cv)})"
    )
    hard = bands["hard"]["value"]
    inert = degen.get("hard", {}).get("inert_frac", math.nan)
    return text + (
        f"; hard problems are worth {hard['mean']:+.3f} [{hard['ci95'][0]:+.3f}, {hard['ci95'][1]:+.3f}] "
        f"held-out accuracy ({inert:.0%} of their one-sample runs never updated)."
    )


@dataclasses.dataclass(frozen=True)
class ValueInputs:
    """Everything the value study measured, as its stages wrote it."""

    sample: list[dict]
    """Band-pool records of the sampled problems (with their band)."""
    base: dict
    """Base-model pass rates, lengths, losses and eval results (value/base.json)."""
    sft: list[dict]
    """One record per supervised scoring run (value/sft/seed<s>.json)."""
    shots: dict[int, list[dict]]
    """One-sample runs per value seed (value/one_shot/seed<v>.jsonl)."""
    grads: list[dict]
    """Gradient alignment per problem (value/grad.json)."""
    memo: list[dict]
    """Memorization runs on random halves (value/memo/subset<r>.json); empty when skipped."""
    ledgers: dict[str, list[list[dict]]]
    """Band runs' ledgers per band."""
    table: dict
    """bands/table.json."""


@dataclasses.dataclass(frozen=True)
class ValueSettings:
    """The study settings the analysis reports and uses."""

    preset: str
    value_seeds: tuple[int, ...]
    sft_seeds: tuple[int, ...]
    one_shot_steps: int
    drift_window: int
    n_boot: int
    score_step: int
    """Read step of the headline EL2N and GraNd."""
    read_steps: tuple[int, ...]
    """Every read step of the scoring runs (the sensitivity table's rows)."""


@dataclasses.dataclass(frozen=True)
class ValueStudyResult:
    """value/results.json: what the value study showed (nested records are plain JSON)."""

    preset: str
    n_problems: int
    value_seeds: list[int]
    sft_seeds: list[int]
    one_shot_steps: int
    score_step: int
    """Read step of the headline EL2N and GraNd in the scoring runs."""
    has_ledgers: bool
    correlations: dict
    """Per metric and target (value, damage): Spearman rho estimate (uncorrected)."""
    tests: dict
    """Per metric and stratum (all, easy, medium, hard): rho with value, permutation p, Holm-adjusted p over
    the difficulty metrics' family (None for target-aware estimates), and rho disattenuated by value's reliability."""
    survivors: list
    """(metric, stratum) tests that reject at 0.05 after Holm's correction."""
    reliability: dict
    """Seed-to-seed rho, the Spearman-Brown reliability of the seed mean and its ceiling (value and damage over
    all problems, value within each band); empty with one seed."""
    leakage: dict
    """Per gradient estimate: rho with value, target-aware vs blind, and their paired difference."""
    supervised: dict
    """Supervised scores' stability: problems ever learned, forgetting counts, rho per read step and presentations."""
    value_curve: dict
    by_band: dict
    drift: dict
    degeneration: dict
    verdict: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> ValueStudyResult:
        return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class ValueAnalysis:
    """The result plus the per-problem table behind it (for examples.json and the figures)."""

    result: ValueStudyResult
    cols: dict[str, np.ndarray]
    bands: list[str]
    examples: list[dict]
    """One JSON-ready row per problem (value/examples.json)."""


def analyse(inputs: ValueInputs, settings: ValueSettings) -> ValueAnalysis:
    """Every number of the value study, computed from what its stages measured."""
    x, n_boot = inputs, settings.n_boot
    cols = example_table(x.sample, x.base, x.sft, x.shots, x.grads, x.memo, x.ledgers, settings.score_step)
    bands, seeds = [r["band"] for r in x.sample], list(x.shots)
    corr = correlations(cols, n_boot)
    metrics = [m for m in METRICS if m in cols]
    tested = tests(cols, metrics, [m for m in metrics if m not in TARGET_AWARE], seeds, bands, n_boot)
    rel = ceilings(cols, seeds, bands, n_boot)
    leak = leakage(cols, n_boot)
    curve = value_curve(cols, n_boot)
    per_band = by_band(cols, bands)
    degen = degeneration(x.shots, x.sample, x.base["eval"]["behaviour"])
    drifted = drift(
        x.ledgers, x.table, settings.drift_window, {r["pid"]: v for r, v in zip(x.sample, x.base["pass_rate"])}
    )
    res = ValueStudyResult(
        settings.preset,
        len(x.sample),
        list(settings.value_seeds),
        list(settings.sft_seeds),
        settings.one_shot_steps,
        settings.score_step,
        any(x.ledgers.values()),
        corr,
        tested,
        survivors(tested),
        rel,
        leak,
        supervised(x.sft, cols, settings.read_steps, n_boot),
        curve,
        per_band,
        drifted,
        degen,
        verdict(tested, rel, leak, curve, per_band, degen),
    )
    examples = [
        {"pid": r["pid"], "band": r["band"], "chain": _chain(r), **{k: _plain(v[i]) for k, v in cols.items()}}
        for i, r in enumerate(x.sample)
    ]
    return ValueAnalysis(res, cols, bands, examples)


def _chain(rec: dict) -> str:
    """The problem as its prompt writes it, e.g. "3 + 4 * 2"."""
    return " ".join([str(rec["start"]), *(f"{op} {x}" for op, x in zip(rec["ops"], rec["operands"]))])


def _plain(x) -> float | None:
    """JSON value of a table cell: inf (never learned) is written as the string "inf"."""
    x = float(x)
    return "inf" if x == math.inf else (None if math.isnan(x) else x)  # type: ignore[return-value]
