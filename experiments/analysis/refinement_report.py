"""The refinement study's figures (arms; accuracy against distance beyond the frontier) and report.md."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from experiments.analysis.figures import save_figure
from experiments.analysis.profile import profile_lines
from experiments.analysis.refinement_results import LEVELS, SPLITS, Claim, RefinementResult
from experiments.analysis.text import interval
from experiments.harness.rundir import write_text
from probes.layout import RefinementLayout

SPLIT_COLORS = {"in range": "tab:blue", "beyond": "tab:red"}


def _err(cells: list[dict]) -> np.ndarray:
    """Asymmetric error bars (2 x n) of cells {"mean", "ci"}."""
    return np.array([[c["mean"] - c["ci"][0] for c in cells], [c["ci"][1] - c["mean"] for c in cells]])


def fig_arms(out: RefinementLayout, result: RefinementResult) -> str:
    """Held-out accuracy of arms (a)-(d), in range and beyond, with their intervals."""
    arms = list(result.arms[SPLITS[0]])
    fig, ax = plt.subplots(figsize=(1.6 * len(arms) + 2, 4.0))
    width = 0.8 / len(SPLITS)
    for i, split in enumerate(SPLITS):
        cells = [result.arms[split][a] for a in arms]
        x = np.arange(len(arms)) + (i - (len(SPLITS) - 1) / 2) * width
        ax.bar(
            x,
            [c["mean"] for c in cells],
            width,
            yerr=_err(cells),
            capsize=3,
            color=SPLIT_COLORS[split],
            label=f"{split} (k {'<=' if split == 'in range' else '>'} {result.k_train_max})",
        )
        ax.axhline(
            result.student_before[split],
            color=SPLIT_COLORS[split],
            ls="--",
            lw=1,
            label=f"{split}: student before fine-tuning",
        )
    ax.set_xticks(np.arange(len(arms)), arms)
    ax.set(
        ylabel=f"held-out accuracy (greedy, free choice; {result.level:.1%} CI)",
        ylim=(0, 1),
        title="Fine-tuning the student on each dataset",
    )
    ax.legend(fontsize=8)
    return save_figure(fig, out.figures / "arms.png")


def fig_frontier(out: RefinementLayout, result: RefinementResult) -> str:
    """Accuracy after fine-tuning on each frontier bin against the bin's mean distance beyond the student's frontier."""
    bins = result.frontier.bins
    x = [b.distance for b in bins]
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for split in SPLITS:
        cells = [result.frontier.splits[split][b.arm] for b in bins]
        ax.errorbar(
            x, [c["mean"] for c in cells], yerr=_err(cells), fmt="o-", capsize=3, color=SPLIT_COLORS[split], label=split
        )
    ax.set(
        xlabel="bin's mean distance beyond the student's frontier (1 - pass rate)",
        ylabel=f"held-out accuracy ({result.level:.1%} CI)",
        ylim=(0, 1),
        title="Refinements by how far beyond the student they lie",
    )
    ax.legend(fontsize=8)
    return save_figure(fig, out.figures / "frontier.png")


def _cell(c: dict) -> str:
    return interval(c["mean"], *c["ci"], fmt=".3f")


def _diff(c: dict) -> str:
    d = c["diff"]
    return interval(d["mean"], *d["ci"])


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def competence_lines(result: RefinementResult) -> list[str]:
    tables = result.competence
    names = list(tables)
    lines = ["| k | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in next(iter(tables.values())):
        beyond = " (beyond)" if int(k) > result.k_train_max else ""
        lines.append(f"| {k}{beyond} | " + " | ".join(f"{tables[n][k]:.2f}" for n in names) + " |")
    return lines


def reads_lines(result: RefinementResult) -> list[str]:
    reads = result.reads
    lines = ["| level | samples | kept by the student | mean IFD | mean r-IFD |", "|---|---|---|---|---|"]
    lines += [
        f"| {lv} | {r.n} | {_num(r.kept_share, '.2f')} | {_num(r.ifd)} | {_num(r.rifd)} |" for lv, r in reads.items()
    ]
    levels = list(reads)
    ks = sorted({k for r in reads.values() for k in r.per_k}, key=int)
    lines += ["", "Mean IFD / r-IFD per k:", "", "| k | " + " | ".join(levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for k in ks:
        cells = [reads[lv].per_k.get(k) for lv in levels]
        lines.append(
            f"| {k} | "
            + " | ".join("-" if c is None else f"{_num(c.ifd, '.2f')} / {_num(c.rifd, '.2f')}" for c in cells)
            + " |"
        )
    return lines


def arms_lines(result: RefinementResult) -> list[str]:
    lines = [
        "| arm | examples | accuracy in range | vs original | accuracy beyond | vs original |",
        "|---|---|---|---|---|---|",
    ]
    for arm in result.arms[SPLITS[0]]:
        cells = [f"{_cell(result.arms[s][arm])} | {_diff(result.arms[s][arm])}" for s in SPLITS]
        lines.append(f"| {arm} | {'/'.join(map(str, sorted(set(result.n_train[arm]))))} | {' | '.join(cells)} |")
    return lines


def frontier_lines(result: RefinementResult) -> list[str]:
    near = result.frontier.bins[0].arm
    lines = [
        f"| bin | refinements (trained on) | mean distance | mean k | accuracy in range | vs {near} | "
        f"accuracy beyond | vs {near} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    splits = result.frontier.splits
    for b in result.frontier.bins:
        cells = [f"{_cell(splits[s][b.arm])} | {_diff(splits[s][b.arm])}" for s in SPLITS]
        lines.append(
            f"| {b.arm} | {b.n} ({result.n_train[b.arm][0]}) | {b.distance:.2f} | {b.mean_k:.1f} | "
            f"{' | '.join(cells)} |"
        )
    return lines


def claim_lines(result: RefinementResult) -> list[str]:
    lines = ["| claim | split | contrast | difference | outcome |", "|---|---|---|---|---|"]
    rows: list[tuple[Claim, bool]] = [*((c, True) for c in result.claims), *((c, False) for c in result.reported)]
    for c, decided in rows:
        tag = "" if decided else " (reported, not decided)"
        lines.append(
            f"| {c.claim}{tag} | {c.split} | {c.arm} - {c.against} | "
            f"{interval(c.diff, *c.ci)} | {c.outcome if decided else '-'} |"
        )
    return lines


def write_report(out: RefinementLayout, result: RefinementResult) -> None:
    figs = {"arms": fig_arms(out, result), "frontier": fig_frontier(out, result)}
    ft = result.ft
    lines = [
        "# Teacher refinement: beyond the student's frontier, and the student's own filter",
        "",
        f"**Verdict.** {result.verdict}",
        "",
        f"Student: the run's base model, pretrained on k <= {result.k_train_max}. Teacher: the same recipe trained "
        f"{result.teacher_steps} more updates from the student's weights on k <= {result.teacher_k_max}. "
        f"{result.n_problems} training problems (none in the held-out set); the teacher's greedy deliberate trace was "
        f"right on {result.teacher_verified}, each giving three refinements ({', '.join(LEVELS)}: the trace, every "
        "second step done in the head, the answer alone). The originals are unreliable traces of every problem. Every "
        f"arm fine-tunes a fresh copy of the student for the same {ft.steps} updates (batch {ft.batch_size}, peak lr "
        f"{ft.lr:g}, warmup {ft.warmup}): equal compute, so smaller datasets are seen for more epochs. Seeds "
        f"{result.seeds}. Held-out accuracy is greedy free choice on {result.n_eval['in range']} problems in range and "
        f"{result.n_eval['beyond']} beyond. Intervals: {result.level:.1%} (95% Bonferroni-adjusted over the verdict's "
        f"{result.n_tests} tests). Tables: two-level bootstrap over seeds, then problems (paired); with few seeds the "
        "seed level is coarse, so the claims use Welch t intervals over the seeds' accuracies.",
        "",
        "## Competence on the held-out set (greedy accuracy per k, before fine-tuning)",
        "",
        *competence_lines(result),
        "",
        "## The student's reads",
        "",
        "The student keeps a refinement when its IFD < 1 and its r-IFD is no higher than its problem's original's.",
        "",
        *reads_lines(result),
        "",
        "## Arms",
        "",
        *arms_lines(result),
        "",
        "Before fine-tuning, the student's greedy free-choice accuracy on the same problems: "
        + ", ".join(f"{split} {acc:.3f}" for split, acc in result.student_before.items())
        + ".",
        "",
        f"![arms]({figs['arms']})",
        "",
        "## Frontier bins",
        "",
        "All refinements in quantile bins of their problem's distance beyond the student's frontier (1 - the student's "
        "free-choice pass rate at T = 1), each bin subsampled to the smallest bin's size.",
        "",
        *frontier_lines(result),
        "",
        f"![frontier]({figs['frontier']})",
        "",
        "## Claims",
        "",
        *claim_lines(result),
        "",
        "## Profile",
        "",
        *profile_lines(out.profile),
    ]
    write_text(out.report, "\n".join(lines))
