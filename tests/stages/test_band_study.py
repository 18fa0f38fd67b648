import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from experiments import band_study, grpo, train_sae
from experiments.analysis import band_results, contrasts
from experiments.band_steps import attribution, diffing, matching, sae_groups
from experiments.band_study import PRESETS, BandStudyArgs
from experiments.harness import cli
from experiments.harness.cli import preset_args
from experiments.harness.executors import run_jobs
from experiments.harness.reading import labelling, sources
from experiments.harness.reading.diffing import read_checkpoint
from experiments.harness.reading.feature_groups import ATTRIBUTED, CONTRASTED
from experiments.harness.reading.probe_sets import probe_problems
from experiments.harness.reading.sources import cache_activations, checkpoint_tag, open_source
from experiments.harness.rundir import write_json
from experiments.harness.tasks.arith import Arithmetic, TaskSpec
from experiments.harness.training import rl
from probes.diff import change_vector, group_activity, latent_means, relative_change, rows_of
from probes.layout import RunLayout
from probes.models import load_bridge
from probes.saes.train import load_sae


@pytest.fixture
def study(smoke_study):
    return smoke_study


def test_band_study__smoke_end_to_end_matches_the_bands_that_reach_the_target_and_runs_the_verdict_path(
    study, tmp_path
):
    """Whatever the smoke bands gain: a target is set, at least two bands have enough seeds hitting it, each reached
    run hits it within the tolerance, its gain is attributed on the matched draws, and the verdict comes from the
    registered contrasts (which bands reach the target depends on the base model's exact bytes: chunked pretraining
    left the smoke easy band short of it)."""
    out, res = study
    on_disk = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    for key in (
        "preset",
        "seeds",
        "bands",
        "matched_gain_target",
        "matched_tol",
        "reach",
        "noise_floor",
        "contrasts",
        "verdict",
    ):
        assert key in on_disk
    write_json(
        tmp_path / "again.json", band_results.BandStudyResult.from_json(on_disk).to_json()
    )  # read back, written again
    assert (tmp_path / "again.json").read_bytes() == (out / "results.json").read_bytes()
    matchable = set(on_disk["matchable_bands"])
    assert on_disk["verdict_class"] != "no_target" and len(matchable) >= 2
    target, tol = on_disk["matched_gain_target"], on_disk["matched_tol"]
    for name, band in on_disk["bands"].items():
        assert {
            "gain",
            "matched_step",
            "matched_gain",
            "matched_hit",
            "matched_kl",
            "behaviour",
            "feature_change",
            "gain_share",
        } <= set(band)
        assert (sum(band["matched_hit"]) >= band_results.MIN_SEEDS) == (name in matchable)
        for step, gain, hit in zip(band["matched_step"], band["matched_gain"], band["matched_hit"]):
            assert hit == (step is not None) and (not hit or abs(gain - target) <= tol)  # reached means hit
        assert band["gain_share"]["deliberation"]["specific"]["n"] == sum(band["matched_hit"])
    assert (
        all(c["agree"] and c["path_agreement"] > 0.95 for c in on_disk["gain_check"].values()) and on_disk["gain_check"]
    )
    assert [c["order"] for c in on_disk["contrasts"][:3]] == [0, 1, 2] and len(on_disk["contrasts"]) == 9
    report = (out / "report.md").read_text()
    assert report.index("![headline](figures/headline.png)") < report.index("## Matched gain")
    assert (
        report.splitlines()[2].startswith("**The question.**") and "## Glossary" in report
    )  # plain words first, terms last
    assert on_disk["verdict"] in report and "temporal" in report and "batchtopk" in report  # SAEs side by side
    for fig in ("headline", "gain", "feature_change", "behaviour", "sae_quality"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    diff = json.loads((out / "diff.json").read_text())
    assert all("base" in per_ckpt and per_ckpt["base"]["change/canonical"] for per_ckpt in diff.values())


def test_band_study__the_contrasts_and_verdict_run_on_the_smoke_studys_own_shares(study, monkeypatch):
    """The smoke study's groups may fail their causal checks (3 random groups, a handful of problems), which closes
    every contrast; with that gate opened and the sequence set to two bands the smoke study matched, the contrast is
    tested on the runs' real specific shares and the class is a tested one."""
    out, res = study
    args = sae_groups.hook_stage(preset_args(BandStudyArgs, PRESETS, "smoke", out=out))  # the hook its rule chose
    features = {n: json.loads((out / "sae" / n / "features.json").read_text()) for n in RunLayout(out).saes()}
    monkeypatch.setattr(band_results, "group_issues", lambda labels: dict.fromkeys(CONTRASTED))
    monkeypatch.setattr(contrasts, "SEQUENCE", (("deliberation", *res["matchable_bands"][:2]),))
    analysis = band_study.results(
        args, features, diffing.diff_stage(args, features), attribution.gain_stage(args, features), {}, {}
    )
    first = analysis.result.contrasts[0]
    assert analysis.result.verdict_class in ("no_difference", "differs") and first["status"] in (
        "rejected",
        "not rejected",
    )
    assert (first["n_a"], first["n_b"]) == tuple(sum(res["bands"][b]["matched_hit"]) for b in (first["a"], first["b"]))


@pytest.mark.slow  # 38 s; the kill-and-rerun test (slow too) resumes at several points
def test_band_study__rerun_resumes_without_retraining(study, monkeypatch):
    out, res = study
    monkeypatch.setattr(train_sae, "train_and_save", lambda *a: pytest.fail("retrained an SAE"))
    monkeypatch.setattr(rl, "policy_update", lambda *a: pytest.fail("retrained a band run"))
    monkeypatch.setattr(attribution, "attribute_gain", lambda *a: pytest.fail("attributed a run again"))
    written = (out / "results.json").read_bytes()
    again = band_study.main(preset_args(BandStudyArgs, PRESETS, "smoke", out=out))
    assert (out / "results.json").read_bytes() == written and again["verdict"] == res["verdict"]


def test_features_and_causal_checks__on_a_users_own_checkpoint_and_sae(study, tmp_path):
    """Bring your own: a checkpoint dir outside any run and an SAE loaded by path."""
    out, _ = study
    user_ckpt, user_sae = tmp_path / "my_model", tmp_path / "my_sae"
    shutil.copytree(out / "base", user_ckpt)
    sae_name = next(p.name for p in (out / "sae").iterdir() if p.name.startswith("batchtopk"))
    shutil.copytree(out / "sae" / sae_name, user_sae)
    sae = load_sae(user_sae)
    args = preset_args(
        train_sae.TrainSAEArgs, train_sae.PRESETS, "smoke", run=tmp_path / "scratch", checkpoint=str(user_ckpt)
    )
    src = open_source(args.source_spec, user_ckpt)
    task = Arithmetic(TaskSpec(5, ("+",)))
    seen = [pr for pr, _ in probe_problems(args.probe_spec, task)]
    label_split, test_split = labelling.split_problems(0, task.knobs(5), {1: 6, 2: 3, 3: 3, 4: 3, 5: 3}, task, seen)
    assert [pr.k for pr in test_split].count(1) == 6  # more problems where direct answers work, as asked
    seen = {(pr.start, pr.ops, pr.operands) for pr in seen}
    assert not seen & {(pr.start, pr.ops, pr.operands) for pr in label_split + test_split}
    spec = labelling.LabelSpec(n_random=2)
    features = labelling.label_and_check(
        sae, src, args.hook, label_split, test_split, spec, {"checkpoint": str(user_ckpt)}
    )
    assert len(features["features"]) == sae.cfg.d_sae
    assert set(features["causal"]["clean"]) == {"direct_correct", "deliberate_correct", "step_acc", "p_think"}
    in_groups = [i for g in features["groups"].values() for i in g]
    assert len(in_groups) == len(set(in_groups)) and in_groups  # disjoint, and something carries the read-outs
    for label, check in features["causal"]["checks"].items():
        assert check["group"] == features["groups"][label] and len(check["random_effects"]) == 2
        assert features["selection"][label]["probe"]["n_test"] > 0
    means = latent_means(sae, src.cache, rows_of(src.cache, "canonical"))
    assert means.shape == (sae.cfg.d_sae,) and (means >= 0).all()


def test_open_source__a_cached_checkpoint_is_read_without_booting_its_model_which_a_reader_boots_once(
    study, monkeypatch
):
    """The diff stage reads every checkpoint from its activation cache: opening one boots no TransformerBridge, and a
    reader that runs the model gets one bridge however often it asks; the readings are the diff stage's own."""
    out, _ = study
    args = band_study.recorded(out)
    ckpt = out / "bands" / "medium" / "seed0" / "checkpoint-8"
    booted = []
    monkeypatch.setattr(sources, "load_bridge", lambda *a: booted.append(a) or load_bridge(*a))
    saes = {name: load_sae(RunLayout(out).sae(name)) for name in RunLayout(out).saes()}
    reading = read_checkpoint(args.diff_source, ckpt, saes)
    assert booted == []
    sae, stored = args.sae_args("batchtopk").sae_name, load_file(RunLayout(out).latent_means)
    assert torch.equal(reading[sae]["means"]["canonical"], stored[f"{RunLayout(out).name_of(ckpt)}|{sae}|canonical"])
    src = open_source(args.diff_source, ckpt)
    assert src.bridge is src.bridge and len(booted) == 1 and booted[0][0] == ckpt


def test_group_activity_and_relative_change():
    means = torch.tensor([0.0, 1.0, 3.0, 2.0])
    act = group_activity(means, {"a": [1, 2], "b": [], "c": [3]})
    assert act["a"] == 2.0 and math.isnan(act["b"]) and act["c"] == 2.0
    change = relative_change({"a": 3.0, "c": 1.0}, {"a": 2.0, "c": 2.0})
    assert change == pytest.approx({"a": 0.5, "c": -0.5})
    vec = change_vector(torch.tensor([0.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 3.0]), torch.tensor([False, True, True]))
    assert vec.shape == (2,) and vec[0] > 0 and vec[1] == 0


def test_match_stage__replays_whole_steps_then_blends_fractions_of_one_update(study, tmp_path, monkeypatch):
    """Evaluations at steps 4 and 8, checkpoints every 2; with a tiny target and no tolerance every run that
    overshoots is bisected: whole steps by replay (complete checkpoints), then fractions of the update that jumps
    over the target, blended in memory (no checkpoint to resume from is left behind). The KL to the base model is
    measured exactly where a gain reaches the target, so every run's matched point has it."""
    out = tmp_path / "run"
    shutil.copytree(study[0], out, ignore=shutil.ignore_patterns("acts", "sae", "match.jsonl", "interp-*"))
    monkeypatch.setattr(band_results, "MIN_TARGET_SE", 0.0)
    args = preset_args(
        BandStudyArgs, PRESETS, "smoke", out=out, target_gain=1e-6, matched_tol=0.0, seeds=(0,)
    )  # one run per band: time
    args.run_jobs(matching.match_run, matching.match_jobs(args))
    data = matching.run_data(args)
    measured = {n: sorted(steps) for n, steps in data.extra.items() if steps}
    assert measured and all(0 < s < 4 for steps in measured.values() for s in steps)
    whole = {s for steps in measured.values() for s in steps if float(s).is_integer()}
    assert whole and any(not float(s).is_integer() for steps in measured.values() for s in steps)
    for name, steps in measured.items():
        for s in (s for s in steps if float(s).is_integer()):
            assert (out / name / f"checkpoint-{s}" / "trainer_state.safetensors").exists()  # replayed, complete
        assert not list((out / name).glob("interp-*"))
        base = data.metrics[name][0][args.matched_key]
        reaches = [r[args.matched_key] - base >= 1e-6 for r in data.measured[name]]
        assert reaches == ["eval/kl_to_base" in r for r in data.measured[name]]
    for name, point in matching.matched_points(args).items():
        assert data.row_at(name, point)["eval/kl_to_base"] >= 0.0
    args.run_jobs(matching.match_run, matching.match_jobs(args))  # a rerun measures nothing new
    assert matching.run_data(args).extra == data.extra


@pytest.mark.slow
def test_band_study__replicate_runs_one_study_per_pretraining_seed_and_counts_verdicts(tmp_path):
    summary = band_study.main(preset_args(BandStudyArgs, PRESETS, "smoke", out=tmp_path / "rep", replicate=2))
    assert summary["replicates"] == 2 and sum(summary["verdict_classes"].values()) == 2
    seeds = [
        json.loads((tmp_path / "rep" / f"pretrain-seed{s}" / "config.json").read_text())["stages"]["pretrain"]["seed"]
        for s in (0, 1)
    ]
    assert seeds == [0, 1]
    assert json.loads((tmp_path / "rep" / "replicates.json").read_text()) == summary


def test_gain_stage__attributes_every_hitting_run_on_its_own_matched_draws_and_reuses_the_records(study, monkeypatch):
    """Each hitting run has a record made at its matched point with the eval's sample count: T's accuracy measured
    again equals its matching evaluation, every non-empty group is patched, every random group of its causal check
    is scored on its own slice, and a rerun reuses the file."""
    from probes.layout import FEATURES, GAIN_ATTRIBUTION, read_json

    out, res = study
    args = sae_groups.hook_stage(preset_args(BandStudyArgs, PRESETS, "smoke", out=out))  # the hook its rule chose
    features = {n: read_json(out / "sae" / n / FEATURES) for n in RunLayout(out).saes()}
    records = attribution.gain_stage(args, features)
    points = matching.matched_points(args)
    assert set(records) == set(points) and records
    sae_name = args.sae_args(args.sae_archs[0]).sae_name
    feats, draws = features[sae_name], args.grpo_args("easy", args.seeds[0]).eval_samples
    for name, rec in records.items():
        assert read_json(out / name / GAIN_ATTRIBUTION)[sae_name] == rec and rec["step"] == points[name]
        assert rec["n_samples"] == draws and rec["acc_tuned"] == rec["matched_acc"]
        live = {g for g in ATTRIBUTED if feats["groups"][g]}
        assert set(rec["patched"]) == set(rec["random_patched"]) == live
        assert all(len(rec["random_patched"][g]) == len(feats["causal"]["checks"][g]["random_groups"]) for g in live)
    monkeypatch.setattr(attribution, "attribute_gain", lambda *a: pytest.fail("recomputed a gain attribution"))
    assert attribution.gain_stage(args, features) == records  # reused from disk


def test_compare_studies__prints_finished_studies_side_by_side_and_refuses_an_unfinished_one(study, tmp_path):
    script = Path(__file__).parents[2] / "scripts" / "compare_studies.py"
    run = study[0]
    out = subprocess.run(
        [sys.executable, str(script), str(run), str(run), "--names", "a", "b"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    res = json.loads((run / "results.json").read_text())
    assert "| verdict class | " + " | ".join([res["verdict_class"]] * 2) + " |" in out.stdout
    assert f"- **a** ({res['verdict_class']}): {res['verdict']}" in out.stdout
    bad = subprocess.run([sys.executable, str(script), str(run), str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "no results.json" in bad.stderr


def test_activity_stage__reads_the_base_and_every_stored_hard_checkpoint_with_the_runs_own_successes(
    study, tmp_path, monkeypatch
):
    """Each hard run gets one reading per stored checkpoint (not replays) and the base model; the success
    flags are those of the checkpoint's own rollouts with the stage's draws; a rerun reuses the file."""
    from experiments.harness import seeds
    from experiments.harness.training.rollout import sampled_rollouts
    from probes.layout import FEATURES, ROLLOUT_ACTIVITY, checkpoints, read_json
    from probes.models import load_hf, load_tokenizer

    out = tmp_path / "study"
    shutil.copytree(study[0], out)
    args = sae_groups.hook_stage(preset_args(BandStudyArgs, PRESETS, "smoke", out=out))  # the hook its rule chose
    features = {n: read_json(out / "sae" / n / FEATURES) for n in RunLayout(out).saes()}
    head = args.sae_args(args.sae_archs[0]).sae_name
    features[head]["groups"]["deliberation"] = features[head]["groups"]["deliberation"] or [0, 1]  # a group to read
    records = attribution.activity_stage(args, features)
    assert set(records) == {f"bands/hard/seed{s}" for s in args.seeds}
    gargs = args.grpo_args("hard", args.seeds[0])
    stored = [s for s in checkpoints(gargs.out) if s % gargs.checkpoint_every == 0]
    rec = records[f"bands/hard/seed{args.seeds[0]}"]
    assert set(rec) == {"0", *map(str, stored)}
    n = args.activity_problems * args.activity_samples
    assert all(len(r["activity"]) == len(r["correct"]) == n for r in rec.values())
    ckpt = gargs.out / f"checkpoint-{stored[-1]}"
    problems = grpo.RunInputs.read(gargs).pool[: args.activity_problems]
    own = sampled_rollouts(
        load_hf(ckpt), load_tokenizer(ckpt), problems, args.activity_samples, seeds.rollout_activity(args.seeds[0])
    )
    assert rec[str(stored[-1])]["correct"] == [bool(r.parsed.correct) for r in own]
    assert read_json(gargs.out / ROLLOUT_ACTIVITY)["steps"] == rec
    written = {p: p.stat().st_mtime_ns for p in out.rglob(ROLLOUT_ACTIVITY)}  # a job in a worker writes its record
    monkeypatch.setattr(attribution, "rollout_activity", lambda *a: pytest.fail("read a checkpoint again"))
    assert attribution.activity_stage(args, features) == records
    assert {p: p.stat().st_mtime_ns for p in out.rglob(ROLLOUT_ACTIVITY)} == written and len(written) == len(args.seeds)


def test_diffing_stage__per_band_dictionaries_readings_and_effects_saved_loaded_reported_and_reused(study, monkeypatch):
    """On the smoke study (a matchable band's claim is the matched point of its first diffing_seeds hitting runs,
    another band's the last step of its first diffing_seeds runs): both dictionaries load through sae_lens's loader and
    say what they are; readings are consistent with their rules; every seed has its spliced and causal accuracies;
    results.json and the report carry the three readings and the faithfulness table; a rerun reads the records instead
    of redoing them."""
    from probes.layout import MODEL_DIFFING, read_json
    from probes.saes.change import DICTIONARIES, kind_of
    from probes.saes.crosscoder import NU_MAX, TUNED_ONLY

    out, res = study
    args = sae_groups.hook_stage(preset_args(BandStudyArgs, PRESETS, "smoke", out=out))  # the hook its rule chose
    layout = RunLayout(out)
    d_model = json.loads((layout.base / "config.json").read_text())["hidden_size"]
    records = {}
    for band in band_results.BANDS:
        rec = records[band] = read_json(layout.diffing(band) / MODEL_DIFFING)
        band_res = res["bands"][band]
        hits = {
            f"bands/{band}/seed{s}": step
            for s, step, hit in zip(args.seeds, band_res["matched_step"], band_res["matched_hit"])
            if hit
        }
        if band in res["matchable_bands"]:
            claim, steps = "matched", dict(list(hits.items())[: args.diffing_seeds])
        else:
            claim, steps = "final", {f"bands/{band}/seed{s}": args.grpo_steps for s in args.seeds[: args.diffing_seeds]}
        runs = list(steps)
        assert rec["claim"] == claim and rec["steps"] == steps and set(rec["effects"]) == set(runs)
        for kind in DICTIONARIES:
            sae = load_sae(layout.diffing(band) / kind)
            assert kind_of(sae) == kind and sae.cfg.metadata.hook_name == args.diffing_source.hook
            assert sae.cfg.d_in == (2 if kind == "crosscoder" else 1) * d_model
            d = rec["dictionaries"][kind]
            assert set(d["unique"]) <= set(d["group"]) <= set(d["candidates"]) and set(d["fve"]) == set(runs)
            assert all(d["fire_rate"][j] > 0 for j in d["candidates"]) and set(d["labels"]) == {
                str(j) for j in d["group"]
            }
            if kind == "crosscoder":
                assert all(d["relative_norm"][j] > TUNED_ONLY for j in d["candidates"])
                assert all(max(abs(v) for v in d["nu"][str(j)]) < NU_MAX for j in d["group"])
            for e in rec["effects"].values():
                assert {f"acc/base/{kind}", f"acc/tuned/{kind}", f"ce/tuned/{kind}"} <= set(e)
                assert (f"acc/tuned/{kind}/group" in e) == bool(d["group"]) and all(
                    0 <= v <= 1 for k, v in e.items() if k.startswith("acc/")
                )
    md = res["model_diffing"]
    assert set(md) == set(band_results.BANDS)
    for band, b in md.items():
        assert set(b["readings"]["groups"]) == set(ATTRIBUTED) and len(b["faithfulness"]) == args.diffing_seeds * 5
        assert b["crosscoder"]["n"] == len(records[band]["dictionaries"]["crosscoder"]["group"])
    report = (out / "report.md").read_text()
    assert (
        "## Model diffing" in report
        and "verdict rests on the base SAE's groups" in report
        and (out / "figures" / "crosscoder_norms.png").exists()
    )
    monkeypatch.setattr(diffing, "band_record", lambda *a, **k: pytest.fail("redid a band's model diffing"))
    features = {
        args.sae_args(a).sae_name: read_json(layout.sae(args.sae_args(a).sae_name) / "features.json")
        for a in args.sae_archs
    }
    assert diffing.diffing_stage(args, features) == records


@pytest.mark.slow  # 86 s of the suite's budget; the arithmetic smoke study stays in the default run
def test_band_study__on_mazes_every_stage_reads_the_runs_task_and_a_band_that_never_moved_is_not_diffed(
    tmp_path, study
):
    """``--task maze`` end to end on the smoke presets: the run's config.json has the maze task section, the bands,
    probe sets and causal splits hold mazes, and a band is left out of model diffing exactly when none of its
    diffed runs had a group with reward variance (so no update moved the weights)."""
    from probes.activations import load_sequences
    from probes.layout import MODEL_DIFFING, read_json, read_jsonl

    out = tmp_path / "maze"
    args = preset_args(
        BandStudyArgs, PRESETS, "smoke", out=out, task="maze", seeds=(0, 1), sae_archs=("batchtopk",)
    )  # two seeds, one SAE: time
    res = band_study.main(args)
    layout = RunLayout(out)
    assert read_json(layout.config)["task"] == args.pretrain_args.family.params and args.pretrain_args.task == "maze"
    assert read_json(layout.band_table)["task"]["task"] == "maze"
    sequences = [s for p in layout.acts.glob("*/probe-*/sequences.json") for s in load_sequences(p)[1]]
    assert (
        sequences
        and {s.k for s in sequences} <= {3, 5}
        and all(s.pid.startswith(("sae_probe", "diff_probe")) for s in sequences)
    )
    assert res["verdict"] and set(res["bands"]) == set(band_results.BANDS)
    for band in band_results.BANDS:
        rec = read_json(layout.diffing(band) / MODEL_DIFFING)
        silent = all(
            r["grpo/frac_zero_std"] == 1.0
            for run in rec["steps"]
            for r in read_jsonl(out / run / "metrics.jsonl")
            if "grpo/frac_zero_std" in r
        )
        assert rec.get("unchanged", False) == silent and (band in res["model_diffing"]) != silent
    not_diffed = set(band_results.BANDS) - set(res["model_diffing"])
    assert not_diffed == {"hard"}  # the smoke model never solves side 5, so no hard-band group has reward variance
    assert f"moved the weights): {', '.join(not_diffed)}." in " ".join((out / "report.md").read_text().split())
    script = Path(__file__).parents[2] / "scripts" / "compare_studies.py"  # beside the arithmetic study
    side = subprocess.run([sys.executable, str(script), str(study[0]), str(out)], capture_output=True, text=True)
    assert side.returncode == 0 and "| task | arith | maze |" in side.stdout and "k = 3: " in side.stdout, side.stderr


def test_band_study__the_device_flag_reaches_every_stage_and_the_readers(monkeypatch):
    monkeypatch.setattr(cli, "check_device", lambda name: None)  # routing only: this machine may have no GPU
    args = BandStudyArgs(preset="smoke", device="cuda:1", stages={"grpo": {"device": "cpu"}})
    assert args.pretrain_args.device == args.bands_args.device == args.grpo_args("easy", 0).device == "cuda:1"
    assert (
        args.sae_args("batchtopk").device
        == args.run_device
        == args.diffing_spec.train.device
        == args.diffing_source.device
        == "cuda:1"
    )
    assert (
        BandStudyArgs(preset="smoke", stages={"grpo": {"device": "cpu"}}).grpo_args("easy", 0).device == "cpu"
    )  # no flag: the section


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sample__a_cpu_seed_stream_gives_the_same_completions_on_cuda(smoke_run):
    from experiments.harness import seeds
    from experiments.harness.tasks.arith import Arithmetic, TaskSpec
    from experiments.harness.training.rollout import sampled_rollouts
    from probes.models import load_hf, load_tokenizer

    base = smoke_run / "base"
    problems = [pr for k in (1, 2, 3) for pr in seeds.problems("causal", 0, k, 20, Arithmetic(TaskSpec(5, ("+",))))]
    out = {
        dev: [r.completion_ids for r in sampled_rollouts(load_hf(base, dev), load_tokenizer(base), problems, 4, 7)]
        for dev in ("cpu", "cuda")
    }
    same = sum(a == b for a, b in zip(out["cpu"], out["cuda"]))
    assert same >= 0.95 * len(out["cpu"])  # only where float differences move a probability across a draw


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_band_study__a_parallel_executor_writes_the_same_bytes_as_running_one_after_another(study, tmp_path, executor):
    """The smoke study (made on a pool of 2 worker processes) has its GRPO runs made again from its base model and
    bands, one after another in this process (or on 2 tasks of a local Ray instance): config.json and every run's
    logs and final weights are byte-identical (workers use the same thread count), so everything computed from
    them is too."""
    if executor == "ray":
        pytest.importorskip("ray", reason="the optional ray extra (CI installs it)")
    out, _ = study
    pooled = tmp_path / executor
    for rel in ("config.json", "base", "bands/table.json"):
        (pooled / rel).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (out / rel).is_dir() else shutil.copy
        copy(out / rel, pooled / rel)
    args = preset_args(BandStudyArgs, PRESETS, "smoke", out=pooled, executor=executor, workers=2)
    band_study.train_stages(args)
    assert (pooled / "config.json").read_bytes() == (out / "config.json").read_bytes()
    runs = sorted(p.relative_to(out) for p in out.glob("bands/*/seed*"))
    assert len(runs) == 3 * len(args.seeds)
    for run in runs:
        for name in ("metrics.jsonl", "ledger.jsonl", "checkpoint-8/model.safetensors"):
            assert (pooled / run / name).read_bytes() == (out / run / name).read_bytes(), run / name
    spec = dataclasses.replace(args.diff_source, run=pooled)  # the diff stage's per-checkpoint caching jobs
    ckpts = [pooled / run / "checkpoint-8" for run in runs[:3]]
    run_jobs(cache_activations, [(spec, c) for c in ckpts], executor, workers=2)
    for ckpt in ckpts:
        mine = sorted(RunLayout(pooled).acts.glob(f"{checkpoint_tag(pooled, ckpt)}/probe-*/{spec.hook}/acts.npy"))
        theirs = sorted(
            RunLayout(out).acts.glob(
                f"{checkpoint_tag(out, out / ckpt.relative_to(pooled))}/probe-*/{spec.hook}/acts.npy"
            )
        )
        assert len(mine) == 1 and mine[0].read_bytes() in [t.read_bytes() for t in theirs], ckpt
    with pytest.raises(ValueError, match="executor"):
        BandStudyArgs(executor="threads")
    with pytest.raises(ValueError, match="gpus_per_job"):
        BandStudyArgs(gpus_per_job=1.5)


def test_report_figures__no_legend_covers_an_axes_data_area(study, tmp_path, monkeypatch):
    """Every figure of the report, rendered on the smoke study: each legend (of an axes or of the figure) lies
    outside every axes' data area. The study is a copy, whose stages read every cache and record the original made
    (a copied run directory keeps them: no model is booted)."""
    import matplotlib.pyplot as plt

    from experiments.analysis import band_report

    out = tmp_path / "run"
    shutil.copytree(study[0], out)
    monkeypatch.setattr(sources, "load_bridge", lambda *a: pytest.fail(f"booted {a[0]}: a cache was made again"))
    monkeypatch.setattr(attribution, "load_bridge", lambda *a: pytest.fail(f"booted {a[0]}: a record was made again"))
    args = sae_groups.hook_stage(preset_args(BandStudyArgs, PRESETS, "smoke", out=out))
    features = {n: json.loads((out / "sae" / n / "features.json").read_text()) for n in RunLayout(out).saes()}
    stages = (diffing.diff_stage, attribution.gain_stage, attribution.activity_stage, diffing.diffing_stage)
    analysis = band_study.results(
        args, features, *(stage(args, features) for stage in stages)
    )  # every stage reads its files
    checked = []

    def check(fig, path):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
        for leg in legends:
            box = leg.get_window_extent(renderer)
            assert not any(ax.get_window_extent(renderer).overlaps(box) for ax in fig.axes), path.name
        checked.append(path.name)
        plt.close(fig)
        return f"figures/{path.name}"

    monkeypatch.setattr(band_report, "save_figure", check)
    band_report.write_report(out, analysis)
    assert {"headline.png", "gain.png", "behaviour.png", "feature_change.png", "sae_quality.png"} <= set(checked)
