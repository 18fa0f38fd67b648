"""A run's band pools and eval set as other RL engines read them (TRL, verl), and the verifier their rewards call.

One row per problem: each band's training pool (``train_<band>``) and the shared held-out set (``eval``, each
row's band the base model's band recorded in ``bands/table.json``). Every row carries ``pid``, ``band``, ``k``,
``split`` and ``index`` (its place in its split) and the problem itself, JSON-encoded as one string (its
``as_record()``): a flat, typed column whatever the family, and exactly what ``Task.from_record`` reads back.

* TRL rows (JSON lines): ``prompt`` is the plain-text prompt, the prompt words joined by single spaces. The run's
  tokenizer (word level, whitespace split, no post-processor) gives that text back as the ids bandlens feeds its
  own sampler (``tokenizer.convert_tokens_to_ids(problem.prompt_words())``), ``<bos>`` included: the ``<bos>`` is
  a word of the prompt text, and calling the tokenizer adds no special token whether or not ``add_special_tokens``
  is set (it has no template to add one with). TRL tokenizes a text prompt with ``processing_class(text=prompts)``.
* verl rows (parquet): ``data_source`` ``bandlens/<task>``, ``prompt`` one user message holding that text,
  ``ability`` (the task's ``ability``), ``reward_model`` ``{style: rule, ground_truth: <problem JSON>}``, ``extra_info``
  ``{pid, band, k, split, index}``. verl renders the message with the exported tokenizer's chat template
  (``CHAT_TEMPLATE``), which gives back the bare prompt text.

``Verifier`` scores an engine's completion with the task's own parser (``Problem.parse(words).reward``: 1.0 iff
the completion is well formed and its answer right). This module imports only ``experiments.harness.tasks.registry`` and
what it needs (numpy; no torch, no transformers), so an exported reward module can import it inside an engine's
reward workers; pyarrow is imported only to write parquet.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.harness.rundir import atomic_file, write_jsonl
from experiments.harness.tasks.family import EOS, UNK, Problem, Task
from experiments.harness.tasks.registry import task_of
from probes.bands import BANDS

FORMATS = ("trl", "verl")
"""Engines an export targets, as ``--format`` spells them."""
EVAL = "eval"
TASK_FILE = "bandlens_task.json"
"""Sidecar beside the reward modules: the task's parameters, the vocabulary by id, the completion limit."""
CHAT_TEMPLATE = "{{ messages | map(attribute='content') | join(' ') }}"
"""The messages' contents joined by single spaces, with no role markers and nothing added for a generation
prompt: one user message renders as the bare prompt text, so a chat-formatted prompt tokenizes to the ids
bandlens feeds its sampler (and a user message followed by an assistant one to prompt plus completion)."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One exported problem: where it comes from, the prompt text and the record the verifier reads."""

    pid: str
    band: str
    k: int
    split: str
    """``train_<band>`` or ``eval``."""
    index: int
    """Place in its split."""
    prompt: str
    problem: str
    """``Problem.as_record()`` as JSON."""


def split_name(band: str) -> str:
    return f"train_{band}"


def prompt_text(problem: Problem) -> str:
    """The prompt words joined by single spaces: what a whitespace-split word-level tokenizer reads back word for
    word."""
    return " ".join(problem.prompt_words())


def items(table: Mapping[str, Any], task: Task, bands: Sequence[str] = BANDS) -> dict[str, list[Item]]:
    """Every problem of the chosen bands' pools and of the eval set, by split (``train_<band>``, ``eval``)."""
    sources = {split_name(b): table["pools"][b] for b in bands}
    sources[EVAL] = table["eval_set"]
    out = {}
    for split, records in sources.items():
        problems = [task.from_record(r) for r in records]
        out[split] = [
            Item(pr.pid, r["band"], pr.k, split, i, prompt_text(pr), json.dumps(pr.as_record(), sort_keys=True))
            for i, (r, pr) in enumerate(zip(records, problems, strict=True))
        ]
    return out


def trl_row(item: Item) -> dict[str, Any]:
    """A TRL dataset row: ``prompt`` (plain text) and the columns TRL hands the reward function as keyword lists."""
    return {
        "prompt": item.prompt,
        "problem": item.problem,
        "pid": item.pid,
        "band": item.band,
        "k": item.k,
        "split": item.split,
        "index": item.index,
    }


def verl_row(item: Item, task: Task) -> dict[str, Any]:
    """A verl dataset row (its documented schema): the problem JSON is the rule reward's ground truth."""
    return {
        "data_source": data_source(task.name),
        "prompt": [{"role": "user", "content": item.prompt}],
        "ability": task.ability,
        "reward_model": {"style": "rule", "ground_truth": item.problem},
        "extra_info": {"pid": item.pid, "band": item.band, "k": item.k, "split": item.split, "index": item.index},
    }


def data_source(task_name: str) -> str:
    return f"bandlens/{task_name}"


def write_trl(out: Path, splits: Mapping[str, Sequence[Item]]) -> list[Path]:
    """``<out>/<split>.jsonl`` per split (``datasets.load_dataset("json", data_files=...)`` reads them)."""
    paths = []
    for split, rows in splits.items():
        path = out / f"{split}.jsonl"
        write_jsonl(path, [trl_row(it) for it in rows])
        paths.append(path)
    return paths


def verl_schema():
    """The parquet schema of verl rows, spelled out so every file has the same types even where a column is empty."""
    import pyarrow as pa

    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            (
                "extra_info",
                pa.struct(
                    [
                        ("pid", pa.string()),
                        ("band", pa.string()),
                        ("k", pa.int64()),
                        ("split", pa.string()),
                        ("index", pa.int64()),
                    ]
                ),
            ),
        ]
    )


