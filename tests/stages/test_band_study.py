import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments import band_study, grpo, train_sae
from experiments.analysis import band_results
from experiments.analysis.gain_results import ATTRIBUTED
from experiments.band_study import PRESETS, BandStudyArgs
from experiments.harness import labelling, rl
from experiments.harness.cli import preset_args
from experiments.harness.executors import run_jobs
from experiments.harness.sources import cache_activations, checkpoint_tag, open_source
from experiments.harness.task import TaskSpec
from experiments.harness.tasks import Arithmetic
from probes.diff import change_vector, group_activity, latent_means, relative_change, rows_of
from probes.layout import RunLayout
from probes.saes.train import load_sae


@pytest.fixture
def study(smoke_study):
    return smoke_study


def test_band_study__smoke_end_to_end_writes_valid_results(study):
    out, res, seconds = study
    assert seconds < 60
    on_disk = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    for key in ("preset", "seeds", "bands", "matched_gain_target", "matched_tol", "noise_floor", "contrasts", "verdict"):
        assert key in on_disk
    assert set(on_disk["bands"]) == {"easy", "medium", "hard"}
    for band in on_disk["bands"].values():
        assert {"gain", "matched_step", "matched_gain", "matched_hit", "behaviour", "feature_change"} <= set(band)
        assert len(band["matched_step"]) == len(on_disk["seeds"])
        assert band["gain"]["ci95"][0] <= band["gain"]["mean"] <= band["gain"]["ci95"][1]
    # The smoke model barely moves in 4 updates: no gain is well above the eval's noise, and the verdict says so.
    assert on_disk["verdict_class"] == "no_target" and on_disk["verdict"].startswith("No band has every run reach an accuracy gain")
    assert on_disk["diff_view"] == "canonical" and len(on_disk["contrasts"]) == 9 and on_disk["contrasts"][0]["main"]
    report = (out / "report.md").read_text()
    assert on_disk["verdict"] in report and "temporal" in report and "batchtopk" in report  # SAEs side by side
    for fig in ("gain", "feature_change", "behaviour", "sae_quality"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    diff = json.loads((out / "diff.json").read_text())
    assert all("base" in per_ckpt and per_ckpt["base"]["change/canonical"] for per_ckpt in diff.values())


def test_band_study__rerun_resumes_without_retraining(study, monkeypatch):
    out, res, _ = study
    monkeypatch.setattr(train_sae, "train_and_save", lambda *a: pytest.fail("retrained an SAE"))
    monkeypatch.setattr(rl, "policy_update", lambda *a: pytest.fail("retrained a band run"))
    again = band_study.main(preset_args(BandStudyArgs, PRESETS, "smoke", out=out))
    assert again["verdict"] == res["verdict"] and again["bands"]["medium"]["gain"] == res["bands"]["medium"]["gain"]


def test_features_and_causal_checks__on_a_users_own_checkpoint_and_sae(study, tmp_path):
    """Bring your own: a checkpoint dir outside any run and an SAE loaded by path."""
    out, _, _ = study
    user_ckpt, user_sae = tmp_path / "my_model", tmp_path / "my_sae"
    shutil.copytree(out / "base", user_ckpt)
    sae_name = next(p.name for p in (out / "sae").iterdir() if p.name.startswith("batchtopk"))
    shutil.copytree(out / "sae" / sae_name, user_sae)
    sae = load_sae(user_sae)
    args = preset_args(train_sae.TrainSAEArgs, train_sae.PRESETS, "smoke", run=tmp_path / "scratch", checkpoint=str(user_ckpt))
    src = open_source(args.source_spec, user_ckpt)
    label_split, test_split = band_study.causal_problems(RunLayout(out), per_k=3, seed=0, sae_probe=args.probe_spec)
    seen = {(pr.start, pr.ops, pr.operands) for pr, _ in band_study.probe_problems(args.probe_spec, Arithmetic(TaskSpec(5, ("+",))))}
    assert not seen & {(pr.start, pr.ops, pr.operands) for pr in label_split + test_split}
    spec = labelling.LabelSpec(n_random=2)
    features = labelling.label_and_check(sae, src, args.hook, label_split, test_split, spec, {"checkpoint": str(user_ckpt)})
    assert len(features["features"]) == sae.cfg.d_sae
    assert set(features["causal"]["clean"]) == {"direct_correct", "deliberate_correct", "step_acc", "p_think"}
    in_groups = [i for g in features["groups"].values() for i in g]
    assert len(in_groups) == len(set(in_groups)) and in_groups  # disjoint, and something carries the read-outs
    for label, check in features["causal"]["checks"].items():
        assert check["group"] == features["groups"][label] and len(check["random_effects"]) == 2
        assert features["selection"][label]["probe"]["n_test"] > 0
    means = latent_means(sae, src.cache, rows_of(src.cache, "canonical"))
    assert means.shape == (sae.cfg.d_sae,) and (means >= 0).all()


def test_group_activity_and_relative_change():
    means = torch.tensor([0.0, 1.0, 3.0, 2.0])
    act = group_activity(means, {"a": [1, 2], "b": [], "c": [3]})
    assert act["a"] == 2.0 and math.isnan(act["b"]) and act["c"] == 2.0
    change = relative_change({"a": 3.0, "c": 1.0}, {"a": 2.0, "c": 2.0})
    assert change == pytest.approx({"a": 0.5, "c": -0.5})
    vec = change_vector(torch.tensor([0.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 3.0]), torch.tensor([False, True, True]))
    assert vec.shape == (2,) and vec[0] > 0 and vec[1] == 0


def test_match_stage__replays_and_measures_steps_between_checkpoints(study, tmp_path, monkeypatch):
    """Checkpoints are stored at steps 2 and 4; with a tiny target and no tolerance every run that
    overshoots at a checkpoint is bisected, which regenerates step 1 or 3 by replay and measures it."""
    out = tmp_path / "run"
    shutil.copytree(study[0], out, ignore=shutil.ignore_patterns("acts", "sae"))
    monkeypatch.setattr(band_results, "MIN_TARGET_SE", 0.0)  # the smoke model's gains are all noise
    args = preset_args(BandStudyArgs, PRESETS, "smoke", out=out, target_gain=1e-6, matched_tol=0.0)
    band_study.match_stage(args)
    data = band_study.run_data(args)
    measured = {n: set(steps) for n, steps in data.extra.items() if steps}
    assert measured and all(s in (1, 3) for steps in measured.values() for s in steps)
    for name, steps in measured.items():
        for s in steps:
            assert (out / name / f"ckpt-{s}" / "trainer_state.safetensors").exists()  # replayed, complete
    band_study.match_stage(args)  # a rerun measures nothing new
    assert band_study.run_data(args).extra == data.extra


@pytest.mark.slow
def test_band_study__replicate_runs_one_study_per_pretraining_seed_and_counts_verdicts(tmp_path):
    summary = band_study.main(preset_args(BandStudyArgs, PRESETS, "smoke", out=tmp_path / "rep", replicate=2))
    assert summary["replicates"] == 2 and sum(summary["verdict_classes"].values()) == 2
    seeds = [json.loads((tmp_path / "rep" / f"pretrain-seed{s}" / "config.json").read_text())["stages"]["pretrain"]["seed"] for s in (0, 1)]
    assert seeds == [0, 1]
    assert json.loads((tmp_path / "rep" / "replicates.json").read_text()) == summary


def test_gain_stage__patches_each_group_at_every_hitting_runs_matched_checkpoint(study, tmp_path, monkeypatch):
    """With a target every smoke run hits (a wide tolerance), each run gets a gain attribution record whose
    unpatched accuracies reproduce the run's own evaluation at the matched step (with as many samples),
    and a rerun reuses it."""
    from experiments.analysis.band_results import matching, planned
    from probes.layout import FEATURES, GAIN_ATTRIBUTION, read_json, read_jsonl

    out = tmp_path / "study"
    shutil.copytree(study[0], out)
    eval_samples = grpo.PRESETS["smoke"]["eval_samples"]  # then attribution draws what the evaluation drew
    args = preset_args(BandStudyArgs, PRESETS, "smoke", out=out, target_gain=0.3, matched_tol=1.0, attribution_samples=eval_samples)
    features = {p.name: read_json(p / FEATURES) for p in (out / "sae").iterdir()}
    records = band_study.gain_stage(args, features)
    runs = band_study.run_data(args)
    curve_by_run, plan = planned(runs, args.settings)
    points = matching(curve_by_run, runs.extra, plan).points
    assert set(records) == {n for n, p in points.items() if p.within_tol} and records
    name, rec = next(iter(records.items()))
    sae_name = args.sae_args(args.sae_archs[0]).sae_name
    assert read_json(out / name / GAIN_ATTRIBUTION)[sae_name] == rec and rec["step"] == points[name].step
    checked = set(features[sae_name]["causal"]["checks"]) & set(ATTRIBUTED)
    assert set(rec["patched"]) == set(rec["reverse"]) == {g for g in checked if features[sae_name]["groups"][g]}
    row = {r["step"]: r for r in read_jsonl(out / name / "metrics.jsonl") + read_jsonl(out / name / "match.jsonl")}
    # The same draws through the lockstep path: equal here; the bridge's float noise may flip a rare sample.
    assert abs(rec["acc_tuned"] - row[rec["step"]][args.matched_key]) < 0.05
    assert abs(rec["acc_base"] - row[0][args.matched_key]) < 0.05
    monkeypatch.setattr(band_study, "attribute_gain", lambda *a: pytest.fail("recomputed a gain attribution"))
    assert band_study.gain_stage(args, features) == records  # reused from disk


def test_compare_studies__prints_finished_studies_side_by_side_and_refuses_an_unfinished_one(study, tmp_path):
    script = Path(__file__).parents[2] / "scripts" / "compare_studies.py"
    run = study[0]
    out = subprocess.run([sys.executable, str(script), str(run), str(run), "--names", "a", "b"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    res = json.loads((run / "results.json").read_text())
    assert "| verdict class | " + " | ".join([res["verdict_class"]] * 2) + " |" in out.stdout
    assert f"- **a** ({res['verdict_class']}): {res['verdict']}" in out.stdout
    bad = subprocess.run([sys.executable, str(script), str(run), str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "no results.json" in bad.stderr


def test_activity_stage__reads_the_base_and_every_stored_hard_checkpoint_with_the_runs_own_successes(study, tmp_path, monkeypatch):
    """Each hard run gets one reading per stored checkpoint (not replays) and the base model; the success
    flags are those of the checkpoint's own rollouts with the stage's draws; a rerun reuses the file."""
    from experiments.harness import seeds
    from experiments.harness.rollout import sampled_rollouts
    from probes.layout import FEATURES, ROLLOUT_ACTIVITY, checkpoints, read_json
    from probes.models import load_hf, load_tokenizer

    out = tmp_path / "study"
    shutil.copytree(study[0], out)
    args = preset_args(BandStudyArgs, PRESETS, "smoke", out=out)
    features = {p.name: read_json(p / FEATURES) for p in (out / "sae").iterdir()}
    head = args.sae_args(args.sae_archs[0]).sae_name
    features[head]["groups"]["deliberation"] = features[head]["groups"]["deliberation"] or [0, 1]  # a group to read
    records = band_study.activity_stage(args, features)
    assert set(records) == {f"bands/hard/seed{s}" for s in args.seeds}
    gargs = args.grpo_args("hard", args.seeds[0])
    stored = [s for s in checkpoints(gargs.out) if s % gargs.checkpoint_every == 0]
    rec = records[f"bands/hard/seed{args.seeds[0]}"]
    assert set(rec) == {"0", *map(str, stored)}
    n = args.activity_problems * args.activity_samples
    assert all(len(r["activity"]) == len(r["correct"]) == n for r in rec.values())
    ckpt = gargs.out / f"ckpt-{stored[-1]}"
    problems = grpo.RunInputs.read(gargs).pool[: args.activity_problems]
    own = sampled_rollouts(load_hf(ckpt), load_tokenizer(ckpt), problems, args.activity_samples, seeds.rollout_activity(args.seeds[0]))
    assert rec[str(stored[-1])]["correct"] == [bool(r.parsed.correct) for r in own]
    assert read_json(gargs.out / ROLLOUT_ACTIVITY)["steps"] == rec
    monkeypatch.setattr(band_study, "rollout_activity", lambda *a: pytest.fail("read a checkpoint again"))
    assert band_study.activity_stage(args, features) == records


def test_diffing_stage__per_band_dictionaries_readings_and_effects_saved_loaded_reported_and_reused(study, monkeypatch):
    """On the smoke study (no band matched, so every claim is the final step of the first diffing_seeds runs): both
    dictionaries load through sae_lens's loader and say what they are; readings are consistent with their rules;
    every seed has its spliced and causal accuracies; results.json and the report carry the three readings and
    the faithfulness table; a rerun reads the records instead of redoing them."""
    from probes.layout import MODEL_DIFFING, read_json
    from probes.saes.change import KINDS, kind_of
    from probes.saes.crosscoder import NU_MAX, TUNED_ONLY

    out, res, _ = study
    args = preset_args(BandStudyArgs, PRESETS, "smoke", out=out)
    layout = RunLayout(out)
    d_model = json.loads((layout.base / "config.json").read_text())["hidden_size"]
    records = {}
    for band in band_results.BANDS:
        rec = records[band] = read_json(layout.diffing(band) / MODEL_DIFFING)
        runs = [f"bands/{band}/seed{s}" for s in args.seeds[: args.diffing_seeds]]
        assert rec["claim"] == "final" and rec["steps"] == dict.fromkeys(runs, args.grpo_steps) and set(rec["effects"]) == set(runs)
        for kind in KINDS:
            sae = load_sae(layout.diffing(band) / kind)
            assert kind_of(sae) == kind and sae.cfg.metadata.hook_name == args.diffing_source.hook
            assert sae.cfg.d_in == (2 if kind == "crosscoder" else 1) * d_model
            d = rec["dictionaries"][kind]
            assert set(d["unique"]) <= set(d["group"]) <= set(d["candidates"]) and set(d["fve"]) == set(runs)
            assert all(d["fire_rate"][j] > 0 for j in d["candidates"]) and set(d["labels"]) == {str(j) for j in d["group"]}
            if kind == "crosscoder":
                assert all(d["relative_norm"][j] > TUNED_ONLY for j in d["candidates"])
                assert all(max(abs(v) for v in d["nu"][str(j)]) < NU_MAX for j in d["group"])
            for e in rec["effects"].values():
                assert {f"acc/base/{kind}", f"acc/tuned/{kind}", f"ce/tuned/{kind}"} <= set(e)
                assert (f"acc/tuned/{kind}/group" in e) == bool(d["group"]) and all(0 <= v <= 1 for k, v in e.items() if k.startswith("acc/"))
    md = res["model_diffing"]
    assert set(md) == set(band_results.BANDS)
    for band, b in md.items():
        assert set(b["readings"]["groups"]) == set(ATTRIBUTED) and len(b["faithfulness"]) == args.diffing_seeds * 5
        assert b["crosscoder"]["n"] == len(records[band]["dictionaries"]["crosscoder"]["group"])
    report = (out / "report.md").read_text()
    assert "## Model diffing" in report and "verdict rests on the base-SAE reading" in report and (out / "figures" / "crosscoder_norms.png").exists()
    monkeypatch.setattr(band_study, "band_record", lambda *a, **k: pytest.fail("redid a band's model diffing"))
    features = {args.sae_args(a).sae_name: read_json(layout.sae(args.sae_args(a).sae_name) / "features.json") for a in args.sae_archs}
    assert band_study.diffing_stage(args, features) == records


@pytest.mark.slow  # 86 s of the suite's budget; the arithmetic smoke study stays in the default run
def test_band_study__on_mazes_every_stage_reads_the_runs_task_and_a_band_that_never_moved_is_not_diffed(tmp_path, study):
    """``--task maze`` end to end on the smoke presets: the run's config.json has the maze task section, the bands,
    probe sets and causal splits hold mazes, and a band is left out of model diffing exactly when none of its
    diffed runs had a group with reward variance (so no update moved the weights)."""
    from probes.activations import load_sequences
    from probes.layout import MODEL_DIFFING, read_json, read_jsonl

    out = tmp_path / "maze"
    args = preset_args(BandStudyArgs, PRESETS, "smoke", out=out, task="maze", seeds=(0, 1), sae_archs=("batchtopk",))  # two seeds, one SAE: time
    res = band_study.main(args)
    layout = RunLayout(out)
    assert read_json(layout.config)["task"] == args.pretrain_args.family.params and args.pretrain_args.task == "maze"
    assert read_json(layout.band_table)["task"]["task"] == "maze"
    sequences = [s for p in layout.acts.glob("*/probe-*/sequences.json") for s in load_sequences(p)[1]]
    assert sequences and {s.k for s in sequences} <= {3, 5} and all(s.pid.startswith(("sae_probe", "diff_probe")) for s in sequences)
    assert res["verdict"] and set(res["bands"]) == set(band_results.BANDS)
    for band in band_results.BANDS:
        rec = read_json(layout.diffing(band) / MODEL_DIFFING)
        silent = all(r["grpo/frac_zero_std"] == 1.0 for run in rec["steps"] for r in read_jsonl(out / run / "metrics.jsonl") if "grpo/frac_zero_std" in r)
        assert rec.get("unchanged", False) == silent and (band in res["model_diffing"]) != silent
    not_diffed = set(band_results.BANDS) - set(res["model_diffing"])
    assert not_diffed == {"hard"}  # the smoke model never solves side 5, so no hard-band group has reward variance
    assert f"moved the weights): {', '.join(not_diffed)}." in " ".join((out / "report.md").read_text().split())
    script = Path(__file__).parents[2] / "scripts" / "compare_studies.py"  # beside the arithmetic study
    side = subprocess.run([sys.executable, str(script), str(study[0]), str(out)], capture_output=True, text=True)
    assert side.returncode == 0 and "| task | arith | maze |" in side.stdout and "k = 3: " in side.stdout, side.stderr


def test_band_study__the_device_flag_reaches_every_stage_and_the_readers():
    args = BandStudyArgs(preset="smoke", device="cuda:1", stages={"grpo": {"device": "cpu"}})
    assert args.pretrain_args.device == args.bands_args.device == args.grpo_args("easy", 0).device == "cuda:1"
    assert args.sae_args("batchtopk").device == args.run_device == args.diffing_spec.train.device == args.diffing_source.device == "cuda:1"
    assert BandStudyArgs(preset="smoke", stages={"grpo": {"device": "cpu"}}).grpo_args("easy", 0).device == "cpu"  # no flag: the section


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sample__a_cpu_seed_stream_gives_the_same_completions_on_cuda(smoke_run):
    from experiments.harness import seeds
    from experiments.harness.rollout import sampled_rollouts
    from experiments.harness.task import TaskSpec
    from experiments.harness.tasks import Arithmetic
    from probes.models import load_hf, load_tokenizer

    base = smoke_run / "base"
    problems = [pr for k in (1, 2, 3) for pr in seeds.problems("causal", 0, k, 20, Arithmetic(TaskSpec(5, ("+",))))]
    out = {dev: [r.completion_ids for r in sampled_rollouts(load_hf(base, dev), load_tokenizer(base), problems, 4, 7)] for dev in ("cpu", "cuda")}
    same = sum(a == b for a, b in zip(out["cpu"], out["cuda"]))
    assert same >= 0.95 * len(out["cpu"])  # only where float differences move a probability across a draw


@pytest.mark.parametrize("executor", ["pool", "ray"])
def test_band_study__a_parallel_executor_writes_the_same_bytes_as_running_one_after_another(study, tmp_path, executor):
    """The smoke study's 15 GRPO runs again, on 2 workers (processes, or tasks of a local Ray instance) from its
    base model and bands: config.json and every run's logs and final weights are byte-identical to the
    sequential study's (workers use its thread count), so everything computed from them is too."""
    if executor == "ray":
        pytest.importorskip("ray", reason="the optional ray extra (CI installs it)")
    out, _, _ = study
    pooled = tmp_path / executor
    for rel in ("config.json", "base", "bands/table.json"):
        (pooled / rel).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (out / rel).is_dir() else shutil.copy
        copy(out / rel, pooled / rel)
    args = preset_args(BandStudyArgs, PRESETS, "smoke", out=pooled, executor=executor, workers=2)
    band_study.train_stages(args)
    assert (pooled / "config.json").read_bytes() == (out / "config.json").read_bytes()
    runs = sorted(p.relative_to(out) for p in out.glob("bands/*/seed*"))
    assert len(runs) == 15
    for run in runs:
        for name in ("metrics.jsonl", "ledger.jsonl", "ckpt-4/model.safetensors"):
            assert (pooled / run / name).read_bytes() == (out / run / name).read_bytes(), run / name
    spec = dataclasses.replace(args.diff_source, run=pooled)  # the diff stage's per-checkpoint caching jobs
    ckpts = [pooled / run / "ckpt-4" for run in runs[:3]]
    run_jobs(cache_activations, [(spec, c) for c in ckpts], executor, workers=2)
    for ckpt in ckpts:
        mine = sorted(RunLayout(pooled).acts.glob(f"{checkpoint_tag(pooled, ckpt)}/probe-*/{spec.hook}/acts.npy"))
        theirs = sorted(RunLayout(out).acts.glob(f"{checkpoint_tag(out, out / ckpt.relative_to(pooled))}/probe-*/{spec.hook}/acts.npy"))
        assert len(mine) == 1 and mine[0].read_bytes() in [t.read_bytes() for t in theirs], ckpt
    with pytest.raises(ValueError, match="executor"):
        BandStudyArgs(executor="threads")
    with pytest.raises(ValueError, match="gpus_per_job"):
        BandStudyArgs(gpus_per_job=1.5)
