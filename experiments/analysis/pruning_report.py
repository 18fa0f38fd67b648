"""The pruning study's figures (test error vs kept-set size beside the random-pruning power law; the
crossover contrast per size) and report.md."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from experiments.analysis.figures import save_figure
from experiments.analysis.profile import profile_lines
from experiments.analysis.pruning_results import Analysis
from experiments.analysis.text import interval
from experiments.harness.rundir import write_text
from probes.layout import PruningLayout

POLICY_STYLE = {"keep_high": ("tab:red", "keep hardest"), "keep_low": ("tab:green", "keep easiest")}
MARKERS = {0.3: "v", 0.5: "o", 0.7: "^"}
ERROR_FLOOR = 1e-3
"""Where a run with no held-out error is drawn on the log axis."""


def fig_scaling(out: PruningLayout, a: Analysis) -> str:
    """Per metric: test error against kept-set size (log-log), keep-hard and keep-easy per fraction, random
    pruning's points and its fitted power law."""
    metrics = [a.design.headline, *a.design.metrics]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False, sharey=True)
    law = a.power_law
    rand = np.array(law["points"], dtype=float).reshape(-1, 2)
    grid = np.geomspace(max(1.0, rand[:, 0].min() * 0.8), rand[:, 0].max() * 1.2, 50) if rand.size else np.array([])
    for ax, metric in zip(axes[0], metrics):
        if rand.size:
            ax.scatter(rand[:, 0], rand[:, 1], color="0.5", s=14, label="random pruning / all data")
        if np.isfinite(law["b"]):
            ax.plot(
                grid, law["a"] * grid ** -law["b"], color="0.5", ls="--", lw=1, label=f"power law, b = {law['b']:.2f}"
            )
        for policy, (color, label) in POLICY_STYLE.items():
            for f in sorted({r["fraction"] for r in a.table if r["metric"] == metric}):
                rows = sorted(
                    (r for r in a.table if (r["metric"], r["policy"], r["fraction"]) == (metric, policy, f)),
                    key=lambda r: r["kept"],
                )
                ax.plot(
                    [r["kept"] for r in rows],
                    [max(1 - r["acc"], ERROR_FLOOR) for r in rows],
                    color=color,
                    marker=MARKERS.get(f, "s"),
                    ms=4,
                    label=f"{label}, f = {f:g}",
                )
        ax.set(xscale="log", yscale="log", title=metric, xlabel="kept examples (size x f)")
    axes[0][0].set_ylabel(f"held-out test error (greedy; 0 drawn at {ERROR_FLOOR:g})")
    for ax in axes[0]:
        ax.legend(fontsize=6)
    return save_figure(fig, out.figures / "error_vs_kept.png")


