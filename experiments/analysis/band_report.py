"""report.md and figures/*.png of the band study, rendered from the computed analysis only."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.analysis.band_results import BEHAVIOURS, GROUPS, BandAnalysis, BandStudyResult  # noqa: E402
from experiments.analysis.figures import COLORS, save_figure  # noqa: E402
from experiments.harness.rundir import write_text  # noqa: E402
from probes.bands import BANDS  # noqa: E402
from probes.layout import REPORT  # noqa: E402
from probes.stats import Estimate  # noqa: E402


def fig_gain(out: Path, a: BandAnalysis) -> str:
    res, m = a.result, a.matching
    key = res.matched_key
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, rows in a.metrics.items():
        band = name.split("/")[1]
        ev = [(r["step"], r[key] - rows[0][key]) for r in rows if key in r]
        ax.plot(*zip(*ev), color=COLORS[band], alpha=0.8, label=band if name.endswith("seed" + str(res.seeds[0])) else None)
        p = m.points[name]
        if p.reached:
            ax.plot(p.step, p.gain, "o", color=COLORS[band], markeredgecolor="k")
    ax.axhline(m.target, color="k", ls="--", lw=1, label=f"matched target {m.target:+.3f}")
    ax.set(xlabel="GRPO step", ylabel=f"gain in {key} over base", title=f"Accuracy gain per band ({len(res.seeds)} seeds; dots: matched checkpoints)")
    ax.legend(fontsize=8)
    return save_figure(fig, out / "figures" / "gain.png")


def fig_feature_change(out: Path, a: BandAnalysis) -> str:
    blocks = a.blocks
    fig, axes = plt.subplots(1, len(blocks), figsize=(5.5 * len(blocks), 4), squeeze=False)
    for ax, (name, blk) in zip(axes[0], blocks.items()):
        x = np.arange(len(GROUPS))
        for i, band in enumerate(BANDS):
            est = [blk.estimates[band][g] for g in GROUPS]
            means = np.array([e.mean for e in est])
            err = np.array([[e.mean - e.ci95[0], e.ci95[1] - e.mean] for e in est]).T
            ax.bar(x + (i - 1) * 0.27, means, 0.27, yerr=np.nan_to_num(err), color=COLORS[band], capsize=3,
                   label=f"{band} (n={est[0].n})")  # fmt: skip
        for j, g in enumerate(GROUPS):
            f = blk.noise_floor[g]
            if np.isfinite(f):
                ax.fill_between([j - 0.45, j + 0.45], -f, f, color="grey", alpha=0.25, lw=0)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, [f"{g}\n({blk.labels[g]['n']} latents)" for g in GROUPS])
        ax.set(ylabel="relative change of group activity vs base")
        ax.set_title(f"{name}\nat matched gain (grey: seed noise floor)", fontsize=9)
        ax.legend(fontsize=8)
    return save_figure(fig, out / "figures" / "feature_change.png")


def fig_behaviour(out: Path, a: BandAnalysis) -> str:
    shown = BEHAVIOURS[:5]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.2), sharex=True)
    for ax, b in zip(axes, shown):
        for name, rows in a.metrics.items():
            ev = [(r["step"], r[f"eval/behaviour/{b}"]) for r in rows if f"eval/behaviour/{b}" in r]
            ax.plot(*zip(*ev), color=COLORS[name.split("/")[1]], alpha=0.7)
        ax.set(title=b.replace("_", " "), xlabel="GRPO step")
    axes[0].set_ylabel("rate on the eval set (sampled, T=1)")
    return save_figure(fig, out / "figures" / "behaviour.png")


def fig_sae_quality(out: Path, a: BandAnalysis) -> str:
    blocks = a.blocks
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (name, blk), ls in zip(blocks.items(), ("-", "--", ":")):
        for run in a.metrics:
            pts = sorted((int(c.rsplit("-", 1)[1]), v) for c, v in blk.fve.items() if c.startswith(run + "/"))
            pts = [(0, blk.fve["base"]), *pts]
            ax.plot(*zip(*pts), ls=ls, color=COLORS[run.split("/")[1]], alpha=0.7)
        ax.plot([], [], ls=ls, color="k", label=name)
    ax.set(xlabel="GRPO step", ylabel="fraction of variance explained", title="Shared SAE basis: reconstruction per checkpoint")
    ax.legend(fontsize=8)
    return save_figure(fig, out / "figures" / "sae_quality.png")


def _fmt(e: Estimate) -> str:
    if not np.isfinite(e.mean):
        return "n/a"
    return f"{e.mean:+.3f} [{e.ci95[0]:+.3f}, {e.ci95[1]:+.3f}] (n={e.n})"


def markdown(res: BandStudyResult, figs: dict[str, str], wall_s: float) -> str:
    lines = [f"# Band study ({res.preset})", "", f"**Verdict.** {res.verdict}", ""]
    lines += [f"Matched on `{res.matched_key}`; target gain {res.matched_gain_target:+.3f}. Seeds: {res.seeds}.", ""]
    lines += ["| band | final gain | matched step per seed | actual gain there |", "|---|---|---|---|"]
    lines += [
        f"| {b} | {_fmt(v.gain)} | {v.matched_step} | {', '.join('-' if g is None else f'{g:+.3f}' for g in v.matched_gain)} |"
        for b, v in res.bands.items()
    ]
    lines += ["", "Matched checkpoints are the first *saved* checkpoints at or above the target, so their actual gains can overshoot it.", ""]
    lines += ["", f"![gain]({figs['gain']})", "", "## Feature change at matched gain (SAEs side by side)", ""]
    for sae, nf in res.noise_floor_by_sae.items():
        lines += [f"### {sae}", "", "| band | " + " | ".join(GROUPS) + " |", "|---|" + "---|" * len(GROUPS)]
        for b, v in res.bands.items():
            lines.append(f"| {b} | " + " | ".join(_fmt(v.feature_change_by_sae[sae][g]) for g in GROUPS) + " |")
        lines.append("| noise floor | " + " | ".join(f"{nf[g]:.3f}" for g in GROUPS) + " |")
        cos = ", ".join(f"{k}: {v:+.2f}" for k, v in res.cosine_by_sae[sae].items())
        lines += ["", f"Whole-dictionary change cosine between bands: {cos or 'n/a'}.", ""]
        lines += ["Labels and causal checks (ablation effect on the named behaviour vs random groups of equal size):", ""]
        for g, lab in res.labels_by_sae[sae].items():
            detail = "" if lab["passed"] is None else (
                f" — {lab['metric']} {lab['effect']:+.3f} vs random [{', '.join(f'{x:+.3f}' for x in lab['random_effects'])}]: "
                + ("passes" if lab["passed"] else "FAILS"))  # fmt: skip
            lines.append(f"- {g}: {lab['n']} latents{detail}")
        lines.append("")
    lines += [f"![feature change]({figs['feature_change']})", "", "## Behaviour", ""]
    lines += ["| band | " + " | ".join(BEHAVIOURS) + " |", "|---|" + "---|" * len(BEHAVIOURS)]
    for b, v in res.bands.items():
        lines.append(f"| {b} | " + " | ".join(f"{v.behaviour[x]['start']:.2f} → {v.behaviour[x]['end']:.2f}" for x in BEHAVIOURS) + " |")
    lines += ["", f"![behaviour]({figs['behaviour']})", "", "## Controls: SAE transfer per checkpoint", "", f"![sae quality]({figs['sae_quality']})", ""]
    lines += [f"Wall time of this invocation (a resumed run counts only its own part): {wall_s:.0f} s."]
    return "\n".join(lines) + "\n"


def write_report(out: Path, a: BandAnalysis, wall_s: float) -> None:
    """report.md and its figures."""
    figs = {f.__name__[4:]: f(out, a) for f in (fig_gain, fig_feature_change, fig_behaviour, fig_sae_quality)}
    write_text(out / REPORT, markdown(a.result, figs, wall_s))
