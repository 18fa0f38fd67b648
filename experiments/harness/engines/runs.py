"""Reading what another RL engine wrote: its checkpoint series, its logged metrics and its sampled completions.

* TRL writes ``checkpoint-<N>/`` (HF weights, tokenizer, ``trainer_state.json`` whose ``log_history`` holds one
  row per logged step) and, with ``log_completions=True``, ``completions/completions_<NNNNN>.parquet`` (one row
  per completion: step, prompt, completion, reward, advantage). N counts optimizer steps.
* verl writes ``global_step_<N>/actor/`` as sharded FSDP state; ``python -m verl.model_merger merge --backend fsdp
  --local_dir <ckpt>/actor --target_dir <dir>`` makes an HF directory of it, which is read where it is found
  inside ``global_step_<N>/`` (``actor/huggingface/`` is verl's own place for the config and tokenizer). Its
  ``trainer.rollout_data_dir`` holds ``<N>.jsonl`` files, one line per response (input, output, score, step),
  decoded without special tokens. Its metrics go to its loggers (console, wandb …), which are not read here.
* Plain HF directories: one per checkpoint, the step being the last number in the folder's name.

Anything that cannot be read stops with one line (``RunDirError``): no checkpoint found, a folder with no step
number, shards that were never merged, a checkpoint without a tokenizer, a vocabulary that is not the run's.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import experiments
from experiments.harness.engines.formats import task_spec
from experiments.harness.tasks.family import BOS, PAD, Problem
from experiments.harness.tasks.registry import run_task
from experiments.harness.training import rl
from experiments.harness.training.rollout import max_new_tokens
from probes.layout import RunDirError, RunLayout, read_json
from probes.models import load_tokenizer

ENGINES = ("trl", "verl", "hf")
STEP_UNITS = {
    "trl": "optimizer step (TRL global_step)",
    "verl": "trainer step (verl global_step: one rollout batch)",
    "hf": "the number in each checkpoint folder's name",
}
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER = ("tokenizer.json", "tokenizer_config.json")
TRL_METRICS = {
    "reward": "grpo/reward_mean",
    "reward_std": "grpo/reward_std",
    "frac_reward_zero_std": "grpo/frac_zero_std",
    "completions/mean_length": "grpo/length_mean",
    "kl": "grpo/kl",
}
"""TRL's logged names -> bandlens's (every other logged value is kept as ``engine/<name>``)."""


def _has_weights(d: Path) -> bool:
    return (d / "config.json").is_file() and any((d / w).is_file() for w in WEIGHTS)


def _merged(step_dir: Path) -> Path:
    """The HF directory inside a verl ``global_step_<N>/``, or a one-line error naming the merge command."""
    for d in (step_dir, step_dir / "actor" / "huggingface", *sorted(p for p in step_dir.rglob("*") if p.is_dir())):
        if _has_weights(d):
            return d
    if list(step_dir.glob("actor/*.pt")):
        raise RunDirError(
            f"{step_dir}: unmerged FSDP shards; run python -m verl.model_merger merge --backend fsdp "
            f"--local_dir {step_dir / 'actor'} --target_dir {step_dir / 'actor' / 'huggingface'}"
        )
    raise RunDirError(f"{step_dir}: no HF weights (config.json and model.safetensors) inside")


def checkpoint_series(engine: str, path: Path) -> dict[int, Path]:
    """Step -> HF directory of every checkpoint an engine wrote under ``path``, in step order."""
    if engine not in ENGINES:
        raise RunDirError(f"engine: must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not Path(path).is_dir():
        raise RunDirError(f"{path}: not a directory")
    pattern = {"trl": r"checkpoint-(\d+)", "verl": r"global_step_(\d+)"}.get(engine)
    found: dict[int, Path] = {}
    for d in sorted(p for p in Path(path).iterdir() if p.is_dir() and not p.name.startswith(".")):
        if engine == "hf":
            if not _has_weights(d):
                continue
            numbers = re.findall(r"\d+", d.name)
            if not numbers:
                raise RunDirError(f"{d}: checkpoint folder with no step number in its name (name it e.g. step-100)")
            found[int(numbers[-1])] = d
        elif m := re.fullmatch(pattern, d.name):
            found[int(m.group(1))] = _merged(d) if engine == "verl" else d
    if not found:
        raise RunDirError(f"{path}: no {engine} checkpoints found")
    return dict(sorted(found.items()))


def verifier_spec(run: Path) -> dict:
    """What an engine's reward and an ingest re-read completions with (``engine_formats.Verifier``): the run's task,
    its base model's vocabulary by id, and the completion limit (bandlens's own room over every pool and the eval
    set)."""
    layout = RunLayout(run)
    tokenizer = load_tokenizer(layout.base)  # refuses a base that is not a checkpoint, in one line
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    table, task = read_json(layout.band_table), run_task(run, vocab)
    problems = [task.from_record(r) for rows in (*table["pools"].values(), table["eval_set"]) for r in rows]
    return task_spec(task, vocab, max_new_tokens(problems), Path(experiments.__file__).resolve().parents[1])  # checkout


def check_vocabulary(ckpt: Path, vocab: Sequence[str], read_vocab: Callable[[Path], list[str]]) -> None:
    """The checkpoint has a tokenizer and it speaks the run's language, word for word."""
    if not any((ckpt / t).is_file() for t in TOKENIZER):
        raise RunDirError(f"{ckpt}: no tokenizer (tokenizer.json); save the tokenizer with the checkpoint")
    theirs = read_vocab(ckpt)
    if list(theirs) != list(vocab):
        differ = next((i for i, (a, b) in enumerate(zip(theirs, vocab)) if a != b), min(len(theirs), len(vocab)))
        raise RunDirError(
            f"{ckpt}: vocabulary does not match the run's ({len(theirs)} vs {len(vocab)} words, first "
            f"difference at id {differ}); it was not trained from this run's base model"
        )


