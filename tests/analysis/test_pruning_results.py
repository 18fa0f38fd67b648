"""The pruning study's typed result: its JSON round trip (the study's own run is read back in tests/stages)."""

import json
import math

from experiments.analysis.pruning_results import Analysis, Design, power_law, verdict
from experiments.harness.rundir import write_json
from probes.layout import read_json


def planted_analysis() -> Analysis:
    """One size only, and random pruning without error there: the power law has one point, so no fit (nan)."""
    d = Design(
        sizes=(40,),
        fractions=(0.5, 1.0),
        headline="el2n",
        metrics=("k",),
        other_fractions=(0.5,),
        other_sizes=(40,),
        seeds=(0, 1),
        rl_fractions=(0.5,),
        rl_seeds=(0,),
        n_boot=50,
    )
    cell = {"mean": 0.1, "ci": [0.0, 0.2]}
    table = [
        {
            "size": 40,
            "fraction": f,
            "kept": round(40 * f),
            "metric": m,
            "policy": p,
            "acc": 1.0 if p == "random" else 0.5,
            "ci": [0.4, 0.6],
            "vs_random": cell,
            "composition": {"deliberate": 0.5, "k": 2.0},
        }
        for m, p, f in [("all", "all", 1.0), *d.grid(40)]
    ]
    crossover = [
        {
            "metric": "el2n",
            "fraction": 0.5,
            "size": 40,
            "hard_minus_easy": 0.1,
            "ci": [-0.1, 0.3],
            "level": 0.975,
            "headline": True,
        }
    ]
    text, cls = verdict(crossover, table, d)
    return Analysis(d, table, crossover, power_law(table), [], [1, 2], text, cls)


def test_analysis__round_trips_through_its_json(tmp_path):
    a = planted_analysis()
    assert math.isnan(a.power_law["b"])
    assert Analysis.from_json(a.to_json()) == a
    write_json(tmp_path / "results.json", a.to_json())
    back = Analysis.from_json(read_json(tmp_path / "results.json"))
    assert back.design == a.design and math.isnan(back.power_law["b"])  # tuples and nan again
    assert json.dumps(back.to_json()) == json.dumps(a.to_json())
    write_json(tmp_path / "again.json", back.to_json())
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "results.json").read_bytes()
