"""Opening a run directory from a notebook: one call instead of a copied setup cell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from probes.layout import RunLayout
from probes.models import offline_mode

MAKE_SMOKE = {
    "band_study": ("--preset", "smoke", "--out"),
    "value_study": ("--preset", "smoke", "--run"),
    "trace_length": ("--preset", "smoke", "--run"),
}
"""How a missing default run is made: the same commands a user would type."""


def open_run(path: str | Path | None = None, needs: tuple[str, ...] = ("band_study",)) -> RunLayout:
    """The run at ``path`` (default: $BANDLENS_RUN, else runs/smoke), ready to read.

    Pins torch to one thread (a notebook shares the machine with other work) and keeps
    Hugging Face offline. When a study in ``needs`` has no results yet, it is run with
    the smoke preset (``python -m experiments.<study>``): the only writes a notebook causes."""
    torch.set_num_threads(1)
    offline_mode()
    layout = RunLayout(Path(path or os.environ.get("BANDLENS_RUN", "runs/smoke")))
    done = {"band_study": layout.results, "value_study": layout.value.results, "trace_length": layout.trace_length / "trace_length.json"}
    for study in needs:
        if not done[study].exists():
            cmd = [sys.executable, "-m", f"experiments.{study}", *MAKE_SMOKE[study], str(layout.root)]
            subprocess.run(cmd, check=True)
    print(layout.root.resolve())
    return layout
