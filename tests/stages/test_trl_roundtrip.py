"""Train elsewhere, analyse here, for real: export the smoke run's pools, train each band with TRL's GRPOTrainer on
CPU from the exported script, ingest the checkpoint series, and run the smoke band study on the ingested runs."""

import runpy
import sys

import pytest

from experiments import band_study, export, ingest, pretrain
from experiments.harness.cli import preset_args
from experiments.harness.engines.formats import Verifier
from experiments.harness.engines.runs import completion_rows, verifier_spec
from probes.bands import BANDS
from probes.layout import INGESTED, RunLayout, read_json, read_jsonl

pytest.importorskip("trl")
SEEDS = (0, 1)


def _train_with_trl(script, band: str, seed: int, out, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["trl_grpo.py", "--band", band, "--seed", str(seed), "--output_dir", str(out)])
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.slow  # 71 s: TRL's own loop on CPU; the export and ingest tests cover each side in the default run
def test_trl_round_trip__export_train_ingest_and_the_band_study_reads_the_runs(copy_run, tmp_path, monkeypatch):
    run = copy_run(tmp_path / "run")
    small = dict(steps=4, prompts_per_step=4, group_size=4)  # TRL's loop is slow on CPU: half the smoke budget
    out = export.main(
        preset_args(export.ExportArgs, export.PRESETS, "smoke", run=run, out=tmp_path / "export", format="trl", **small)
    )
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    spec = verifier_spec(run)
    verifier = Verifier(spec)
    problems = {r["pid"]: r for band in BANDS for r in read_json(RunLayout(run).band_table)["pools"][band]}
    for band in BANDS:
        for seed in SEEDS:
            trl_out = tmp_path / "trl" / band / f"seed{seed}"
            _train_with_trl(out / "trl_grpo.py", band, seed, trl_out, monkeypatch)
            ingest.main(
                preset_args(
                    ingest.IngestArgs,
                    ingest.PRESETS,
                    "smoke",
                    engine="trl",
                    path=trl_out,
                    run=run,
                    band=band,
                    seed=seed,
                )
            )
            # TRL's logged rewards (from the exported reward, on token ids) agree with bandlens's verifier re-reading
            # the text
            rows = completion_rows("trl", trl_out)
            assert rows
            by_prompt = {" ".join(verifier.task.from_record(p).prompt_words()): p for p in problems.values()}
            for r in rows:
                problem = verifier.task.from_record(by_prompt[r["prompt"]])
                assert problem.parse(verifier.words(r["completion"])).reward == r["reward"], r
            ran = RunLayout(run).band_run(band, seed)
            assert read_json(ran / INGESTED)["engine"] == "trl" and sorted(
                p.name for p in ran.glob("checkpoint-*")
            ) == ["checkpoint-2", "checkpoint-4"]
            metrics = read_jsonl(ran / "metrics.jsonl")
            assert metrics[0]["step"] == 0 and "eval/acc/all/sampled" in metrics[0] and "grpo/reward_mean" in metrics[1]
            ledger = read_jsonl(ran / "ledger.jsonl")
            assert {r["pid"] for r in ledger} <= {r["pid"] for r in read_json(RunLayout(run).band_table)["pools"][band]}
    weights = {p: p.stat().st_mtime_ns for p in run.glob("bands/*/seed*/checkpoint-*/model.safetensors")}
    study = preset_args(
        band_study.BandStudyArgs,
        band_study.PRESETS,
        "smoke",
        out=run,
        seeds=SEEDS,
        sae_archs=("batchtopk",),
        grpo_steps=small["steps"],
        stages={"pretrain": pretrain.BEYOND_RANGE["smoke"]},
    )  # the copied run's base
    res = band_study.main(study)
    assert {p: p.stat().st_mtime_ns for p in weights} == weights  # never retrained or replayed
    report = " ".join((run / "report.md").read_text().split())
    assert res["verdict"] and res["verdict"] in report and "bands/medium/seed1 (trl, steps in optimizer step" in report
    assert set(res["bands"]) == set(BANDS)
