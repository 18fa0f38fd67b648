import json

import pytest

from experiments import bands
from probes.bands import band_of, ledger_pass_rates, relabel, stale_fraction, transitions


@pytest.mark.parametrize(
    "rate, band", [(0.0, "hard"), (0.125, "hard"), (0.126, "medium"), (0.5, "medium"), (0.749, "medium"), (0.75, "easy"), (1.0, "easy")]
)
def test_band_of__default_thresholds(rate, band):
    assert band_of(rate, hard_max=1 / 8, easy_min=3 / 4) == band


def test_draw_pools__equal_sizes_capped_by_smallest_band_and_disjoint():
    labels = ["easy"] * 10 + ["medium"] * 4 + ["hard"] * 7
    pools = bands.draw_pools(labels, size=6, seed=0)
    assert {b: len(v) for b, v in pools.items()} == {"easy": 4, "medium": 4, "hard": 4}
    for b, idx in pools.items():
        assert all(labels[i] == b for i in idx)
    assert pools == bands.draw_pools(labels, size=6, seed=0)


def test_bands__smoke_table_is_relative_to_the_model(smoke_run):
    table = json.loads((smoke_run / "bands" / "table.json").read_text())
    sizes = {b: len(v) for b, v in table["pools"].items()}
    assert len(set(sizes.values())) == 1 and sizes["easy"] > 0
    th = table["thresholds"]
    for rec in table["eval_set"] + [r for pool in table["pools"].values() for r in pool]:
        assert rec["band"] == band_of(rec["pass_rate"], th["hard_max"], th["easy_min"])
    comp = table["composition"]["candidates"]
    assert sum(sum(c.values()) for c in comp.values()) == len({r["pid"] for r in table["eval_set"]}) * 2
    # the smoke base answers k = 1 directly and fails beyond its pretraining range
    assert comp["easy"].get("1", 0) > 0 and comp["hard"].get("5", 0) > 0


def test_bands__empty_band_is_a_clear_error():
    with pytest.raises(ValueError, match="band 'easy' is empty"):
        bands.draw_pools(["hard", "medium"], size=4, seed=0)


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
