import json
import shutil

import numpy as np
import pytest

from experiments import pruning
from experiments.analysis.pruning_results import Analysis
from experiments.harness.cli import preset_args
from experiments.harness.rundir import write_json
from experiments.harness.studies.pruning_scores import combine
from probes.layout import RunDirError, RunLayout, read_json


@pytest.fixture(scope="module")
def study(copy_run, tmp_path_factory):
    """The smoke pruning study on a copy of the smoke run (base model, config and band table only)."""
    run = copy_run(tmp_path_factory.mktemp("pruning") / "run")
    args = preset_args(pruning.PruningArgs, pruning.PRESETS, "smoke", run=run)
    return args, pruning.main(args)


def test_pruning__smoke_writes_every_arm_and_each_policy_keeps_what_its_scores_say(study, tmp_path):
    args, res = study
    out = RunLayout(args.run).pruning
    assert out.report.exists() and {p.name for p in out.figures.iterdir()} == {"error_vs_kept.png", "crossover.png"}
    write_json(
        tmp_path / "again.json", Analysis.from_json(read_json(out.results)).to_json()
    )  # read back, written again
    assert (tmp_path / "again.json").read_bytes() == out.results.read_bytes()
    assert res["verdict_class"] in ("crossover", "easy_wins_small_only", "hard_wins_large_only", "no_crossover")
    largest = read_json(out.dataset(max(args.sizes)))
    for size in args.sizes:
        runs = [read_json(out.scores(size, s)) for s in args.score_seeds]
        scores = combine(largest[:size], runs)
        for r in runs:  # each scoring run trains on half; forgetting is counted only inside, inf only for never learned
            inside = np.array(r["inside"])
            assert inside.sum() == size // 2
            assert all(f is None for f, i in zip(r["forgetting"], inside) if not i)
        inside_RN = np.array([r["inside"] for r in runs])
        assert np.array_equal(np.isnan(scores["memorization"]), inside_RN.all(0) | ~inside_RN.any(0))
        for metric, policy, f in args.design.grid(size):
            kept = [read_json(out.arm(out.arm_name(size, metric, policy, f), s)) for s in args.seeds]
            assert all(k["n_train"] == len(k["rows"]) == round(f * size) for k in kept)
            if metric == args.headline and policy == "keep_high":
                low = read_json(out.arm(out.arm_name(size, metric, "keep_low", f), args.seeds[0]))["rows"]
                el2n = np.array(scores["el2n"])
                assert el2n[kept[0]["rows"]].min() >= el2n[low].max()  # hardest and easiest halves do not overlap
    share = np.mean([r["mode"] == "deliberate" for r in largest[: min(args.sizes)]])
    rows = [r for r in res["table"] if r["size"] == min(args.sizes)]
    assert [r["composition"]["deliberate"] for r in rows if r["policy"] == "all"] == [pytest.approx(share)]
    assert {(r["metric"], r["policy"]) for r in rows} >= {
        ("all", "all"),
        ("random", "random"),
        ("el2n", "keep_high"),
        ("k", "keep_low"),
    }
    assert len([r for r in res["crossover"] if r["headline"]]) == len(args.sizes)


def test_pruning__held_out_problems_stay_out_of_large_problem_spaces_and_rl_pools_prune_by_pass_rate(study):
    args, res = study
    out, run = RunLayout(args.run).pruning, RunLayout(args.run)
    recipe = pruning.study_recipe(args, run)
    problems = pruning.held_out(recipe, args.eval_per_k, args.seed)
    large = {pr.key for pr in problems if recipe.task.n_distinct(pr.k) >= 20 * args.eval_per_k}
    records = read_json(out.dataset(max(args.sizes)))
    assert large and not large & {recipe.task.from_record(r).key for r in records}
    assert res["overlap_ks"] == sorted({pr.k for pr in problems if pr.key not in large})
    rate = {r["pid"]: r["pass_rate"] for band in read_json(run.band_table)["pools"].values() for r in band}
    f = args.rl_fractions[0]
    hard, easy = (
        read_json(out.arm(out.arm_name("rl", "failure_rate", p, f), args.rl_seeds[0]))["pids"]
        for p in ("keep_high", "keep_low")
    )
    assert max(rate[p] for p in hard) <= min(rate[p] for p in easy)


def test_pruning__rerun_resumes_without_retraining(study):
    args, res = study
    arms = sorted(RunLayout(args.run).pruning.root.glob("arms/**/seed*.json"))
    before = {p: p.stat().st_mtime_ns for p in arms}
    again = pruning.main(args)
    assert {p: p.stat().st_mtime_ns for p in arms} == before
    assert json.dumps(again, sort_keys=True) == json.dumps(res, sort_keys=True)


def test_pruning__refuses_a_run_it_cannot_read(tmp_path, smoke_run):
    with pytest.raises(RunDirError, match="needs base/ and config.json"):
        pruning.main(pruning.PruningArgs(run=tmp_path / "nothing"))
    run = tmp_path / "maze"
    shutil.copytree(smoke_run / "base", run / "base")
    config = read_json(smoke_run / "config.json")
    config["stages"]["pretrain"] = {**config["stages"]["pretrain"], "task": "maze", "max_size": 5, "k_train_max": 3}
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunDirError, match="arithmetic chains"):
        pruning.main(preset_args(pruning.PruningArgs, pruning.PRESETS, "smoke", run=run))
