"""The trace-length study's typed result: its JSON round trip and the figure drawn from what was read back."""

import json
import math

from experiments.analysis.trace_length_report import plot
from experiments.analysis.trace_length_results import (
    BandCell,
    Gap,
    RunLengths,
    SettingSummary,
    TraceLengthResult,
    TraceRow,
)
from experiments.harness.rundir import write_json
from probes.layout import read_json
from probes.stats import Estimate

NAN = math.nan


def summary(setting: str, axis: str, rho: Estimate, gap: Gap, ks: list[int]) -> SettingSummary:
    return SettingSummary(
        setting, axis, float(len(ks) - 1), ks, 4, rho, gap, math.isnan(rho.mean), 7.0, 7.5, 2.0, 0.75, 0.5
    )


def planted_result() -> TraceLengthResult:
    """One run with band runs: the in-distribution setting (no gap to itself), one beyond it and one of constant
    difficulty (no rho), and a band whose runs' rho is undefined on that one."""
    sets = [
        summary("in distribution", "none", Estimate(0.9, (0.7, 1.0), 4), Gap(NAN, (NAN, NAN), 0.975), [1, 2]),
        summary("beyond, pooled", "knob", Estimate(0.1, (-0.5, 0.6), 4), Gap(0.8, (0.2, 1.4), 0.975), [3, 4]),
        summary("k = 3", "knob", Estimate(NAN, (NAN, NAN), 4), Gap(NAN, (NAN, NAN), 0.975), [3]),
    ]
    after = {"bands/hard/seed0": sets, "bands/hard/seed1": sets}
    by_band = {
        "hard": {
            "in distribution": BandCell([0.9, 0.9], 0.9, Estimate(0.0, (0.0, 0.0), 2)),
            "beyond, pooled": BandCell([0.1, 0.1], 0.1, Estimate(0.0, (0.0, 0.0), 2)),
            "k = 3": BandCell([NAN, NAN], NAN, Estimate(NAN, (NAN, NAN), 0)),
        }
    }
    rows = [
        TraceRow("base", s.setting, f"p{i}", k, k, 3 * k + 1 + i % 2, 3 * k + 1, i % 2 == 0, i % 3 != 0)
        for s in sets
        for i, k in enumerate(s.knobs * 2)
    ]
    return TraceLengthResult(
        [RunLengths("runs/smoke", {"task": "arith", "p": 5, "ops": ["+"]}, 2, sets, after, by_band, rows)]
    )


def test_trace_length_result__round_trips_through_its_json(tmp_path):
    """Equal from its own JSON; written to disk (nan as null), read back and written again byte for byte; the figure
    draws from what was read back."""
    r = planted_result()
    assert TraceLengthResult.from_json(r.to_json()) == r
    write_json(tmp_path / "trace_length.json", r.to_json())
    back = TraceLengthResult.from_json(read_json(tmp_path / "trace_length.json"))
    run = back.runs[0]
    assert math.isnan(run.settings[0].gap_to_in_distribution.mean) and math.isnan(run.by_band["hard"]["k = 3"].rho[0])
    assert json.dumps(back.to_json()) == json.dumps(r.to_json())
    write_json(tmp_path / "again.json", back.to_json())
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "trace_length.json").read_bytes()
    plot(back, tmp_path / "trace_length.png")
    assert (tmp_path / "trace_length.png").stat().st_size > 1000


def test_trace_length_result__to_json_keeps_the_written_layout():
    """trace_length.json's keys, in order, as the study wrote them before it had a typed result."""
    run = planted_result().to_json()["runs"][0]
    assert list(run) == ["run", "task", "k_train_max", "settings", "after_rl", "by_band", "rows"]
    assert list(run["settings"][1]) == [
        "setting",
        "axis",
        "distance",
        "knobs",
        "n",
        "rho",
        "gap_to_in_distribution",
        "constant_difficulty",
        "mean_generated",
        "mean_canonical",
        "mean_difficulty",
        "valid_trace_rate",
        "accuracy",
    ]
    assert list(run["settings"][1]["rho"]) == ["mean", "ci95", "n"] and list(
        run["settings"][1]["gap_to_in_distribution"]
    ) == ["mean", "ci", "level"]
    assert list(run["by_band"]["hard"]["in distribution"]) == ["rho", "mean", "change"]
    assert list(run["rows"][0]) == [
        "model",
        "setting",
        "pid",
        "k",
        "difficulty",
        "generated",
        "canonical",
        "valid_trace",
        "correct",
    ]
