"""What the value study's correlations can claim: ceilings, corrected tests, leakage, score stability.

* **Ceilings.** Value is a mean over seeds; its reliability is the Spearman-Brown reliability of
  that mean, and sqrt of it is the largest correlation an error-free metric could reach. Each
  correlation is also reported disattenuated (divided by that square root).
* **Corrected tests.** Every difficulty metric is tested against value over all problems and
  inside each band label, by permutation; the family (metric x stratum) is Holm-corrected and
  only corrected results count in the verdict. Target-aware gradient estimates see the eval
  set value is measured on, so they are reported beside the family, not in it.
* **Leakage.** The target-aware and blind gradient estimates are compared on the same problems
  (a paired bootstrap of the difference of their correlations with value).
* **Supervised scores.** How many problems a scoring run ever learns, how forgetting counts are
  spread, and how the scores' correlations move with the read step and the presentations counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from experiments.harness.tasks.family import MODES
from probes.bands import BANDS
from probes.difficulty import forgetting_events
from probes.stats import Reliability, disattenuated, holm, paired_spearman_difference, reliability, spearman, spearman_p

ALPHA = 0.05
STRATA = ("all", *BANDS)
"""Where each metric is tested: over all problems, and inside each band label."""
N_PERM = 9999
"""Permutations per test: the smallest p, 1e-4, survives Holm over a family of up to 500."""
PRESENTATION_STRIDES = (4, 2, 1)
"""Forgetting is also counted over every 4th and every 2nd presentation (sensitivity)."""


def value_runs(cols: Mapping[str, np.ndarray], seeds: Sequence[int], target: str = "value") -> np.ndarray:
    """(seeds, problems): the per-seed measurements behind a seed-averaged target."""
    return np.stack([cols[f"{target}@seed{s}"] for s in seeds])


def _rel_dict(r: Reliability) -> dict:
    return {"single": r.single.as_dict(), "of_mean": r.of_mean.as_dict(), "ceiling": r.ceiling.as_dict(), "m": r.m}


def ceilings(cols: Mapping[str, np.ndarray], seeds: Sequence[int], bands: Sequence[str], n_boot: int) -> dict:
    """Reliability of the seed-mean value and damage over all problems, and of value in each band.
    Empty with one seed."""
    if len(seeds) < 2:
        return {}
    arr, runs = np.asarray(bands), value_runs(cols, seeds)
    return {
        "value": _rel_dict(reliability(runs, n_boot)),
        "damage": _rel_dict(reliability(value_runs(cols, seeds, "damage"), n_boot)),
        "value_within_bands": {b: _rel_dict(reliability(runs[:, arr == b], n_boot)) for b in BANDS},
    }


def _stratum(bands: Sequence[str], stratum: str) -> np.ndarray:
    arr = np.asarray(bands)
    return np.ones(arr.size, bool) if stratum == "all" else arr == stratum


def tests(
    cols: Mapping[str, np.ndarray],
    metrics: Sequence[str],
    family: Sequence[str],
    seeds: Sequence[int],
    bands: Sequence[str],
    n_boot: int,
) -> dict[str, dict[str, dict]]:
    """Per metric and stratum: Spearman rho with value (bootstrap CI), its permutation p, the Holm-adjusted
    p over the family (None outside it), and the rho disattenuated by value's reliability there."""
    out: dict[str, dict[str, dict]] = {}
    runs_SN = value_runs(cols, seeds)
    for m in metrics:
        out[m] = {}
        for s in STRATA:
            sel = _stratum(bands, s)
            x, y = cols[m][sel], cols["value"][sel]
            dis = disattenuated(x, runs_SN[:, sel], n_boot) if len(seeds) > 1 else None
            out[m][s] = {
                **spearman(x, y, n_boot).as_dict(),
                "p": spearman_p(x, y, N_PERM),
                "p_holm": None,
                "disattenuated": dis.as_dict() if dis else None,
            }
    keys = [(m, s) for m in family for s in STRATA]
    for (m, s), adj in zip(keys, holm([out[m][s]["p"] for m, s in keys])):
        out[m][s]["p_holm"] = adj
    return out


def survivors(table: Mapping[str, Mapping[str, dict]], corrected: bool = True) -> list[tuple[str, str]]:
    """The family's (metric, stratum) tests that reject at ALPHA (Holm-adjusted, or raw for ``corrected=False``)."""
    key = "p_holm" if corrected else "p"
    return [
        (m, s) for m, per in table.items() for s, t in per.items() if t.get("p_holm") is not None and t[key] <= ALPHA
    ]


def leakage(cols: Mapping[str, np.ndarray], n_boot: int) -> dict[str, dict]:
    """Per gradient estimate: rho with value of the target-aware and the blind variant, and their
    paired difference (how much of the target-aware correlation seeing the answer bought)."""
    out = {}
    for name in ("grad_cos", "grad_adam"):
        aware, blind = cols[f"{name}/target_aware"], cols[f"{name}/blind"]
        out[name] = {
            "target_aware": spearman(aware, cols["value"], n_boot).as_dict(),
            "blind": spearman(blind, cols["value"], n_boot).as_dict(),
            "difference": paired_spearman_difference(aware, blind, cols["value"], n_boot).as_dict(),
        }
    return out


def forgetting(sft: Sequence[Mapping], stride: int = 1) -> dict[str, np.ndarray]:
    """Per mode: forgetting events counted over every ``stride``-th presentation, the median over
    scoring runs (a run that never learns a problem counts inf, which ranks last)."""
    return {
        m: np.median([forgetting_events(np.array(run[f"correct/{m}"])[:, ::stride]) for run in sft], 0) for m in MODES
    }


def supervised(sft: Sequence[Mapping], cols: Mapping[str, np.ndarray], read_steps: Sequence[int], n_boot: int) -> dict:
    """How stable the supervised scores are: problems ever learned, the forgetting-count spread, and
    each score's rho with value per read step and per presentations counted."""
    learned = {m: float(np.mean([np.array(run[f"correct/{m}"]).any(1) for run in sft])) for m in MODES}
    counts = forgetting(sft)
    spread = {
        m: {("inf" if np.isinf(v) else str(int(v))): int(n) for v, n in zip(*np.unique(c, return_counts=True))}
        for m, c in counts.items()
    }
    by_step = {
        str(step): {
            f"{name}/{m}": spearman(
                np.mean([run[f"{name}/{m}@{step}"] for run in sft], 0), cols["value"], n_boot
            ).as_dict()
            for name in ("el2n", "grand")
            for m in MODES
        }
        for step in read_steps
    }
    n_pres = len(sft[0][f"correct/{MODES[0]}"][0])
    by_pres = {
        str(len(range(0, n_pres, s))): {
            f"forgetting/{m}": spearman(c, cols["value"], n_boot).as_dict() for m, c in forgetting(sft, s).items()
        }
        for s in PRESENTATION_STRIDES
    }
    return {"ever_learned": learned, "forgetting_counts": spread, "by_read_step": by_step, "by_presentations": by_pres}
