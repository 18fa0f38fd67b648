"""The calibration study's figures (reliability diagrams; accuracy against ECE) and report.md."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from experiments.analysis.calibration_results import CalibrationResult
from experiments.analysis.figures import save_figure
from experiments.analysis.profile import profile_lines
from experiments.analysis.text import interval
from experiments.harness.rundir import write_text
from probes.layout import RewardStudyLayout


def _colors(variants: list[str]) -> dict[str, str]:
    return {v: "0.5" if v == "base" else f"C{i}" for i, v in enumerate(variants)}


def fig_reliability(out: RewardStudyLayout, result: CalibrationResult) -> str:
    """Per split: accuracy against mean stated confidence per bin, one line per variant (top), and how the
    stated confidences spread over the bins (bottom)."""
    splits = list(result.reliability)
    fig, axes = plt.subplots(
        2, len(splits), figsize=(4.6 * len(splits), 7.0), squeeze=False, height_ratios=(3, 1.4), sharex=True
    )
    for col, split in enumerate(splits):
        per_variant = result.reliability[split]
        colors = _colors(list(per_variant))
        top, bottom = axes[0][col], axes[1][col]
        top.plot([0, 1], [0, 1], color="0.8", ls="--", lw=1, label="calibrated")
        for v, bins in per_variant.items():
            shown = [b for b in bins if b["n"]]
            top.plot(
                [b["confidence"] for b in shown],
                [b["accuracy"] for b in shown],
                marker="o",
                ms=3,
                color=colors[v],
                label=v,
            )
            total = sum(b["n"] for b in bins) or 1
            centres = [(b["lo"] + b["hi"]) / 2 for b in bins]
            bottom.plot(centres, [b["n"] / total for b in bins], marker=".", color=colors[v], label=v)
        top.set(title=split, ylabel="accuracy in the bin", xlim=(0, 1), ylim=(0, 1))
        bottom.set(xlabel="stated confidence q", ylabel="share of answers")
    axes[0][-1].legend(fontsize=8)
    return save_figure(fig, out.figures / "reliability.png")


def fig_accuracy_ece(out: RewardStudyLayout, result: CalibrationResult) -> str:
    """Per split: each variant's accuracy against its ECE, with their intervals."""
    splits = list(result.splits)
    fig, axes = plt.subplots(1, len(splits), figsize=(4.6 * len(splits), 4.0), squeeze=False)
    for ax, split in zip(axes[0], splits):
        table = result.splits[split]
        colors = _colors(list(table))
        for v, row in table.items():
            a, e = row["accuracy"], row["ece"]
            ax.errorbar(
                e["mean"],
                a["mean"],
                xerr=np.abs(np.subtract(e["ci"], e["mean"]))[:, None],
                yerr=np.abs(np.subtract(a["ci"], a["mean"]))[:, None],
                fmt="o",
                color=colors[v],
                label=v,
                capsize=3,
            )
        ax.set(title=split, xlabel="ECE (lower is better calibrated)", ylabel="accuracy (sampled, T = 1)")
    axes[0][-1].legend(fontsize=8)
    return save_figure(fig, out.figures / "accuracy_vs_ece.png")


def _cell(m: dict) -> str:
    return interval(m["mean"], *m["ci"], fmt=".3f")


def table_lines(result: CalibrationResult) -> list[str]:
    lines = []
    for split, table in result.splits.items():
        lines += [
            f"**{split}**",
            "",
            "| variant | accuracy | ECE | Brier | AUROC | states q | vote | q-weighted vote |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v, row in table.items():
            cells = [_cell(row[m]) for m in ("accuracy", "ece", "brier", "auroc")]
            votes = row["votes"]
            lines.append(
                f"| {v} | {' | '.join(cells)} | {row['stated']['mean']:.2f} | {votes['majority']:.3f} | "
                f"{votes['weighted']:.3f} |"
            )
        lines.append("")
    return lines


def write_report(out: RewardStudyLayout, result: CalibrationResult) -> None:
    figs = {"reliability": fig_reliability(out, result), "accuracy_ece": fig_accuracy_ece(out, result)}
    lines = [
        "# Calibration: binary vs Brier-augmented vs log rewards",
        "",
        f"**Verdict.** {result.verdict}",
        "",
        f"GRPO on the {result.band} pool with rewards {', '.join(result.rewards)} (seeds {result.seeds}), every other "
        f"knob equal; the base model beside them. In distribution: k <= {result.k_train_max} (the pretraining range); "
        "beyond: larger k. Accuracy pools every sampled completion (an abstention, where the run can abstain, is not "
        "right); "
        "ECE (10 equal-width bins of q), Brier and AUROC pool those that state a confidence. Intervals: "
        f"{result.level:.1%} (95% Bonferroni-adjusted over 2 metrics x 2 splits), two-level bootstrap over seeds then "
        "problems; with few seeds the seed level is coarse. Votes: the share of problems whose plain majority (or "
        "q-weighted) answer over its samples is right, mean over seeds.",
        "",
        *table_lines(result),
        f"![reliability diagrams]({figs['reliability']})",
        "",
        f"![accuracy against ECE]({figs['accuracy_ece']})",
        "",
        "## Profile",
        "",
        *profile_lines(out.profile),
    ]
    write_text(out.report, "\n".join(lines))