def fig_crossover(out: PruningLayout, a: Analysis) -> str:
    """Keep-hard minus keep-easy accuracy against dataset size, per metric and fraction, with intervals."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    cells = sorted({(r["metric"], r["fraction"]) for r in a.crossover})
    for i, (metric, f) in enumerate(cells):
        rows = sorted((r for r in a.crossover if (r["metric"], r["fraction"]) == (metric, f)), key=lambda r: r["size"])
        x = np.array([r["size"] for r in rows]) * (1 + 0.03 * (i - len(cells) / 2))  # spread overlapping intervals
        y = np.array([r["hard_minus_easy"] for r in rows])
        err = np.abs(np.array([r["ci"] for r in rows]).T - y)
        ax.errorbar(
            x,
            y,
            yerr=err,
            marker="o",
            ms=4,
            capsize=3,
            lw=2 if rows[0]["headline"] else 1,
            label=f"{metric}, f = {f:g}",
        )
    ax.axhline(0, color="0.6", lw=1)
    ax.set(
        xscale="log",
        xlabel="dataset size (examples)",
        ylabel="keep-hard minus keep-easy accuracy",
        ylim=(-1.05, 1.05),
        title="Crossover: > 0 keeping hard wins, < 0 keeping easy wins",
    )
    ax.legend(fontsize=7)
    return save_figure(fig, out.figures / "crossover.png")


def _cell(m: float, ci) -> str:
    return interval(m, *ci, fmt=".3f")


def _diff(d: dict) -> str:
    return interval(d["mean"], *d["ci"])


def table_lines(a: Analysis) -> list[str]:
    lines = [
        "| size | f | kept | metric | policy | accuracy | vs random (same size, f) | kept: deliberate share, mean k |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in a.table:
        vs = "" if r["policy"] in ("random", "all") else _diff(r["vs_random"])
        mix = f"{r['composition']['deliberate']:.2f}, {r['composition']['k']:.2f}"
        lines.append(
            f"| {r['size']} | {r['fraction']:g} | {r['kept']} | {r['metric']} | {r['policy']} | "
            f"{_cell(r['acc'], r['ci'])} | {vs} | {mix} |"
        )
    lines += ["", "| metric | f | size | keep-hard minus keep-easy | interval level |", "|---|---|---|---|---|"]
    for r in a.crossover:
        star = " (verdict)" if r["headline"] else ""
        lines.append(
            f"| {r['metric']}{star} | {r['fraction']:g} | {r['size']} | {interval(r['hard_minus_easy'], *r['ci'])} | "
            f"{r['level']:.4f} |"
        )
    if a.rl:
        lines += ["", "| RL arm | f | accuracy | gain over base | vs random pruning |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['arm']} | {r['fraction']:g} | {_cell(r['acc'], r['ci'])} | {_diff(r['gain'])} | "
            f"{_diff(r['vs_random'])} |"
            for r in a.rl
        ]
    return lines


def write_report(out: PruningLayout, a: Analysis) -> None:
    d = a.design
    figs = {"scaling": fig_scaling(out, a), "crossover": fig_crossover(out, a)}
    law = a.power_law
    overlap = f"k in {a.overlap_ks}" if a.overlap_ks else "none"
    lines = [
        "# Pruning by difficulty: keep-hard, keep-easy and random across data sizes",
        "",
        f"**Verdict.** {a.verdict}",
        "",
        f"Datasets of {', '.join(map(str, d.sizes))} examples (prefixes of one stream) of the run's task family. Each "
        "is scored by EL2N and GraNd (read early in scoring runs on random halves), forgetting events, memorization "
        "(runs with minus without the example) and k. Fresh models train on the kept fraction under keep-hardest "
        "(highest score), keep-easiest and random; every run takes the **same number of updates** (equal compute, so a "
        f"smaller kept set is seen for more epochs). {d.headline} runs the full fraction grid {list(d.fractions)}; "
        f"{', '.join(d.metrics)} run at f in {list(d.other_fractions)} only (the reduced grid; the gpu preset runs all "
        f"of them on every fraction). Seeds {list(d.seeds)}; intervals: two-level bootstrap over seeds then held-out "
        "problems (coarse at the seed level with few seeds); keep-hard minus keep-easy contrasts: Welch t intervals "
        "over the seeds' accuracies, Bonferroni-adjusted (level in the table). Held-out problems that may also be "
        f"training examples (problem space too small to exclude them): {overlap}.",
        "",
        f"Random pruning's power law: test error = {law['a']:.3g} x kept^-{law['b']:.3f}.",
        "",
        *table_lines(a),
        "",
        f"![test error against kept-set size]({figs['scaling']})",
        "",
        f"![crossover contrast]({figs['crossover']})",
        "",
        "RL part: the band pools together, pruned by 1 - base pass rate (`failure_rate`) and by p(1 - p) "
        "(`learnability`; keep_high keeps the most learnable), then GRPO from the base model; accuracy is greedy on "
        "the band eval set.",
        "",
        "## Profile",
        "",
        *profile_lines(out.profile),
    ]
    write_text(out.report, "\n".join(lines))
