"""Ingesting another engine's checkpoint series: plain HF folders end to end, and the one-line refusals."""

import shutil

import pytest
from entry_points import run_entry, single_error_line

from experiments import ingest
from experiments.harness.tasks.arith import Arithmetic, TaskSpec
from experiments.harness.training.model import build_tokenizer
from probes.layout import INGESTED, RunDirError, RunLayout, checkpoints, read_json, read_jsonl


@pytest.fixture
def run(copy_run, tmp_path):
    return copy_run(tmp_path / "run")


def _hf_series(root, run, names) -> None:
    """HF checkpoints (copies of the base model) in folders with the given names."""
    for name in names:
        shutil.copytree(RunLayout(run).base, root / name)


def test_ingest__hf_folders_become_a_band_run_evaluated_here_and_never_trained(run, tmp_path):
    _hf_series(tmp_path / "hf", run, ["step-5", "run_at_10"])
    out = ingest.main(
        ingest.IngestArgs(engine="hf", path=tmp_path / "hf", run=run, band="easy", seed=3, preset="smoke")
    )
    assert out == RunLayout(run).band_run("easy", 3) and sorted(checkpoints(out)) == [5, 10]
    record = read_json(out / INGESTED)
    assert record["engine"] == "hf" and set(record["checkpoints"]) == {"5", "10"} and "folder" in record["step_unit"]
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 5, 10]
    assert metrics[0]["eval/acc/all/sampled"] == metrics[2]["eval/acc/all/sampled"]  # the same weights, the same draws
    from experiments import grpo  # a band study's GRPO stage leaves an ingested run as it is

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    grpo.main(ingest.IngestArgs(run=run, band="easy", seed=3, preset="smoke").grpo_args)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    # another band of the same run evaluated with other settings would be compared without a word: refused
    config = RunLayout(run).config.read_bytes()
    with pytest.raises(
        RunDirError, match="ingest/easy/seed3 was evaluated with 4 samples per problem, --preset maze-smoke gives 2"
    ):
        ingest.main(ingest.IngestArgs(engine="hf", path=tmp_path / "hf", run=run, band="hard", preset="maze-smoke"))
    assert RunLayout(run).config.read_bytes() == config and not RunLayout(run).band_run("hard", 0).exists()


def test_ingest__refuses_in_one_line_unmerged_shards_a_foreign_vocabulary_and_a_folder_without_a_step(run, tmp_path):
    shards = tmp_path / "verl" / "global_step_20" / "actor"
    shards.mkdir(parents=True)
    (shards / "model_world_size_2_rank_0.pt").write_bytes(b"")
    said = single_error_line(
        run_entry("ingest", "--engine", "verl", "--path", str(tmp_path / "verl"), "--run", str(run))
    )
    assert "unmerged FSDP shards" in said and "verl.model_merger merge" in said

    _hf_series(tmp_path / "foreign", run, ["step-7"])
    build_tokenizer(Arithmetic(TaskSpec(7, ("+", "-")))).save_pretrained(tmp_path / "foreign" / "step-7")
    said = single_error_line(
        run_entry("ingest", "--engine", "hf", "--path", str(tmp_path / "foreign"), "--run", str(run))
    )
    assert "vocabulary does not match" in said

    _hf_series(tmp_path / "bare", run, ["step-3"])
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "bare" / "step-3" / f).unlink()
    assert "no tokenizer" in single_error_line(
        run_entry("ingest", "--engine", "hf", "--path", str(tmp_path / "bare"), "--run", str(run))
    )

    _hf_series(tmp_path / "nameless", run, ["final"])
    said = single_error_line(
        run_entry("ingest", "--engine", "hf", "--path", str(tmp_path / "nameless"), "--run", str(run))
    )
    assert "no step number" in said
    assert not RunLayout(run).band_run("medium", 0).exists()  # nothing was written for any of them


def test_ledger__reads_verl_rollout_dumps_by_problem_and_rescores_them(run, tmp_path):
    """verl's trainer.rollout_data_dir files (``<step>.jsonl``: input, output, score, step), decoded without special
    tokens: each group becomes one ledger row keyed by the problem's id, right and wrong re-read by bandlens."""
    import json

    from experiments.harness.engines import runs as er
    from experiments.harness.engines.formats import Verifier
    from experiments.harness.tasks.registry import run_task

    task = run_task(run)
    pool = [task.from_record(r) for r in read_json(RunLayout(run).band_table)["pools"]["medium"][:2]]
    dumps = tmp_path / "rollouts"
    dumps.mkdir()
    lines = []
    for pr in pool:  # two right (one of each mode), one wrong, per problem; no <bos>, no <eos>, as verl decodes
        prompt = " ".join(pr.prompt_words()[1:])
        right = [" ".join(pr.completion_words(m)[:-1]) for m in ("deliberate", "direct")]
        wrong = str((pr.answer + 1) % 5)
        lines += [
            {"input": prompt, "output": o, "score": s, "step": 3}
            for o, s in [(right[0], 1.0), (right[1], 1.0), (wrong, 0.0)]
        ]
    (dumps / "3.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    verifier = Verifier(er.verifier_spec(run))
    rows = er.ledger(
        er.completion_rows("verl", dumps), {" ".join(pr.prompt_words()): pr for pr in pool}, verifier.words
    )
    assert [(r["step"], r["pid"], r["successes"], r["group_size"]) for r in rows] == sorted(
        (3, pr.pid, 2, 3) for pr in pool
    )
    assert all(r["modes"] == {"deliberate": 1, "direct": 2, "invalid": 0} for r in rows)
