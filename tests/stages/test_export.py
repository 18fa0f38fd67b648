"""The engine export of a smoke run (TRL, verl): its rows, the tokenizer and chat template, the reward modules
(bandlens's verifier, importable without torch), the launch files, and one-line refusals."""

import dataclasses
import importlib.util
import inspect
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from entry_points import run_entry, single_error_line
from transformers import AutoTokenizer

from experiments import export, grpo
from experiments.export import PRESETS, ExportArgs
from experiments.harness.cli import preset_args
from experiments.harness.engines import formats as ef
from experiments.harness.tasks.registry import run_task, task_of
from experiments.harness.training.rollout import max_new_tokens
from probes.layout import RunDirError
from probes.models import load_tokenizer

ROOT = Path(__file__).resolve().parents[2]

# Scores each case with an exported reward module in a fresh interpreter, as an engine's reward worker loads it
# (verl: from its file path), and reports what importing and calling it loaded.
PROBE = """
import importlib.util, inspect, json, sys
out, module, cases = sys.argv[1], sys.argv[2], json.loads(open(sys.argv[3]).read())
spec = importlib.util.spec_from_file_location(module, f"{out}/{module}.py")
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
if module == "reward_trl":
    scores = mod.reward([c["prompt"] for c in cases], [c["completion"] for c in cases],
                        [c["ids"] for c in cases] if all(c["ids"] is not None for c in cases) else None,
                        problem=[c["problem"] for c in cases], pid=[c["pid"] for c in cases])
    signature = str(inspect.signature(mod.reward))
else:
    scores = [mod.compute_score(c["data_source"], c["completion"], c["problem"], {"pid": c["pid"]}) for c in cases]
    signature = str(inspect.signature(mod.compute_score))
heavy = sorted(m for m in ("torch", "transformers", "datasets", "pyarrow") if m in sys.modules)
print(json.dumps({"scores": scores, "heavy": heavy, "signature": signature}))
"""


def probe(out: Path, module: str, cases: list[dict], tmp_path: Path) -> dict:
    cases_file = tmp_path / f"{module}-cases.json"
    cases_file.write_text(json.dumps(cases))
    res = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), module, str(cases_file)], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def run(copy_run, tmp_path_factory) -> Path:
    return copy_run(tmp_path_factory.mktemp("export_run") / "run")


@pytest.fixture(scope="module")
def table(run) -> dict:
    return json.loads((run / "bands" / "table.json").read_text())


@pytest.fixture(scope="module")
def out(run, tmp_path_factory) -> Path:
    """One export directory holding both formats (the second export joins the first)."""
    out = tmp_path_factory.mktemp("export") / "out"
    export.main(preset_args(ExportArgs, PRESETS, "smoke", run=run, out=out, format="trl"))
    if ef.has_pyarrow():
        export.main(preset_args(ExportArgs, PRESETS, "smoke", run=run, out=out, format="verl"))
    return out


def cases(table: dict, run: Path) -> list[tuple[dict, list[str], list[str]]]:
    """(row fields, canonical deliberate words, the same with a wrong answer) for a few medium-pool problems."""
    task = run_task(run)
    out = []
    for rec in table["pools"]["medium"][:4]:
        pr = task.from_record(rec)
        words = pr.completion_words("deliberate")
        row = {
            "prompt": ef.prompt_text(pr),
            "problem": json.dumps(pr.as_record()),
            "pid": pr.pid,
            "data_source": "bandlens/arith",
        }
        out.append((row, words, [*words[:-2], str((pr.answer + 1) % pr.p), words[-1]]))
    return out


def decoded(words: list[str]) -> str:
    """What an engine hands the reward: the text decoded with special tokens skipped (no <eos>)."""
    return " ".join(w for w in words if w != "<eos>")


