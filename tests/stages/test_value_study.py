import json
import math
import shutil
import time

import numpy as np
import pytest
import torch

from experiments import value_study
from experiments.analysis.value_results import METRICS, degeneration, drift, verdict
from experiments.harness.cli import preset_args
from experiments.harness.model import build_tokenizer
from experiments.harness.one_shot import EvalResult, alignment, one_shot, value_of
from experiments.harness.rl import PolicySpec
from experiments.harness.sft_scores import presentation_steps, scoring_run, target_batch
from experiments.harness.supervised import Recipe
from experiments.harness.task import TaskSpec, completion_words, generate_problems
from probes.layout import RunDirError, read_json
from probes.models import load_hf, load_tokenizer


@pytest.fixture(scope="module")
def value_run(smoke_study, tmp_path_factory):
    """A copy of the smoke band study's base, bands (with ledgers) and config, then the smoke value study."""
    src = smoke_study[0]
    run = tmp_path_factory.mktemp("value") / "run"
    for part in ("base", "bands"):
        shutil.copytree(src / part, run / part)
    shutil.copy(src / "config.json", run / "config.json")
    start = time.perf_counter()
    res = value_study.main(preset_args(value_study.ValueArgs, value_study.PRESETS, "smoke", run=run))
    return run, res, time.perf_counter() - start


