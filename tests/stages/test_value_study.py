import json
import math
import shutil

import numpy as np
import pytest
import torch

from experiments import value_study
from experiments.analysis.value_results import METRICS, TARGET_AWARE, ValueStudyResult, degeneration, drift, verdict
from experiments.harness import seeds
from experiments.harness.cli import preset_args
from experiments.harness.rundir import write_json
from experiments.harness.studies.one_shot import EvalResult, EvalSet, alignment, one_shot, value_of
from experiments.harness.studies.sft_scores import presentation_steps, scoring_run, target_batch
from experiments.harness.tasks.arith import Arithmetic, TaskSpec, completion_words, generate_problems
from experiments.harness.training.model import build_tokenizer
from experiments.harness.training.rl import PolicySpec
from experiments.harness.training.supervised import Recipe
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
    res = value_study.main(preset_args(value_study.ValueArgs, value_study.PRESETS, "smoke", run=run))
    return run, res


def test_value_study__smoke_writes_results_report_and_examples(value_run, tmp_path):
    run, res = value_run
    out = run / "value"
    on_disk = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    write_json(tmp_path / "again.json", ValueStudyResult.from_json(on_disk).to_json())  # read back, written again
    assert (tmp_path / "again.json").read_bytes() == (out / "results.json").read_bytes()
    assert set(on_disk["correlations"]) == set(METRICS)  # every metric, memorization included in smoke
    for c in on_disk["correlations"].values():
        for target in ("value", "damage"):
            e = c[target]
            assert e["mean"] is None or e["ci95"][0] - 1e-9 <= e["mean"] <= e["ci95"][1] + 1e-9
    examples = json.loads((out / "examples.json").read_text())
    assert len(examples) == 3 * 4 and {e["band"] for e in examples} == {"easy", "medium", "hard"}
    assert all(-1 <= e["value"] <= 1 and 0 <= e["damage"] <= 1 for e in examples)
    assert on_disk["has_ledgers"] and on_disk["drift"]["medium"]["curve"]
    assert set(on_disk["tests"]) == set(METRICS) and all(
        set(t) == {"all", "easy", "medium", "hard"} for t in on_disk["tests"].values()
    )
    assert all(t["p_holm"] is None for m in TARGET_AWARE for t in on_disk["tests"][m].values())
    assert {"single", "of_mean", "ceiling"} <= set(on_disk["reliability"]["value"]) and on_disk["reliability"]["value"][
        "m"
    ] == 2
    assert set(on_disk["leakage"]) == {"grad_cos", "grad_adam"}
    assert set(on_disk["supervised"]["by_read_step"]) == {"2", "6"} and set(
        on_disk["supervised"]["by_presentations"]
    ) == {"1", "2", "4"}
    assert "Holm" in (out / "report.md").read_text() and "Spearman-Brown" in (out / "report.md").read_text()
    assert on_disk["verdict"] in (out / "report.md").read_text()
    for fig in ("value_vs_pass_rate", "correlations", "drift", "one_shot_behaviour"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000


def test_value_study__rerun_resumes_without_repeating_runs(value_run):
    run, res = value_run
    before = (run / "value" / "one_shot" / "seed0.jsonl").read_text()
    again = value_study.main(preset_args(value_study.ValueArgs, value_study.PRESETS, "smoke", run=run))
    assert (run / "value" / "one_shot" / "seed0.jsonl").read_text() == before
    assert json.dumps(again, sort_keys=True, default=str) == json.dumps(res, sort_keys=True, default=str)


def test_value_study__one_shot_rows_are_reproducible(value_run):
    """A lost line of one_shot/*.jsonl is recomputed to the same numbers."""
    run, _ = value_run
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
    table = {
        "thresholds": {"hard_max": 0.125, "easy_min": 0.75},
        "pools": {"easy": [], "hard": [], "medium": [{"pid": "a"}, {"pid": "b"}]},
    }
    ledger = [
        {"step": 1, "pid": "a", "successes": 4, "group_size": 8},
        {"step": 1, "pid": "b", "successes": 4, "group_size": 8},
        {"step": 2, "pid": "a", "successes": 8, "group_size": 8},
        {"step": 2, "pid": "b", "successes": 3, "group_size": 8},
    ]
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
    run, _ = value_run
    sample = read_json(run / "value" / "sample.json")
    pools = read_json(run / "bands" / "table.json")["pools"]
    for rec in sample:
        assert any(r["pid"] == rec["pid"] for r in pools[rec["band"]])


def test_scoring_run__reproducible_and_training_lowers_el2n(smoke_run):
    pre = Recipe.of(read_json(smoke_run / "config.json")["stages"]["pretrain"])
    problems = pre.task.problems(5, 2, 4)
    at_init = scoring_run(pre, 0, problems, 4, 2, read_steps=(0,))
    assert at_init == scoring_run(pre, 0, problems, 4, 2, read_steps=(0,))
    assert np.array(at_init["correct/deliberate"]).shape == (4, 2)
    run = scoring_run(pre, 0, problems, 80, 4, read_steps=(0, 80))
    assert {k: v for k, v in run.items() if k.endswith("@0")} == {k: v for k, v in at_init.items() if k.endswith("@0")}
    for mode in ("deliberate", "direct"):
        assert all(0 <= x <= math.sqrt(2) for x in run[f"el2n/{mode}@80"]) and all(
            g > 0 for g in run[f"grand/{mode}@80"]
        )
        assert np.mean(run[f"el2n/{mode}@80"]) < np.mean(run[f"el2n/{mode}@0"])
        assert np.mean(run[f"loss/{mode}@80"]) < np.mean(run[f"loss/{mode}@0"])
    with pytest.raises(ValueError, match="read_steps"):
        scoring_run(pre, 0, problems, 4, 2, read_steps=(5,))


def _est(mean, lo, hi, n=30):
    return {"mean": mean, "ci95": [lo, hi], "n": n}


def _test(mean, p, p_holm, dis=None):
    return {**_est(mean, mean - 0.2, mean + 0.2), "p": p, "p_holm": p_holm, "disattenuated": dis}


def test_verdict__names_the_best_difficulty_metric_counts_corrected_tests_and_keeps_target_aware_out():
    strata = ("all", "easy", "medium", "hard")
    tested = {
        "k": {s: _test(-0.2, 0.04, 0.3) for s in strata} | {"medium": _test(-0.5, 0.001, 0.01)},
        "grad_cos/blind": {s: _test(0.3, 0.001, 0.008, _est(0.33, 0.1, 0.5)) for s in strata},
        "grad_cos/target_aware": {
            s: _test(0.8, 0.0001, None) for s in strata
        },  # the largest rho, not a difficulty metric
    }
    rel = {
        "value": {"ceiling": _est(0.95, 0.9, 0.97), "m": 3},
        "value_within_bands": {"medium": {"ceiling": _est(0.7, 0.5, 0.8)}},
    }
    leak = {
        "grad_cos": {
            "target_aware": _est(0.8, 0.7, 0.9),
            "blind": _est(0.3, 0.1, 0.5),
            "difference": _est(0.5, 0.3, 0.7),
        }
    }
    curve = {"curvature": _est(-0.1, -0.3, 0.05), "vertex": _est(0.5, 0.3, 0.7), "inverted_u": False}
    bands = {"hard": {"value": _est(-0.01, -0.02, 0.0)}}
    text = verdict(tested, rel, leak, curve, bands, {"hard": {"inert_frac": 0.25}})
    assert "best difficulty metric for one-sample value is grad_cos/blind (Spearman +0.30" in text
    assert "disattenuated +0.33 [+0.10, +0.50], against a ceiling of 0.95 for value's 3-seed mean" in text
    assert "5 of 8 metric x stratum tests survive Holm's correction (8 uncorrected)" in text
    assert "medium band, ceiling 0.70, the best is k (-0.50" in text and "Holm p = 0.010" in text
    assert "sees the eval set reaches +0.80 [+0.70, +0.90] against +0.30 [+0.10, +0.50] blind" in text
    assert "not an inverted U" in text and "25% of their one-sample runs never updated" in text


def test_validation_set__shares_no_problem_with_the_eval_set_or_the_sample_even_where_chains_repeat():
    """At k = 1 over Z_11 there are only 363 chains, so a redraw of the eval set's stream collides with
    it; the blind estimate's validation set must still be disjoint by content, with the same k counts."""
    spec = Arithmetic(TaskSpec(11, ("+", "-", "*")))
    ev_problems = [pr for k in (1, 2, 3) for pr in seeds.problems("band_eval", 0, k, 48, spec)]
    ev = EvalSet(ev_problems, ["medium"] * len(ev_problems), 1, 0)
    sample = seeds.problems("band_candidates", 0, 1, 30, spec)
    val = value_study.validation_set(ev, sample, 0, spec)
    content = lambda prs: {pr.key for pr in prs}  # noqa: E731
    assert not content(val) & (content(ev_problems) | content(sample))
    assert sorted(pr.k for pr in val) == sorted(pr.k for pr in ev_problems)
    assert (
        len(content(ev_problems) & content(seeds.problems("band_eval", seeds.VALIDATION_SEED, 1, 96, spec))) > 0
    )  # collisions exist
    assert val == value_study.validation_set(ev, sample, 0, spec)


def test_tests__holm_runs_over_the_difficulty_metrics_only_and_a_planted_metric_survives():
    """A metric equal to value plus small noise, a pure-noise metric, and a target-aware estimate: the Holm-adjusted
    p-values are Holm's adjustment of exactly the family's raw p-values, and only the planted metric survives."""
    from experiments.analysis.value_inference import STRATA, survivors, tests
    from probes.stats import holm

    rng = np.random.default_rng(0)
    n, seeds_ = 90, (0, 1)
    true = rng.normal(size=n)
    cols = {f"value@seed{s}": true + rng.normal(scale=0.3, size=n) for s in seeds_}
    cols["value"] = (cols["value@seed0"] + cols["value@seed1"]) / 2
    cols |= {
        "planted": true + rng.normal(scale=0.3, size=n),
        "noise": rng.normal(size=n),
        "aware": cols["value"].copy(),
    }
    bands = [("easy", "medium", "hard")[i % 3] for i in range(n)]
    out = tests(cols, ["planted", "noise", "aware"], ["planted", "noise"], seeds_, bands, n_boot=100)
    family = [(m, s) for m in ("planted", "noise") for s in STRATA]
    assert [out[m][s]["p_holm"] for m, s in family] == pytest.approx(holm([out[m][s]["p"] for m, s in family]))
    assert all(out["aware"][s]["p_holm"] is None for s in STRATA)
    assert survivors(out) == [("planted", s) for s in STRATA]
    assert out["planted"]["all"]["disattenuated"]["mean"] > out["planted"]["all"]["mean"]
