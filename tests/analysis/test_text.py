import math

from experiments.analysis.text import interval


def test_interval__mean_and_bounds_no_spread_and_missing():
    assert interval(0.1234, 0.1, 0.15) == "+0.123 [+0.100, +0.150]"
    assert interval(0.0, 0.0, 0.0) == "+0.000 (no spread)"
    assert interval(0.0, -0.0001, 0.0002) == "+0.000 (no spread)"  # equal at the printed precision
    assert interval(0.5, 0.4, 0.6, fmt=".2f") == "0.50 [0.40, 0.60]"
    assert interval(math.nan, 0.0, 1.0) == "n/a" and interval(None, 0.0, 1.0) == "n/a"
