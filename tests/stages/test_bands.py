"""The bands stage: pass rates under the base model, equal pools, a clear error for an empty band."""

import json

import pytest

from experiments import bands, pretrain
from probes.bands import band_of


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
    k_eval_max = pretrain.PRESETS["smoke"]["k_eval_max"]
    assert sum(sum(c.values()) for c in comp.values()) == bands.PRESETS["smoke"]["candidates_per_k"] * k_eval_max
    # the smoke base answers k = 1 directly and fails beyond its pretraining range
    assert comp["easy"].get("1", 0) > 0 and comp["hard"].get("5", 0) > 0


def test_bands__empty_band_is_a_clear_error():
    with pytest.raises(ValueError, match="band 'easy' is empty"):
        bands.draw_pools(["hard", "medium"], size=4, seed=0)