def write_verl(out: Path, splits: Mapping[str, Sequence[Item]], task: Task) -> list[Path]:
    """``<out>/<split>.parquet`` per split, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema, paths = verl_schema(), []
    for split, rows in splits.items():
        path = out / f"{split}.parquet"
        table = pa.Table.from_pylist([verl_row(it, task) for it in rows], schema=schema)
        with atomic_file(path, suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
        paths.append(path)
    return paths


def has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def task_spec(task: Task, vocab: Sequence[str], max_completion_length: int, source_root: Path) -> dict[str, Any]:
    """What the sidecar records: the task (``task_of`` reads it back), the tokenizer's words by id, the engine's
    completion limit (a completion of that many tokens without ``<eos>`` was cut short) and where bandlens lives."""
    return {
        "task": task.params,
        "vocab": list(vocab),
        "max_completion_length": max_completion_length,
        "bandlens_root": str(source_root),
    }


class Verifier:
    """bandlens's own parser, scoring an engine's completions of exported problems (binary: ``Outcome.reward``)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.task = task_of(spec["task"])
        self.vocab: list[str] = list(spec["vocab"])
        self.max_completion_length = int(spec["max_completion_length"])
        self.problem = functools.lru_cache(maxsize=4096)(self._problem)  # a group's completions share one problem

    def _problem(self, problem_json: str) -> Problem:
        return self.task.from_record(json.loads(problem_json))

    def words(self, completion: Any, completion_ids: Sequence[int] | None = None) -> list[str]:
        """The completion's words up to and including its first ``<eos>``, as bandlens's sampler returns them.

        Token ids are exact (TRL passes them). Decoded text is not: engines decode with
        ``skip_special_tokens=True``, which drops ``<eos>`` (and ``<bos> <pad> <unk>``), so text that fills the
        whole completion limit was cut short and reads as it is (no ``<eos>``: a format error), and shorter text
        ended at ``<eos>``, which is put back. A conversational completion (a list of messages) reads as its
        messages' contents."""
        if completion_ids is not None:
            words = [self.vocab[i] if 0 <= i < len(self.vocab) else UNK for i in completion_ids]
        else:
            if not isinstance(completion, str):
                completion = " ".join(m["content"] for m in completion)
            words = completion.split()
            if EOS not in words and len(words) < self.max_completion_length:
                words.append(EOS)
        return words[: words.index(EOS) + 1] if EOS in words else words

    def score(self, problem_json: str, completion: Any, completion_ids: Sequence[int] | None = None) -> float:
        """The task's reward for the completion: 1.0 iff well formed and right, else 0.0."""
        return float(self.problem(problem_json).parse(self.words(completion, completion_ids)).reward)


def load_verifier(spec_path: Path) -> Verifier:
    return Verifier(json.loads(Path(spec_path).read_text()))


def data_source_of(spec: Mapping[str, Any]) -> str:
    return data_source(spec["task"]["task"])


# The reward modules an export writes beside its data. Each reads the sidecar beside it and imports bandlens's
# verifier (this module), from the installed package or else from the checkout that made the export.
_REWARD_PREAMBLE = """
import json
import sys
from pathlib import Path

_SPEC = json.loads(Path(__file__).with_name("bandlens_task.json").read_text())
try:
    from experiments.harness.engines.formats import Verifier, data_source_of
except ImportError:  # bandlens is not installed here: use the checkout that made the export
    sys.path.insert(0, _SPEC["bandlens_root"])
    try:
        from experiments.harness.engines.formats import Verifier, data_source_of
    except ImportError as e:
        raise ImportError(f"bandlens is not importable: pip install -e {_SPEC['bandlens_root']} ({e})") from None

_VERIFIER = Verifier(_SPEC)
"""

_REWARD_DOC = (
    """bandlens's own verifier: the task's parser (``experiments.harness.tasks.registry``: """
    """``task_of(params).from_record(problem)
.parse(words).reward``), the same binary reward bandlens's GRPO pays: 1.0 iff the completion is well formed and its
answer is right, else 0.0. The task, the vocabulary and the completion limit come from bandlens_task.json beside
this file; importing this module loads bandlens's task code and numpy, not torch or transformers."""
)

REWARD_TRL = (
    '''"""Reward function for TRL's GRPOTrainer (``reward_funcs=reward_trl.reward``), written by '''
    f'''``experiments.export``.

{_REWARD_DOC}

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` with every other dataset
column as a keyword list; the ``problem`` column is the problem's record. Completion ids are read word for word
(exact, ``<eos>`` included); without them a completion's text (or its messages' contents) is read as words.
"""
{_REWARD_PREAMBLE}

def reward(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
    """One reward per completion: the bandlens task's binary reward of the completion on its row's problem."""
    ids = completion_ids if completion_ids is not None else [None] * len(completions)
    return [_VERIFIER.score(p, c, i) for p, c, i in zip(kwargs["problem"], completions, ids, strict=True)]
'''
)

REWARD_VERL = (
    '''"""verl custom reward (``reward.custom_reward_function.path=<this file> ...name=compute_score``), '''
    f'''written by
``experiments.export``.

{_REWARD_DOC}

verl passes the decoded response (special tokens skipped, so its ``<eos>`` is gone: a response shorter than the
completion limit ended there, one that fills it was cut short and scores 0) and the row's
``reward_model.ground_truth``, the problem's record. A row of another data source is refused.
"""
{_REWARD_PREAMBLE}

def compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float:
    """The bandlens task's binary reward of ``solution_str`` on the problem ``ground_truth`` records."""
    if data_source != data_source_of(_SPEC):
        raise ValueError(f"data_source: this reward scores {{data_source_of(_SPEC)}} rows, got {{data_source!r}}")
    return _VERIFIER.score(ground_truth, solution_str)
'''
)
