"""The task families there are, and the task a run, a vocabulary or a band table speaks.

Each family is one module (``experiments.harness.tasks.family`` says what it provides); registering it is one
line in ``FAMILIES``. The first family is the default: its stage presets are the plain names.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from experiments.harness.tasks import arith, counting, hedging, maze
from experiments.harness.tasks.family import Family, Task
from experiments.harness.tasks.hedging import Hedged
from probes.layout import RunDirError, RunLayout, read_json

FAMILIES: dict[str, Family] = {f.name: f for f in (arith.FAMILY, maze.FAMILY, counting.FAMILY)}
"""Every task family by name, the default first."""
TASKS = tuple(FAMILIES)
"""Family names, as ``--task`` and ``config.json`` spell them."""
DEFAULT_TASK = TASKS[0]


def hedged(family: Task, confidence: bool, abstain: bool) -> Task:
    """The family, hedged where its completions state a confidence or may abstain."""
    return Hedged(family, confidence, abstain) if confidence or abstain else family


def stage_preset(task: str, preset: str) -> str:
    """A stage's preset for a family's study: the default family's are the plain names (smoke, default, gpu);
    another family's carry its name (maze-smoke, maze, maze-gpu)."""
    if task == DEFAULT_TASK:
        return preset
    return task if preset == "default" else f"{task}-{preset}"


def with_families(stage: str, own: dict[str, dict]) -> dict[str, dict]:
    """A stage module's presets: its own, then every family's for that stage under ``stage_preset``'s names."""
    out = dict(own)
    for name, family in FAMILIES.items():
        for preset, fields in family.presets.get(stage, {}).items():
            out[stage_preset(name, preset)] = {**own[fields[0]], **fields[1]} if isinstance(fields, tuple) else fields
    return out


def task_of(fields: Mapping[str, Any]) -> Task:
    """The task a run's pretraining fields (or its config's task section) define: ``task`` (default: the default
    family) and that family's parameters, hedged (``experiments.harness.tasks.hedging``) where it states confidences or
    abstains."""
    name = fields.get("task", DEFAULT_TASK)
    if name not in FAMILIES:
        raise ValueError(f"task: must be one of {', '.join(TASKS)}, got {name!r}")
    family = FAMILIES[name].make(fields)
    return hedged(
        family, bool(fields.get("confidence")), bool(fields.get("abstain", fields.get("abstain_frac", 0) > 0))
    )


def task_of_vocab(vocab: Collection[str]) -> Task:
    """The language a checkpoint speaks, read from its vocabulary (a family's generator knobs, such as the
    maze loop fraction, at their defaults: a run's own task comes from its config with ``task_of``)."""
    family = next((t for f in FAMILIES.values() if (t := f.speaks(vocab)) is not None), None)
    if family is None:
        raise ValueError(
            f"no task family speaks a vocabulary of {len(vocab)} words ({', '.join(sorted(vocab)[:8])}, ...)"
        )
    return hedged(family, hedging.CONF in vocab, hedging.ABSTAIN in vocab)


def run_task(run: Path, vocab: Collection[str] = ()) -> Task:
    """The task of a run directory: its config.json's ``task`` section (written by pretraining), else the
    pretraining fields of a run made before that section existed, else (a directory holding a bring-your-own
    checkpoint's reads) the language ``vocab`` names."""
    path = RunLayout(run).config
    config = read_json(path) if path.exists() else {}
    if "task" in config:
        return task_of(config["task"])
    if "pretrain" in config.get("stages", {}):
        return task_of(config["stages"]["pretrain"])
    if not vocab:
        raise ValueError(f"{run}: no task recorded in {path.name} and no vocabulary to read one from")
    return task_of_vocab(vocab)


HEDGING_FLAGS = {"confidence": "--confidence", "abstain": "--abstain-frac"}
"""The pretraining flag that gives a run each hedging word."""


def hedged_task(run: Path, needs: str, user: str) -> Task:
    """The task of a run whose bands are measured and whose completions can ``needs`` (confidence or abstain)
    (``experiments.harness.tasks.hedging``); a one-line RunDirError naming the missing step otherwise."""
    layout = RunLayout(run)
    if not layout.band_table.exists():
        raise RunDirError(
            f"{layout.band_table}: missing; run experiments.pretrain {HEDGING_FLAGS[needs]} ..., then experiments.bands"
        )
    task = run_task(run)
    if not getattr(task, needs, False):
        raise RunDirError(f"{run}: pretrained without {HEDGING_FLAGS[needs]}, which {user} needs")
    return task


def task_of_table(table: Mapping[str, Any]) -> Task:
    """The task whose problems a band table (``bands/table.json``) records; tables made before the task
    interface name only the arithmetic modulus, which is all that reading their records needs."""
    return task_of(table["task"]) if "task" in table else arith.Arithmetic(arith.TaskSpec(table["p"]))
