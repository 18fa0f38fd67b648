"""How the reports print a number with its interval, one way everywhere."""

from __future__ import annotations

import math


def interval(mean: float, lo: float, hi: float, fmt: str = "+.3f") -> str:
    """``mean [lo, hi]``; "n/a" for a missing mean; an interval of no width at this precision (every value equal,
    e.g. no problem changed) reads "(no spread)" instead of a ``[x, x]`` that looks like certainty."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if float(f"{lo:{fmt}}") == float(f"{hi:{fmt}}"):  # -0.000 and +0.000 are one value
        return f"{mean:{fmt}} (no spread)"
    return f"{mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"
