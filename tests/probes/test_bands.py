"""Bands as functions of pass rates, and their drift."""

import math

import pytest

from probes.bands import band_of, ledger_pass_rates, relabel, stale_fraction, stale_fractions, transitions


@pytest.mark.parametrize(
    "rate, band",
    [
        (0.0, "hard"),
        (0.125, "hard"),
        (0.126, "medium"),
        (0.5, "medium"),
        (0.749, "medium"),
        (0.75, "easy"),
        (1.0, "easy"),
    ],
)
def test_band_of__default_thresholds(rate, band):
    assert band_of(rate, hard_max=1 / 8, easy_min=3 / 4) == band


def test_ledger_pass_rates__pool_visits_inside_the_window():
    ledger = [
        {"step": 1, "pid": "a", "successes": 0, "group_size": 8},
        {"step": 5, "pid": "a", "successes": 4, "group_size": 8},
        {"step": 6, "pid": "a", "successes": 8, "group_size": 8},
        {"step": 6, "pid": "b", "successes": 1, "group_size": 8},
    ]
    assert ledger_pass_rates(ledger, step=6, window=2) == {"a": 0.75, "b": 0.125}
    assert ledger_pass_rates(ledger, step=1, window=1) == {"a": 0.0}


def test_transitions__and_stale_fraction():
    before = {"a": "medium", "b": "medium", "c": "hard", "d": "easy"}
    after = relabel({"a": 0.9, "b": 0.5, "c": 0.2, "e": 0.0}, hard_max=1 / 8, easy_min=3 / 4)
    table = transitions(before, after)
    assert table["medium"] == {"easy": 1, "medium": 1, "hard": 0}
    assert table["hard"] == {"easy": 0, "medium": 1, "hard": 0}
    assert stale_fraction(before, after, "medium") == 0.5
    assert stale_fraction(before, after, "easy") != stale_fraction(before, after, "easy")  # nan: d not re-measured


def test_stale_fractions__per_run_share_of_the_band_that_moved():
    static = {"a": "medium", "b": "medium", "c": "hard"}
    runs = [
        [
            {"step": 4, "pid": "a", "successes": 8, "group_size": 8},
            {"step": 4, "pid": "b", "successes": 4, "group_size": 8},
        ],
        [{"step": 1, "pid": "a", "successes": 8, "group_size": 8}],  # visited only before the window
    ]
    got = stale_fractions(runs, static, "medium", step=4, window=2, hard_max=1 / 8, easy_min=3 / 4)
    assert got[0] == 0.5 and math.isnan(got[1])
