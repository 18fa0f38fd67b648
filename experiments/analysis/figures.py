"""What every report figure shares: the atomic figure writer (band colours: probes.bands.COLORS)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from experiments.harness.rundir import atomic_file


def save_figure(fig, path: Path) -> str:
    """Write ``fig`` atomically to ``path`` and close it; returns the report-relative link."""
    with atomic_file(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f"{path.parent.name}/{path.name}"