def test_export__trl_rows_hold_every_pool_and_eval_problem_once_with_its_band(out, table):
    for band, records in table["pools"].items():
        rows = read_rows(out / "trl" / f"train_{band}.jsonl")
        assert [r["pid"] for r in rows] == [r["pid"] for r in records] and {r["band"] for r in rows} == {band}
        assert [r["k"] for r in rows] == [r["k"] for r in records]
    rows = read_rows(out / "trl" / "eval.jsonl")
    assert [(r["pid"], r["band"]) for r in rows] == [
        (r["pid"], r["band"]) for r in table["eval_set"]
    ]  # the base model's bands
    assert set(rows[0]) == {"prompt", "problem", "pid", "band", "k", "split", "index"} and isinstance(
        rows[0]["problem"], str
    )


def test_export__trl_jsonl_loads_with_datasets(out, tmp_path):
    datasets = pytest.importorskip("datasets")
    data = datasets.load_dataset("json", data_files=str(out / "trl" / "train_medium.jsonl"), cache_dir=str(tmp_path))[
        "train"
    ]
    assert len(data) == len(read_rows(out / "trl" / "train_medium.jsonl")) and "prompt" in data.column_names
    assert isinstance(data[0]["prompt"], str) and isinstance(data[0]["problem"], str)


def test_export__prompt_text_and_chat_template_tokenize_to_the_ids_bandlens_feeds_its_sampler(out, run):
    tok, base_tok, task = AutoTokenizer.from_pretrained(out / "model"), load_tokenizer(run / "base"), run_task(run)
    rows = read_rows(out / "trl" / "train_hard.jsonl") + read_rows(out / "trl" / "eval.jsonl")
    for row in rows:
        ids = base_tok.convert_tokens_to_ids(
            task.from_record(json.loads(row["problem"])).prompt_words()
        )  # rollout.rollouts
        assert ids[0] == base_tok.bos_token_id
        assert tok([row["prompt"]])["input_ids"][0] == ids  # TRL: processing_class(text=prompts)
        assert tok(row["prompt"], add_special_tokens=False)["input_ids"] == ids  # verl: after the chat template
        messages = [{"role": "user", "content": row["prompt"]}]
        assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == row["prompt"]
        assert (
            tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
            == ids
        )
    assert tok.convert_ids_to_tokens(list(range(len(tok)))) == list(task.vocab)


def test_export__model_dir_is_the_base_model_and_the_sidecar_records_the_task(out, run, table):
    assert (out / "model" / "model.safetensors").read_bytes() == (run / "base" / "model.safetensors").read_bytes()
    spec = json.loads((out / ef.TASK_FILE).read_text())
    task = run_task(run)
    assert spec["task"] == task.params and spec["vocab"] == list(task.vocab) and Path(spec["bandlens_root"]) == ROOT
    problems = [task.from_record(r) for rows in (*table["pools"].values(), table["eval_set"]) for r in rows]
    assert spec["max_completion_length"] == max_new_tokens(problems)


