"""The trace-length study's figure, one row per run: generated trace length against difficulty per
setting; the length-difficulty correlation against distance from the pretraining distribution; and,
where band runs were measured, that correlation after GRPO on each band."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from experiments.analysis.figures import save_figure
from experiments.analysis.trace_length_results import RunLengths, TraceLengthResult
from probes.bands import COLORS

MARKERS = {"none": "o", "knob": "s", "density": "^"}


def plot(result: TraceLengthResult, path: Path) -> str:
    runs = result.runs
    cols = 3 if any(res.by_band for res in runs) else 2
    fig, axes = plt.subplots(len(runs), cols, figsize=(5.5 * cols, 4.2 * len(runs)), squeeze=False)
    for row, res in zip(axes, runs):
        scatter, corr = row[0], row[1]
        shown = [s for s in res.settings if s.setting != "beyond, pooled"]
        colors = dict(zip([s.setting for s in shown], plt.cm.viridis(np.linspace(0, 0.9, len(shown)))))
        jitter = np.random.default_rng(0)
        for s in shown:
            rows = [r for r in res.rows if r.setting == s.setting]
            d = np.array([r.difficulty for r in rows], float)
            scatter.scatter(
                d + jitter.uniform(-0.2, 0.2, d.size),
                [r.generated for r in rows],
                s=9,
                alpha=0.5,
                color=colors[s.setting],
                label=s.setting,
            )
        rows = sorted(res.rows, key=lambda r: r.difficulty)
        scatter.plot(
            [r.difficulty for r in rows], [r.canonical for r in rows], color="black", lw=1, label="correct trace"
        )
        scatter.set(
            xlabel="intrinsic difficulty (operations a correct trace performs)",
            ylabel="generated trace length (tokens)",
            title=f"{res.task['task']}: {Path(res.run).name}",
        )
        scatter.legend(fontsize=7)
        for axis in ("none", "knob", "density"):
            pts = [s for s in res.settings if s.axis == axis and not s.constant_difficulty]
            if not pts:
                continue
            x = [s.distance for s in pts]
            y = [s.rho.mean for s in pts]
            err = [[m - s.rho.ci95[0] for m, s in zip(y, pts)], [s.rho.ci95[1] - m for m, s in zip(y, pts)]]
            label = {"none": "in distribution", "knob": "larger problems", "density": "other loop density"}[axis]
            corr.errorbar(x, y, yerr=err, fmt=MARKERS[axis], capsize=3, label=label)
        corr.axhline(0, color="grey", lw=0.8)
        corr.set(
            xlabel="distance from pretraining (knob steps, or loop-density difference)",
            ylabel="Spearman rho, generated length vs difficulty (95% CI)",
            ylim=(-1.05, 1.05),
        )
        corr.legend(fontsize=7)
        if cols == 3:
            after(row[2], res)
    fig.tight_layout()
    return save_figure(fig, path)


def after(ax, res: RunLengths) -> None:
    """rho per setting for the base model and, per band, the mean over its runs' final checkpoints."""
    shown = [s for s in res.settings if not s.constant_difficulty]
    x = np.arange(len(shown))
    ax.plot(x, [s.rho.mean for s in shown], "k--o", label="base model")
    for band, cells in res.by_band.items():
        ax.plot(x, [cells[s.setting].mean for s in shown], "-o", color=COLORS.get(band), label=f"after GRPO on {band}")
    ax.set_xticks(x, [s.setting for s in shown], rotation=20, fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="setting", ylabel="Spearman rho, length vs difficulty (mean over seeds)", ylim=(-1.05, 1.05))
    ax.legend(fontsize=7)
