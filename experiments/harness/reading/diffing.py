"""Diff every checkpoint of every band run against the base model in a shared SAE basis.

For each checkpoint: a small fixed probe set (problems of their own stream, teacher-forced
canonical traces and direct answers, plus the checkpoint's own sampled completions), its
activations at the SAE's hook, the SAE's reconstruction quality there (does the shared
basis still fit?), and every latent's stratified mean code in each view (``probes.diff``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from experiments.harness.reading.sources import SourceSpec, open_source
from probes.diff import VIEWS, rows_of, stratified_means
from probes.layout import RunLayout
from probes.saes.eval import high_level_width, reconstruction_stats


def read_checkpoint(spec: SourceSpec, ckpt: Path, saes: Mapping[str, object]) -> dict:
    """Per SAE: FVE/L0 on the checkpoint's activations and latent means per view."""
    src = open_source(spec, ckpt)
    out = {}
    for name, sae in saes.items():
        rows = src.cache.rows("train", unique=True)
        rows = rows if len(rows) else src.cache.rows("eval", unique=True)
        stats = reconstruction_stats(sae, src.cache, rows, high_width=high_level_width(sae))
        means = {view: stratified_means(sae, src.cache, rows_of(src.cache, view)) for view in VIEWS}
        out[name] = {"fve": stats.fve, "l0": stats.l0, "dead_frac": stats.dead_frac, "means": means}
    return out


def read_all(spec: SourceSpec, ckpts: Sequence[Path], saes: Mapping[str, object]) -> dict[str, dict]:
    """read_checkpoint for every checkpoint, keyed by its name in the run (``RunLayout.name_of``)."""
    layout = RunLayout(spec.run)
    return {layout.name_of(ckpt): read_checkpoint(spec, ckpt, saes) for ckpt in tqdm(ckpts, desc="diff: checkpoints")}


def means_tensors(readings: Mapping[str, dict]) -> dict[str, torch.Tensor]:
    """Flat name -> tensor map of every latent-means vector (for safetensors)."""
    return {
        f"{ckpt}|{sae}|{view}": m["means"][view].contiguous()
        for ckpt, per_sae in readings.items()
        for sae, m in per_sae.items()
        for view in VIEWS
    }
