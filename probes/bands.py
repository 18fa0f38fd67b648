"""Difficulty bands as functions of pass rates, and their drift over training.

Bands are relative to a model: a problem's band is read off its pass rate under that
model, so a band label goes stale as the model trains. These functions re-estimate
membership from the GRPO ledger (the groups sampled during training) or from any
re-measured pass rates, and count how labels moved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Literal

Band = Literal["easy", "medium", "hard"]
BANDS: tuple[Band, ...] = ("easy", "medium", "hard")
COLORS: dict[Band, str] = {"easy": "#009E73", "medium": "#E69F00", "hard": "#0072B2"}
"""One colour per band, in every figure and notebook (Okabe-Ito: bluish green, orange, blue, told apart with any
colour vision)."""


def check_runs(band: str, seeds: Sequence[int]) -> None:
    """A study's band and GRPO seeds, or a ValueError naming the bad field."""
    if band not in BANDS:
        raise ValueError(f"band: must be one of {', '.join(BANDS)}, got {band!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: need distinct seeds, got {tuple(seeds)}")


def band_of(pass_rate: float, hard_max: float, easy_min: float) -> Band:
    """hard if pass_rate <= hard_max, easy if >= easy_min, else medium."""
    if pass_rate <= hard_max:
        return "hard"
    return "easy" if pass_rate >= easy_min else "medium"


def ledger_pass_rates(ledger: Sequence[Mapping], step: int, window: int) -> dict[str, float]:
    """Per prompt, the pooled success rate of its groups sampled in steps (step - window, step].

    Prompts not visited in the window are absent: the ledger only knows what was sampled.
    """
    successes: dict[str, int] = defaultdict(int)
    trials: dict[str, int] = defaultdict(int)
    for row in ledger:
        if step - window < row["step"] <= step:
            successes[row["pid"]] += row["successes"]
            trials[row["pid"]] += row["group_size"]
    return {pid: successes[pid] / trials[pid] for pid in trials}


def relabel(pass_rates: Mapping[str, float], hard_max: float, easy_min: float) -> dict[str, Band]:
    return {pid: band_of(rate, hard_max, easy_min) for pid, rate in pass_rates.items()}


def transitions(before: Mapping[str, Band], after: Mapping[str, Band]) -> dict[str, dict[str, int]]:
    """Counts of problems moving from each band (rows) to each band (columns), over shared pids."""
    table = {a: dict.fromkeys(BANDS, 0) for a in BANDS}
    for pid in before.keys() & after.keys():
        table[before[pid]][after[pid]] += 1
    return table


def stale_fraction(before: Mapping[str, Band], after: Mapping[str, Band], band: Band) -> float:
    """Of the problems labelled ``band`` before, the fraction no longer in it after (nan if none)."""
    shared = [pid for pid in before.keys() & after.keys() if before[pid] == band]
    return sum(after[pid] != band for pid in shared) / len(shared) if shared else float("nan")


def stale_fractions(
    ledgers: Sequence[Sequence[Mapping]],
    static: Mapping[str, Band],
    band: Band,
    step: int,
    window: int,
    hard_max: float,
    easy_min: float,
) -> list[float]:
    """Per run's ledger: of the problems statically labelled ``band``, the fraction whose pass
    rate over steps (step - window, step] puts them in another band (nan: none measured)."""
    now = [relabel(ledger_pass_rates(lg, step, window), hard_max, easy_min) for lg in ledgers]
    return [stale_fraction(static, n, band) for n in now]
