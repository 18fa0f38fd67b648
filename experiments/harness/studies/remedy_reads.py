"""What the remedies study reads from one model: its greedy outcome on every held-out problem (for damage) and the
headline SAE's group activity on the band study's diff probe set (the band study's instrument of internal change).

A job per model on the study's executor; each record is kept in ``remedies/samples/<model>.json``, so a rerun
only reads the models it has not read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from experiments.harness.reading.diffing import read_checkpoint
from experiments.harness.reading.sources import SourceSpec
from experiments.harness.rundir import write_json
from experiments.harness.tasks.family import Problem
from experiments.harness.training.rollout import EVAL_BATCH, rollouts
from probes.diff import VIEWS, group_activity
from probes.layout import read_json
from probes.models import load_hf, load_tokenizer
from probes.saes.train import load_sae


@dataclasses.dataclass(frozen=True)
class ModelRead:
    """One model to read (``read_model``)."""

    ckpt: Path
    """HF model directory (the base model or a run's final checkpoint)."""
    record: Path
    """Where its record is kept."""
    problems: tuple[Problem, ...]
    """The held-out problems (the band table's eval set), in its order."""
    source: SourceSpec
    """The band study's diff probe set at the headline SAE's hook."""
    sae: Path
    """The headline SAE (sae_lens directory)."""
    groups: Mapping[str, tuple[int, ...]]
    """Its feature groups."""
    device: str


def read_model(job: ModelRead) -> dict:
    """``{"greedy": [bool per held-out problem], "activity": {group: mean code}, "fve": float}``, read now (and
    kept) unless the record exists."""
    if job.record.is_file():
        return read_json(job.record)
    model, tokenizer = load_hf(job.ckpt, job.device), load_tokenizer(job.ckpt)
    greedy = rollouts(model, tokenizer, list(job.problems), mode=None, temperature=0.0, batch_size=EVAL_BATCH)
    reading = read_checkpoint(job.source, job.ckpt, {"sae": load_sae(job.sae, job.device)})["sae"]
    record = {
        "greedy": [bool(r.parsed.correct) for r in greedy],
        "activity": group_activity(reading["means"][VIEWS[0]], job.groups),
        "fve": reading["fve"],
    }
    write_json(job.record, record)
    return record