def test_export__trl_reward_is_bandlens_verifier_without_torch(out, run, table, tmp_path):
    tok = load_tokenizer(run / "base")
    with_ids, text, expected = [], [], []
    for row, right, wrong in cases(table, run):
        for words, cut, score in ((right, False, 1.0), (right, True, 0.0), (wrong, False, 0.0)):  # cut: no <eos>
            ids = tok.convert_tokens_to_ids(words[:-1] if cut else words)
            with_ids.append({**row, "completion": decoded(words), "ids": ids})
            expected.append(score)
        for words in (right, wrong):
            text += [
                {**row, "completion": decoded(words), "ids": None},
                {**row, "completion": [{"role": "assistant", "content": decoded(words)}], "ids": None},
            ]
    res_ids, res_text = probe(out, "reward_trl", with_ids, tmp_path), probe(out, "reward_trl", text, tmp_path)
    assert res_ids["scores"] == expected and res_text["scores"] == [1.0, 1.0, 0.0, 0.0] * (len(text) // 4)
    assert res_ids["heavy"] == res_text["heavy"] == []  # bandlens's verifier loads numpy, not torch
    assert res_ids["signature"].startswith("(prompts, completions, completion_ids=None, **kwargs)")


def test_export__verl_parquet_has_the_documented_schema(out, table):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    for split in ("train_easy", "train_medium", "train_hard", "eval"):
        schema = pq.read_schema(out / "verl" / f"{split}.parquet")
        assert schema.names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
        assert schema.field("data_source").type == pa.string() and schema.field("ability").type == pa.string()
        assert schema.field("prompt").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        assert schema.field("reward_model").type == pa.struct([("style", pa.string()), ("ground_truth", pa.string())])
        extra = schema.field("extra_info").type
        assert [extra.field(i).name for i in range(extra.num_fields)] == ["pid", "band", "k", "split", "index"]
    rows = pq.read_table(out / "verl" / "train_medium.parquet").to_pylist()
    assert [r["extra_info"]["pid"] for r in rows] == [r["pid"] for r in table["pools"]["medium"]]
    assert {r["data_source"] for r in rows} == {"bandlens/arith"} and {r["ability"] for r in rows} == {"math"}
    assert all(r["reward_model"]["style"] == "rule" and r["prompt"][0]["role"] == "user" for r in rows)
    evals = pq.read_table(out / "verl" / "eval.parquet").to_pylist()
    assert [r["extra_info"]["band"] for r in evals] == [r["band"] for r in table["eval_set"]]


def test_export__verl_reward_is_bandlens_verifier_with_verls_signature(out, run, table, tmp_path):
    pytest.importorskip("pyarrow")
    spec = importlib.util.spec_from_file_location("reward_verl_signature", out / "reward_verl.py")  # as verl loads it
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = inspect.signature(module.compute_score).parameters
    assert (
        list(params) == ["data_source", "solution_str", "ground_truth", "extra_info"]
        and params["extra_info"].default is None
    )
    rows = [(row, words) for row, right, wrong in cases(table, run) for words in (right, wrong)]
    res = probe(
        out, "reward_verl", [{**row, "completion": decoded(words), "ids": None} for row, words in rows], tmp_path
    )
    assert res["scores"] == [1.0, 0.0] * (len(rows) // 2) and res["heavy"] == []
    limit = json.loads((out / ef.TASK_FILE).read_text())["max_completion_length"]
    row, right = rows[0]
    answer = right[-2]
    padded = lambda n: " ".join(["<think>", answer, *["+", "0", answer] * n, "</think>", answer])  # noqa: E731 -- right, 3n + 4 words
    fits, fills = (limit - 5) // 3, -(-(limit - 4) // 3)
    res = probe(out, "reward_verl", [{**row, "completion": padded(n)} for n in (fits, fills)], tmp_path)
    assert res["scores"] == [1.0, 0.0]  # a response as long as the limit was cut short, not ended
    with pytest.raises(ValueError, match="data_source"):
        module.compute_score("openai/gsm8k", decoded(right), row["problem"])


def test_export__launch_files_carry_the_grpo_settings(out):
    trl = (out / "trl_grpo.py").read_text()
    compile(trl, "trl_grpo.py", "exec")
    smoke = ExportArgs(**PRESETS["smoke"])
    for setting in (
        f"num_generations={smoke.group_size}",
        "beta=0.0",
        'scale_rewards="group"',
        'loss_type="dapo"',
        "epsilon=0.2",
        "log_completions=True",
        f"per_device_train_batch_size={smoke.group_size * smoke.prompts_per_step}",
    ):
        assert setting in trl
    if (out / "verl_grpo.sh").exists():
        verl = (out / "verl_grpo.sh").read_text()
        assert subprocess.run(["bash", "-n", str(out / "verl_grpo.sh")]).returncode == 0
        for key in (
            "algorithm.adv_estimator=grpo",
            f"actor_rollout_ref.rollout.n={smoke.group_size}",
            'actor_rollout_ref.model.path="$HERE/model"',
            'reward.custom_reward_function.path="$HERE/reward_verl.py"',
            "reward.custom_reward_function.name=compute_score",
            "trainer.rollout_data_dir=",
            "python -m verl.model_merger merge --backend fsdp",
        ):
            assert key in verl
        bad = subprocess.run(["bash", str(out / "verl_grpo.sh"), "extreme"], capture_output=True, text=True)
        assert bad.returncode == 2 and "band must be one of" in bad.stderr
    manifest = json.loads((out / export.MANIFEST).read_text())
    assert manifest["formats"] == (["trl", "verl"] if ef.has_pyarrow() else ["trl"])


def trl_script(out: Path) -> dict:
    """The exported ``trl_grpo.py`` as a module: its ``parse_args`` builds the GRPOConfig that ``main`` trains with."""
    pytest.importorskip("trl")
    return runpy.run_path(str(out / "trl_grpo.py"), run_name="trl_grpo")


def exported(out: Path) -> dict:
    """The settings the export recorded, as GRPOConfig names them."""
    s = json.loads((out / export.MANIFEST).read_text())["trl"]
    return {
        "max_steps": s["steps"],
        "learning_rate": s["lr"],
        "num_generations": s["group_size"],
        "per_device_train_batch_size": s["prompts_per_step"] * s["group_size"],
        "epsilon": s["clip_eps"],
        "save_steps": s["checkpoint_every"],
        "seed": s["seed"],
    }


def test_export__trl_script_help_lists_grpoconfig_flags(out):
    pytest.importorskip("trl")
    res = subprocess.run([sys.executable, str(out / "trl_grpo.py"), "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    flags = ["--band {easy,medium,hard}", "--dry_run", "--config FILE.yaml", "--max_steps", "--learning_rate", "--seed"]
    for flag in [*flags, "--num_generations", "--per_device_train_batch_size", "--output_dir", "--save_steps"]:
        assert flag in res.stdout, flag


def test_export__trl_script_defaults_are_the_exported_settings(out):
    script_args, config = trl_script(out)["parse_args"](["--band", "hard"])
    assert script_args.band == "hard" and not script_args.dry_run
    assert {name: getattr(config, name) for name in exported(out)} == exported(out)
    assert config.max_completion_length == json.loads((out / ef.TASK_FILE).read_text())["max_completion_length"]
    fixed = {"beta": 0.0, "scale_rewards": "group", "loss_type": "dapo", "num_iterations": 1, "temperature": 1.0}
    fixed |= {"lr_scheduler_type": "constant", "weight_decay": 0.0, "bf16": False, "report_to": [], "logging_steps": 1}
    assert {name: getattr(config, name) for name in fixed} == fixed
    assert Path(config.output_dir) == out / "trl_runs" / "hard" / f"seed{exported(out)['seed']}"


def test_export__trl_script_command_line_and_config_file_override_the_defaults(out, tmp_path):
    settings = exported(out)
    assert (settings["max_steps"], settings["learning_rate"]) != (2, 0.001)  # so the overrides below change something
    script = [sys.executable, str(out / "trl_grpo.py"), "--band", "easy"]
    overrides = ["--max_steps", "2", "--learning_rate", "0.001"]
    res = subprocess.run([*script, "--dry_run", *overrides], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]  # the script's own path: parsed and printed, not trained
    config = json.loads(res.stdout)
    assert {name: config[name] for name in settings} == {**settings, "max_steps": 2, "learning_rate": 0.001}
    parse_args = trl_script(out)["parse_args"]
    _, config = parse_args(["--band", "medium", "--seed", "7", "--output-dir", str(tmp_path / "{band}-{seed}")])
    assert config.seed == 7 and config.output_dir == str(tmp_path / "medium-7")
    _, config = parse_args(["--band", "medium", "--seed", "7"])
    assert Path(config.output_dir) == out / "trl_runs" / "medium" / "seed7"
    (tmp_path / "grpo.yaml").write_text("max_steps: 5\nlearning_rate: 0.01\nnum_generations: 4\n")
    _, config = parse_args(["--band", "medium", "--config", str(tmp_path / "grpo.yaml"), "--learning_rate", "0.002"])
    overridden = {"max_steps": 5, "learning_rate": 0.002, "num_generations": 4}  # file over defaults, flags over file
    assert {name: getattr(config, name) for name in settings} == {**settings, **overridden}
    with pytest.raises(SystemExit):
        parse_args(["--band", "extreme"])


def test_export__presets_and_defaults_are_grpos():
    shared = {f.name for f in dataclasses.fields(ExportArgs)} & {f.name for f in dataclasses.fields(grpo.GRPOArgs)} - {
        "run",
        "preset",
    }
    assert shared >= {"steps", "prompts_per_step", "group_size", "lr", "clip_eps", "checkpoint_every", "seed"}
    assert {n: getattr(ExportArgs(), n) for n in shared} == {n: getattr(grpo.GRPOArgs(), n) for n in shared}
    assert set(PRESETS) == set(grpo.PRESETS)
    for name, values in grpo.PRESETS.items():
        assert PRESETS[name] == {k: v for k, v in values.items() if k in shared}


def test_export__refuses_bad_input_in_one_line(run, tmp_path, monkeypatch):
    assert "table.json: missing" in single_error_line(
        run_entry("export", "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a"))
    )
    assert not (tmp_path / "a").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert "not empty and not an export" in single_error_line(
        run_entry("export", "--run", str(run), "--out", str(busy))
    )
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    res = subprocess.run(
        [sys.executable, "-m", "experiments.export", "--run", str(run), "--format", "onnx"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "invalid choice: 'onnx'" in res.stderr
    with pytest.raises(ValueError, match="format: must be one of trl, verl"):
        ExportArgs(format="onnx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bands: must be distinct members"):
        ExportArgs(bands=("medium", "extreme"))
    monkeypatch.setattr(ef, "has_pyarrow", lambda: False)
    with pytest.raises(ValueError, match=r"pip install pyarrow"):
        ExportArgs(format="verl")
    with pytest.raises(RunDirError, match="table.json: missing"):
        export.main(ExportArgs(run=tmp_path / "nowhere", out=tmp_path / "b"))


@pytest.mark.parametrize("params", [{"task": "maze", "max_size": 7}, {"task": "arith", "p": 7, "confidence": True}])
def test_engine_formats__rows_and_verifier_serve_every_family(params):
    """No model needed: a table of a family's problems, its rows, and the verifier on canonical and broken
    completions."""
    task = task_of(params)
    problems = [pr for k in task.knobs(7)[:2] for pr in task.problems(0, k, 2)]
    records = [{**pr.as_record(), "band": "medium", "pass_rate": 0.5} for pr in problems]
    splits = ef.items({"pools": {"medium": records}, "eval_set": records}, task, ("medium",))
    assert list(splits) == ["train_medium", "eval"] and [it.pid for it in splits["eval"]] == [pr.pid for pr in problems]
    row = ef.verl_row(splits["train_medium"][0], task)
    assert (
        row["ability"] == {"maze": "planning", "arith": "math"}[task.name]
        and row["data_source"] == f"bandlens/{task.name}"
    )
    limit = max(len(pr.completion_words("deliberate")) for pr in problems) + 4
    verifier = ef.Verifier(ef.task_spec(task, task.vocab, limit, ROOT))
    for it, pr in zip(splits["train_medium"], problems, strict=True):
        words = pr.completion_words("deliberate")
        assert it.prompt.split() == pr.prompt_words() and task.from_record(json.loads(it.problem)) == pr
        assert verifier.score(it.problem, decoded(words)) == 1.0
        assert verifier.score(it.problem, "", [task.vocab.index(w) for w in words]) == 1.0
        assert verifier.score(it.problem, decoded(words[:-4])) == 0.0  # a broken tail
