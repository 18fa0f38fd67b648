"""Opening a run directory from a notebook: one call instead of a copied setup cell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from probes.layout import RunLayout
from probes.models import offline_mode

SIGNALS_BASE = (("pretrain", "--preset", "smoke", "--confidence", "--abstain-frac", "0.1", "--out"), ("bands", "--preset", "smoke", "--run"))
"""A base model whose completions state a confidence and may abstain, and its bands (finished steps are skipped)."""
MAKE_SMOKE: dict[str, tuple[tuple[str, ...], ...]] = {
    "band_study": (("band_study", "--preset", "smoke", "--out"),),
    "value_study": (("value_study", "--preset", "smoke", "--run"),),
    "trace_length": (("trace_length", "--preset", "smoke", "--run"),),
    "calibration": (*SIGNALS_BASE, ("calibration", "--preset", "smoke", "--run")),
    "utility": (*SIGNALS_BASE, ("utility", "--preset", "smoke", "--run")),
    "pruning": (("band_study", "--preset", "smoke", "--out"), ("pruning", "--preset", "smoke", "--run")),
    "refinement": (("band_study", "--preset", "smoke", "--out"), ("refinement", "--preset", "smoke", "--run")),
}
"""How a missing default run is made: the same commands a user would type, each ending with the run directory."""


def open_run(path: str | Path | None = None, needs: tuple[str, ...] = ("band_study",)) -> RunLayout:
    """The run at ``path`` (default: $BANDLENS_RUN, else runs/smoke), ready to read.

    Pins torch to one thread (a notebook shares the machine with other work) and keeps
    Hugging Face offline. When a study in ``needs`` has no results yet, it is run with
    the smoke preset (``python -m experiments.<study>``): the only writes a notebook causes."""
    torch.set_num_threads(1)
    offline_mode()
    layout = RunLayout(Path(path or os.environ.get("BANDLENS_RUN", "runs/smoke")))
    done = {"band_study": layout.results, "value_study": layout.value.results, "trace_length": layout.trace_length / "trace_length.json",
            "calibration": layout.calibration().results, "utility": layout.utility().results,
            "pruning": layout.pruning.results, "refinement": layout.refinement.results}  # fmt: skip
    for study in needs:
        if not done[study].exists():
            for module, *flags in MAKE_SMOKE[study]:
                subprocess.run([sys.executable, "-m", f"experiments.{module}", *flags, str(layout.root)], check=True)
    print(layout.root.resolve())
    return layout