def test_value_study__smoke_writes_results_report_and_examples(value_run):
    run, res, seconds = value_run
    assert seconds < 60
    out = run / "value"
    on_disk = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert set(on_disk["correlations"]) == set(METRICS)  # every metric, memorization included in smoke
    for c in on_disk["correlations"].values():
        for target in ("value", "damage"):
            e = c[target]
            assert e["mean"] is None or e["ci95"][0] - 1e-9 <= e["mean"] <= e["ci95"][1] + 1e-9
    examples = json.loads((out / "examples.json").read_text())
    assert len(examples) == 3 * 4 and {e["band"] for e in examples} == {"easy", "medium", "hard"}
    assert all(-1 <= e["value"] <= 1 and 0 <= e["damage"] <= 1 for e in examples)
    assert on_disk["has_ledgers"] and on_disk["drift"]["medium"]["curve"]
    assert on_disk["verdict"] in (out / "report.md").read_text()
    for fig in ("value_vs_pass_rate", "correlations", "drift", "one_shot_behaviour"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000


def test_value_study__rerun_resumes_without_repeating_runs(value_run):
    run, res, _ = value_run
    before = (run / "value" / "one_shot" / "seed0.jsonl").read_text()
    again = value_study.main(preset_args(value_study.ValueArgs, value_study.PRESETS, "smoke", run=run))
    assert (run / "value" / "one_shot" / "seed0.jsonl").read_text() == before
    assert json.dumps(again, sort_keys=True, default=str) == json.dumps(res, sort_keys=True, default=str)


def test_value_study__one_shot_rows_are_reproducible(value_run):
    """A lost line of one_shot/*.jsonl is recomputed to the same numbers."""
    run, _, _ = value_run
    path = run / "value" / "one_shot" / "seed1.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    value_study.main(preset_args(value_study.ValueArgs, value_study.PRESETS, "smoke", run=run))
    assert json.loads(path.read_text().splitlines()[-1]) == json.loads(lines[-1])


def test_value_study__needs_bands_table(tmp_path):
    with pytest.raises(RunDirError, match="table.json"):
        value_study.main(value_study.ValueArgs(run=tmp_path))


def test_value_args__rejects_bad_values():
    with pytest.raises(ValueError, match="per_band"):
        value_study.ValueArgs(per_band=0)
    with pytest.raises(ValueError, match="presentations"):
        value_study.ValueArgs(sft_steps=4, presentations=5)
    with pytest.raises(ValueError, match="score_step"):
        value_study.ValueArgs(sft_steps=400, score_step=401)


def test_one_shot__all_equal_rewards_leave_the_model_unchanged(smoke_run):
    """Near-greedy sampling makes every group's completions identical, so every advantage is
    zero: GRPO on the problem must not move a single weight."""
    model, ref, tok = load_hf(smoke_run / "base"), load_hf(smoke_run / "base"), load_tokenizer(smoke_run / "base")
    problem = generate_problems(3, 5, 1, TaskSpec(p=5, ops=("+",)))[0]
    policy = PolicySpec(prompts_per_step=2, group_size=3, temperature=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace = one_shot(model, ref, tok, [problem], 0, 0, policy, steps=2)
    assert all(r in (0.0, 1.0) for r in trace["reward"])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_value_of__accuracy_change_damage_and_repair():
    base = EvalResult(np.array([True, True, False, False]), np.array([1.0, 0.5, 0.0, 0.0]), {})
    after = EvalResult(np.array([True, False, True, False]), np.array([1.0, 0.0, 0.5, 0.5]), {})
    v = value_of(after, base, ["easy", "easy", "hard", "hard"])
    assert v["value"] == pytest.approx(0.125) and v["value_greedy"] == 0.0
    assert v["value/easy"] == pytest.approx(-0.25) and v["value/hard"] == pytest.approx(0.5)
    assert v["damage"] == 0.5 and v["repair"] == 0.5


def test_alignment__cosine_and_adam_step_gain():
    g_eval = torch.tensor([1.0, -2.0, 0.0])
    a = alignment(torch.tensor([2.0, -4.0, 0.0]), g_eval)
    assert a["grad_cos"] == pytest.approx(1.0) and a["grad_adam"] == pytest.approx(1.0)
    b = alignment(torch.tensor([-1.0, -1.0, 5.0]), g_eval)
    assert b["grad_adam"] == pytest.approx((-1 + 2) / 3)
    assert alignment(torch.zeros(3), g_eval) == {"grad_cos": 0.0, "grad_adam": 0.0}


def test_presentation_steps__each_example_once_per_epoch():
    when = presentation_steps(7, 12, 3)
    assert when.shape == (7, 3) and when.max() < 12
    for e in range(3):
        assert ((when[:, e] >= 4 * e) & (when[:, e] < 4 * (e + 1))).all()


def test_target_batch__labels_are_the_completion_only():
    spec = TaskSpec(p=5, ops=("+",))
    vocab = build_tokenizer(spec).get_vocab()
    problems = generate_problems(0, 1, 1, spec) + generate_problems(0, 3, 1, spec)
    ids, labels = target_batch(problems, "deliberate", vocab)
    inv = {i: w for w, i in vocab.items()}
    for row, pr in enumerate(problems):
        targets = [inv[int(t)] for t in labels[row] if t != -100]
        assert targets == completion_words(pr, "deliberate")


def test_drift__stale_fraction_from_ledger_windows():
    table = {"thresholds": {"hard_max": 0.125, "easy_min": 0.75},
             "pools": {"easy": [], "hard": [], "medium": [{"pid": "a"}, {"pid": "b"}]}}  # fmt: skip
    ledger = [{"step": 1, "pid": "a", "successes": 4, "group_size": 8}, {"step": 1, "pid": "b", "successes": 4, "group_size": 8},
              {"step": 2, "pid": "a", "successes": 8, "group_size": 8}, {"step": 2, "pid": "b", "successes": 3, "group_size": 8}]  # fmt: skip
    d = drift({"easy": [], "medium": [ledger], "hard": []}, table, 1, {"a": 0.5, "b": 1.0})
    assert [c["stale"] for c in d["medium"]["curve"]] == [0.0, 0.5]
    assert d["medium"]["label_noise"] == 0.5 and d["medium"]["transitions_first_run_last_window"]["medium"]["easy"] == 1
    assert d["easy"]["curve"] == [] and math.isnan(d["easy"]["label_noise"])


def test_degeneration__inert_runs_and_first_last_behaviour():
    row = {"behaviour_first": {"mean_length": 10.0}, "behaviour_last": {"mean_length": 2.0}, "eval_behaviour": {}}
    shots = {0: [{"pid": "h1", "reward": [0.0, 0.0], **row}, {"pid": "h2", "reward": [0.0, 0.25], **row}]}
    d = degeneration(shots, [{"pid": "h1", "band": "hard"}, {"pid": "h2", "band": "hard"}], {})
    assert set(d) == {"hard"} and d["hard"]["inert_frac"] == 0.5
    assert d["hard"]["rollout/mean_length"] == {"first": 10.0, "last": 2.0}
    assert d["hard"]["reward_curve"] == [0.0, 0.125]


def test_value_study__sample_keeps_band_and_pool_records(value_run):
    run, _, _ = value_run
    sample = read_json(run / "value" / "sample.json")
    pools = read_json(run / "bands" / "table.json")["pools"]
    for rec in sample:
        assert any(r["pid"] == rec["pid"] for r in pools[rec["band"]])


def test_scoring_run__reproducible_and_training_lowers_el2n(smoke_run):
    pre = Recipe.of(read_json(smoke_run / "config.json")["stages"]["pretrain"])
    problems = generate_problems(5, 2, 4, pre.task)
    at_init = scoring_run(pre, 0, problems, 4, 2, score_step=0)
    assert at_init == scoring_run(pre, 0, problems, 4, 2, score_step=0)
    assert np.array(at_init["correct/deliberate"]).shape == (4, 2)
    trained = scoring_run(pre, 0, problems, 80, 4, score_step=80)
    for mode in ("deliberate", "direct"):
        assert all(0 <= x <= math.sqrt(2) for x in trained[f"el2n/{mode}"]) and all(
            g > 0 for g in trained[f"grand/{mode}"]
        )
        assert np.mean(trained[f"el2n/{mode}"]) < np.mean(at_init[f"el2n/{mode}"])
        assert np.mean(trained[f"loss/{mode}"]) < np.mean(at_init[f"loss/{mode}"])
    with pytest.raises(ValueError, match="score_step"):
        scoring_run(pre, 0, problems, 4, 2, score_step=5)


def _est(mean, lo, hi, n=30):
    return {"mean": mean, "ci95": [lo, hi], "n": n}


def test_verdict__names_best_metrics_and_curve_shape_from_numbers():
    corr = {"k": {"value": _est(-0.2, -0.5, 0.1)}, "grad_cos": {"value": _est(0.6, 0.4, 0.8)}}
    within = {"k": {"medium": _est(-0.5, -0.7, -0.2)}, "grad_cos": {"medium": _est(0.1, -0.2, 0.4)}}
    rel = {"value": _est(0.9, 0.8, 0.95), "value_within_bands": {"medium": _est(0.7, 0.5, 0.8)}}
    curve = {"curvature": _est(-0.1, -0.3, 0.05), "vertex": _est(0.5, 0.3, 0.7), "inverted_u": False}
    bands = {"hard": {"value": _est(-0.01, -0.02, 0.0)}}
    text = verdict(corr, within, rel, curve, bands, {"hard": {"inert_frac": 0.25}})
    assert "predictor of one-sample value is grad_cos (Spearman +0.60" in text and "1 of 2 metrics" in text
    assert "medium band, reliability 0.70, the best is k (-0.50" in text
    assert "not an inverted U" in text and "25% of their one-sample runs never updated" in text
