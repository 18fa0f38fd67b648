"""Opening a run directory from a notebook: one call instead of a copied setup cell."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from probes.layout import RunDirError, RunLayout
from probes.models import offline_mode

SIGNALS_BASE = (
    ("pretrain", "--preset", "smoke", "--confidence", "--abstain-frac", "0.1", "--out"),
    ("bands", "--preset", "smoke", "--run"),
)
"""A base model whose completions state a confidence and may abstain, and its bands (finished steps are skipped)."""
MAKE_SMOKE: dict[str, tuple[tuple[str, ...], ...]] = {
    "band_study": (("band_study", "--preset", "smoke", "--out"),),
    "value_study": (("value_study", "--preset", "smoke", "--run"),),
    "trace_length": (("trace_length", "--preset", "smoke", "--run"),),
    "calibration": (*SIGNALS_BASE, ("calibration", "--preset", "smoke", "--run")),
    "utility": (*SIGNALS_BASE, ("utility", "--preset", "smoke", "--run")),
    "pruning": (("band_study", "--preset", "smoke", "--out"), ("pruning", "--preset", "smoke", "--run")),
    "refinement": (("band_study", "--preset", "smoke", "--out"), ("refinement", "--preset", "smoke", "--run")),
    "remedies": (("band_study", "--preset", "smoke", "--out"), ("remedies", "--preset", "smoke", "--run")),
}
"""How a missing study is made: the commands a user types, each ending with the run directory."""
REPO = Path(__file__).resolve().parents[1]
"""Relative run paths are read from here (the checkout), whatever directory the kernel started in."""


def open_run(path: str | Path | None = None, needs: tuple[str, ...] = ("band_study",)) -> RunLayout:
    """The run at ``path`` (default: $BANDLENS_RUN, else runs/smoke; relative paths from the repository root),
    ready to read.

    Pins torch to one thread (a notebook shares the machine with other work) and keeps Hugging Face offline.
    A notebook only reads: when a study in ``needs`` has no results, RunDirError names the commands that make
    them (the smoke preset), and nothing is run or written."""
    torch.set_num_threads(1)
    offline_mode()
    root = Path(path or os.environ.get("BANDLENS_RUN", "runs/smoke"))
    layout = RunLayout(root if root.is_absolute() else REPO / root)
    done = {
        "band_study": layout.results,
        "value_study": layout.value.results,
        "trace_length": layout.trace_length / "trace_length.json",
        "calibration": layout.calibration().results,
        "utility": layout.utility().results,
        "pruning": layout.pruning.results,
        "refinement": layout.refinement.results,
        "remedies": layout.remedies.results,
    }
    missing = [study for study in needs if not done[study].exists()]
    if missing:
        commands = dict.fromkeys(
            f"python -m experiments.{m} {' '.join(flags)} {layout.root}" for s in missing for m, *flags in MAKE_SMOKE[s]
        )
        raise RunDirError(
            f"{layout.root}: no {', '.join(missing)} results, and a notebook only reads; make them from the repository "
            f"root with: {' && '.join(commands)}"
        )
    print(layout.root)
    return layout
