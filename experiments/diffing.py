"""Diff every checkpoint of every band run against the base model in a shared SAE basis.

For each checkpoint: a small fixed probe set (held-out problems with the checkpoint's own
sampled completions, plus teacher-forced canonical traces and direct answers), its
activations at the SAE's hook, the SAE's reconstruction quality there (does the shared
basis still fit?), and every latent's mean code over the sampled and the canonical rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from experiments.grpo import TRAINER_STATE
from experiments.train_sae import TrainSAEArgs, open_source
from probes.diff import latent_means, rows_of
from probes.sae_eval import high_level_width, reconstruction_stats

VIEWS = ("sampled", "canonical")
"""Rows a latent's activity is averaged over: the checkpoint's own completions, or fixed canonical ones."""


def checkpoints(run: Path) -> list[Path]:
    """The base model, then every band run's checkpoints in step order."""
    ckpts = sorted(run.glob("bands/*/seed*/ckpt-*"), key=lambda p: (str(p.parent), int(p.name.split("-")[1])))
    return [run / "base", *[c for c in ckpts if (c / TRAINER_STATE).exists()]]


def read_checkpoint(probe_args: TrainSAEArgs, ckpt: Path, saes: Mapping[str, object]) -> dict:
    """Per SAE: FVE/L0 on the checkpoint's activations and latent means per view."""
    src = open_source(probe_args, ckpt)
    out = {}
    for name, sae in saes.items():
        rows = src.cache.rows("train", unique=True)
        rows = rows if len(rows) else src.cache.rows("eval", unique=True)
        stats = reconstruction_stats(sae, src.cache, rows, high_width=high_level_width(sae))
        means = {view: latent_means(sae, src.cache, rows_of(src.cache, view)) for view in VIEWS}
        out[name] = {"fve": stats.fve, "l0": stats.l0, "dead_frac": stats.dead_frac, "means": means}
    return out


def read_all(probe_args: TrainSAEArgs, ckpts: Sequence[Path], saes: Mapping[str, object]) -> dict[str, dict]:
    """read_checkpoint for every checkpoint, keyed by path relative to the run."""
    return {
        str(ckpt.relative_to(probe_args.run)): read_checkpoint(probe_args, ckpt, saes)
        for ckpt in tqdm(ckpts, desc="diff: checkpoints")
    }


def means_tensors(readings: Mapping[str, dict]) -> dict[str, torch.Tensor]:
    """Flat name -> tensor map of every latent-means vector (for safetensors)."""
    return {
        f"{ckpt}|{sae}|{view}": m["means"][view].contiguous()
        for ckpt, per_sae in readings.items()
        for sae, m in per_sae.items()
        for view in VIEWS
    }