def trl_log(path: Path, last: Path) -> list[dict]:
    """The logged rows of a TRL run (the last checkpoint's ``trainer_state.json``), renamed to bandlens's keys."""
    state = last / "trainer_state.json"
    if not state.is_file():
        return []
    rows = []
    for entry in json.loads(state.read_text())["log_history"]:
        if "step" not in entry or "train_runtime" in entry:  # the end-of-training summary row
            continue
        row = {"step": int(entry["step"])}
        row |= {
            TRL_METRICS.get(k, f"engine/{k}"): v for k, v in entry.items() if k != "step" and isinstance(v, int | float)
        }
        rows.append(row)
    return rows


def completion_rows(engine: str, path: Path) -> list[dict]:
    """Every logged completion as {step, prompt, completion, reward}: TRL's completions parquet files or verl's
    rollout dumps under ``path`` (empty when the engine logged none)."""
    if engine == "trl":
        files = sorted(Path(path).glob("completions/completions_*.parquet"))
        if not files:
            return []
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise RunDirError("reading TRL's completions needs pyarrow (pip install pyarrow)") from None
        return [
            {"step": int(r["step"]), "prompt": r["prompt"], "completion": r["completion"], "reward": float(r["reward"])}
            for f in files
            for r in pq.read_table(f).to_pylist()
        ]
    if engine == "verl":
        out = []
        for f in sorted(Path(path).rglob("*.jsonl"), key=lambda p: (len(p.stem), p.stem)):
            for line in f.read_text().splitlines():
                r = json.loads(line)
                out.append(
                    {
                        "step": int(r.get("step", f.stem)),
                        "prompt": r["input"],
                        "completion": r["output"],
                        "reward": float(r["score"]),
                    }
                )
        return out
    return []


def prompt_key(text: str) -> str:
    """A prompt's words without the special tokens an engine's decoding may drop (verl decodes its dumped inputs
    with ``skip_special_tokens``, losing ``<bos>``)."""
    return " ".join(w for w in text.split() if w not in (BOS, PAD))


def ledger(rows: Iterable[Mapping], problem_of: Mapping[str, Problem], words: Callable[[str], list[str]]) -> list[dict]:
    """bandlens ledger rows (``rl.ledger_row``: one per step and prompt) from completion rows, each completion read
    again by bandlens's own parser (``words`` turns the engine's text into completion words)."""
    groups: dict[tuple[int, str], list] = defaultdict(list)
    by_prompt = {prompt_key(text): pr for text, pr in problem_of.items()}
    for r in rows:
        problem = by_prompt.get(prompt_key(str(r["prompt"])))
        if problem is not None:
            groups[r["step"], problem.pid].append((problem, problem.parse(words(r["completion"]))))
    return [rl.ledger_row(step, group[0][0], [p for _, p in group]) for (step, _), group in sorted(groups.items())]
