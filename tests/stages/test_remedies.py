"""The remedies study end to end on a copy of the smoke band study."""

import json
import shutil

import numpy as np
import pytest
from entry_points import run_entry, single_error_line

from experiments import remedies
from experiments.analysis.remedies_results import RemediesResult
from experiments.band_steps import attribution
from experiments.harness.cli import preset_args
from experiments.harness.rundir import write_json
from experiments.harness.studies import remedy_reads
from experiments.harness.training import rl
from probes.layout import METRICS, RUN_ARGS, RunLayout, read_json, read_jsonl


def test_remedies__smoke_trains_each_remedy_reuses_the_band_runs_and_resumes(remedies_study, tmp_path, monkeypatch):
    run, res, band_files = remedies_study
    args = preset_args(remedies.RemediesArgs, remedies.PRESETS, "smoke", run=run, executor="local")
    out = RunLayout(run).remedies

    plan = remedies.plan(args)
    passed = read_json(plan.sae / "features.json")["causal"]["checks"]["deliberation"]["passed"]
    assert ("shaping" in res.arms) == passed and ("shaping" in res.not_run) == (not passed)
    assert list(res.arms) == [a for a in remedies.ARMS if a not in res.not_run]
    for arm, field, value in (("reverse", "reverse_curriculum", 0.5), ("more_samples", "group_size", 10)):
        for seed in plan.seeds:
            g = plan.runs[arm][seed]
            assert g.out.is_relative_to(out.root) and read_json(g.out / RUN_ARGS)[field] == value
    # plain and medium are the band study's own runs, their matched points and gain attributions reused as they were
    assert {p: p.read_bytes() for p in band_files} == band_files
    study = read_json(run / "results.json")
    ours = [study["seeds"].index(s) for s in plan.seeds]  # the smoke preset's 2 of the band study's 4
    hits = {b: sum(r["matched_hit"][i] for i in ours) for b, r in study["bands"].items()}
    assert (res.hits["plain"], res.hits["medium"]) == (hits["hard"], hits["medium"])
    assert res.target == study["matched_gain_target"]
    for arm in ("reverse", "more_samples"):  # a remedy run that hits the target is attributed at its matched point
        for i, g in enumerate(plan.runs[arm].values()):
            hit = (g.out / "gain_attribution.json").is_file()
            assert np.isfinite(res.per_seed[arm]["share/deliberation"][i]) == hit, (arm, i)
    assert [c["name"] for c in res.useful] == ["reverse vs plain"] + (["shaping vs more_samples"] if passed else [])
    for arm, by_seed in plan.runs.items():  # each arm's numbers are its own runs'
        for i, g in enumerate(by_seed.values()):
            evals = [r for r in read_jsonl(g.out / METRICS) if "eval/acc/all/sampled" in r]
            assert res.per_seed[arm]["gain"][i] == evals[-1]["eval/acc/all/sampled"] - evals[0]["eval/acc/all/sampled"]
        assert all(0 <= d <= 1 for d in res.per_seed[arm]["damage"]), arm

    on_disk = json.loads(out.results.read_text())
    write_json(tmp_path / "again.json", RemediesResult.from_json(on_disk).to_json())
    assert (tmp_path / "again.json").read_bytes() == out.results.read_bytes()
    assert (out.figures / "remedies.png").stat().st_size > 1000 and res.verdict in out.report.read_text()

    monkeypatch.setattr(rl, "policy_update", lambda *a: pytest.fail("retrained a run"))
    monkeypatch.setattr(remedy_reads, "load_hf", lambda *a: pytest.fail("read a model again"))
    monkeypatch.setattr(attribution, "attribute_gain", lambda *a: pytest.fail("attributed a gain again"))
    written = out.results.read_bytes()
    again = remedies.main(args)
    assert out.results.read_bytes() == written and again.verdict == res.verdict


def test_remedies__refuses_a_run_without_a_finished_band_study_in_one_line(smoke_run):
    line = single_error_line(run_entry("remedies", "--preset", "smoke", "--run", str(smoke_run)))
    assert "no finished band study" in line


def test_remedies__refuses_an_unknown_arm_in_one_line(tmp_path):
    line = single_error_line(run_entry("remedies", "--run", str(tmp_path), "--arms", "plain", "magic"))
    assert "arms" in line and not any(tmp_path.iterdir())


def test_remedies__a_confirmed_group_pays_the_shaped_runs_against_the_more_samples_control(remedies_study, tmp_path):
    """The smoke SAE's deliberation group fails its check, so the study leaves shaping out; marked as passed here (a
    planted confirmation), the shaped runs train with it and report how much of their reward it paid."""
    run = tmp_path / "run"
    shutil.copytree(remedies_study[0], run)
    args = preset_args(remedies.RemediesArgs, remedies.PRESETS, "smoke", run=run, executor="local")
    features = remedies.plan(args).sae / "features.json"
    record = read_json(features)
    record["causal"]["checks"]["deliberation"]["passed"] = True
    write_json(features, record)
    res = remedies.main(args)
    assert "shaping" in res.arms and not res.not_run
    assert [c["name"] for c in res.useful] == ["reverse vs plain", "shaping vs more_samples"]
    for g in remedies.plan(args).runs["shaping"].values():
        assert read_json(g.out / RUN_ARGS)["shaping"] == str(features)
        shares = [r["shaping/bonus_share"] for r in read_jsonl(g.out / METRICS) if "shaping/bonus_share" in r]
        assert len(shares) == g.steps and all(0 <= s < 1 for s in shares)
    assert 0 <= res.shaping["bonus_share"]["mean"] < 1
    assert {m["name"].split(": ")[1] for m in res.mechanism} == {"deliberation", "mode"}
