import dataclasses
import json

import numpy as np
import pytest

from experiments import pretrain, trace_length
from experiments.analysis.trace_length_results import TraceLengthResult, TraceRow
from experiments.harness.cli import preset_args
from experiments.harness.rundir import write_json
from experiments.trace_length import PRESETS, TraceLengthArgs
from probes.layout import RunDirError, RunLayout, read_json


def test_summarise__a_planted_decoupling_shows_as_a_gap_above_zero():
    """In distribution the trace is as long as the problem needs; beyond it, its length is noise."""
    rng = np.random.default_rng(0)
    sets = trace_length.settings({"task": "arith", "p": 5, "ops": ["+"], "k_train_max": 3, "k_eval_max": 5}, ())
    rows = []
    for s in sets:
        for k in s.ks:
            for _ in range(40):
                d = k if s.name != "beyond, pooled" else k
                noise = rng.integers(4, 20) if s.axis == "knob" else 3 * d + 1
                rows.append(TraceRow("base", s.name, "", k, d, int(noise), 3 * d + 1, True, True))
    out = {s.setting: s for s in trace_length.summarise(rows, sets, n_boot=300, seed=0)}
    assert [s.name for s in sets] == ["in distribution", "beyond, pooled", "k = 4", "k = 5"]
    assert out["in distribution"].rho.mean == 1.0
    gap = out["beyond, pooled"].gap_to_in_distribution
    assert gap.ci[0] > 0.5 and gap.level == pytest.approx(1 - 0.05 / 3)  # Bonferroni over 3 settings
    assert out["k = 4"].constant_difficulty and np.isnan(out["k = 4"].rho.mean)  # one k: nothing to rank


def test_trace_length__maze_run_end_to_end(tmp_path, monkeypatch):
    """A maze base model (a few steps: mechanics, not competence) through the study: every setting
    measured, the json, table and figure written; a rerun only re-summarises the cached rows."""
    run = tmp_path / "maze"
    pretrain.main(preset_args(pretrain.PretrainArgs, pretrain.PRESETS, "maze-smoke", out=run, steps=20, eval_per_k=2))
    args = dataclasses.replace(preset_args(TraceLengthArgs, PRESETS, "smoke", run=run), per_setting=6, n_boot=50)
    result = trace_length.main(args)
    res = result.runs[0]
    names = [s.setting for s in res.settings]
    assert (
        names == ["in distribution", "k = 5", "loops 0.3", "loops 0.6"] and res.task["task"] == "maze"
    )  # maze-smoke: side 3, then 5
    assert len(res.rows) == 6 * len(names)
    assert all(r.canonical == 5 * r.difficulty for r in res.rows)  # five words per A* op
    assert {r.k for r in res.rows if r.setting == "k = 5"} == {5}
    out = RunLayout(run).trace_length
    written = read_json(out / "trace_length.json")
    assert (out / "trace_length.png").exists() and [s["setting"] for s in written["runs"][0]["settings"]] == names
    write_json(tmp_path / "again.json", TraceLengthResult.from_json(written).to_json())  # read back, written again
    assert (tmp_path / "again.json").read_bytes() == (out / "trace_length.json").read_bytes()
    monkeypatch.setattr(trace_length, "measure", lambda *a, **k: pytest.fail("re-measured"))
    assert json.dumps(trace_length.main(args).to_json()) == json.dumps(result.to_json())


def test_trace_length__a_run_without_a_base_model_stops_before_writing_anything(tmp_path, smoke_run):
    for args in (
        TraceLengthArgs(run=tmp_path / "nothing"),
        TraceLengthArgs(run=smoke_run, also=(tmp_path / "nothing",)),
    ):
        before = sorted(p.name for p in smoke_run.iterdir())
        with pytest.raises(RunDirError, match="no finished base model"):
            trace_length.main(args)
        assert not (tmp_path / "nothing").exists() and sorted(p.name for p in smoke_run.iterdir()) == before


def test_by_band__change_from_base_per_band_over_its_seeds():
    after = {
        "bands/hard/seed0": {"beyond": 0.1},
        "bands/hard/seed1": {"beyond": 0.0},
        "bands/easy/seed0": {"beyond": 0.6},
        "bands/easy/seed1": {"beyond": float("nan")},
    }
    out = trace_length.by_band({"beyond": 0.2}, after)
    assert list(out) == ["easy", "hard"]  # band order, not name order
    assert out["hard"]["beyond"].change.mean == pytest.approx(-0.15) and out["hard"]["beyond"].rho == [0.1, 0.0]
    assert out["easy"]["beyond"].change.n == 1 and out["easy"]["beyond"].mean == 0.6  # an undefined rho is no seed
