"""The calibration study end to end on a smoke run pretrained with stated confidences."""

import json

import pytest

from experiments import calibration
from experiments.analysis.calibration_results import CalibrationResult
from experiments.harness.cli import preset_args
from experiments.harness.rundir import write_json
from experiments.harness.training import rl
from probes.layout import RUN_ARGS, RunDirError, RunLayout


def test_calibration__smoke_trains_every_variant_and_reports_each_split(signals_run, monkeypatch, tmp_path):
    args = preset_args(calibration.CalibrationArgs, calibration.PRESETS, "smoke", run=signals_run)
    res = calibration.main(args)
    out = RunLayout(signals_run).calibration(args.band)
    on_disk = json.loads(out.results.read_text())
    assert on_disk["verdict"] == res.verdict
    assert res.verdict_class in ("no_trade_off", "trade_off", "no_calibration_gain", "mixed")
    write_json(tmp_path / "again.json", CalibrationResult.from_json(on_disk).to_json())  # read back, written again
    assert (tmp_path / "again.json").read_bytes() == out.results.read_bytes()
    assert set(res.splits) == {"in distribution", "beyond"}
    for table in res.splits.values():
        assert list(table) == ["base", "binary", "brier", "log"]
        for row in table.values():
            assert 0 <= row["accuracy"]["mean"] <= 1 and row["ece"]["ci"][0] <= row["ece"]["ci"][1]
        assert table["binary"]["ece"]["diff"]["mean"] == 0.0  # the reference against itself
    for reward in args.rewards:  # each variant trained with its own reward, in its own directory
        for seed in args.seeds:
            g = args.grpo_args(reward, seed)
            assert json.loads((g.out / RUN_ARGS).read_text())["reward"] == reward and g.out.is_relative_to(out.root)
    assert (out.figures / "reliability.png").stat().st_size > 1000 and res.verdict in out.report.read_text()
    monkeypatch.setattr(rl, "policy_update", lambda *a: pytest.fail("retrained a run"))
    again = calibration.main(args)  # resumes from the runs and the cached samples
    assert json.dumps(again.splits) == json.dumps(res.splits)


def test_calibration__refuses_a_run_without_stated_confidences(smoke_run):
    with pytest.raises(RunDirError, match="without --confidence"):
        calibration.main(preset_args(calibration.CalibrationArgs, calibration.PRESETS, "smoke", run=smoke_run))
