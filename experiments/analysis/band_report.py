"""report.md and figures/*.png of the band study, rendered from the computed analysis only."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from experiments.analysis.band_results import BEHAVIOURS, MIN_TARGET_SE, BandAnalysis, BandStudyResult
from experiments.analysis.contrasts import ALPHA, MIN_SEEDS, SEQUENCE
from experiments.analysis.figures import save_figure
from experiments.analysis.model_diffing_report import REMOVED, diffing_lines, fig_crosscoder_norms
from experiments.analysis.profile import profile_lines
from experiments.analysis.text import interval
from experiments.harness.reading.feature_groups import ATTRIBUTED, CONTRASTED
from experiments.harness.rundir import write_text
from experiments.harness.tasks.registry import task_of
from probes.bands import BANDS, COLORS
from probes.layout import INGESTED, REPORT, RunLayout, band_of_run, point_step, read_json
from probes.stats import Estimate

Z95 = 1.96


def band_legend(ax, n_seeds: int, extra: list | None = None) -> None:
    """A legend naming each band's colour (with the seed count) plus any extra handles, right of the axes (never
    over the data)."""
    handles = [Line2D([], [], color=COLORS[b], label=f"{b} band ({n_seeds} seeds)") for b in BANDS]
    ax.legend(handles=handles + (extra or []), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)


def gain_panel(ax, a: BandAnalysis) -> None:
    """Every run's gain curve (evaluations, replayed and blended steps) with its matched point and the target."""
    res, m = a.result, a.matching
    key = res.matched_key
    for name, rows in a.metrics.items():
        ev = {**a.replayed.get(name, {}), **{r["step"]: r[key] - rows[0][key] for r in rows if key in r}}
        ax.plot(*zip(*sorted(ev.items())), color=COLORS[band_of_run(name)], alpha=0.7, lw=1)
        p = m.points[name]
        if p.reached and a.plan.noise_ok:
            style = dict(marker="o", markeredgecolor="k") if p.within_tol else dict(marker="x")
            ax.plot(p.step, p.gain, ls="", color=COLORS[band_of_run(name)], **style)
    ax.axhline(m.target, color="k", ls="--", lw=1)
    if a.plan.noise_ok:
        ax.axhspan(m.target - res.matched_tol, m.target + res.matched_tol, color="grey", alpha=0.25, lw=0)
        extra = [
            Line2D(
                [], [], color="k", ls="--", label=f"target {m.target:+.3f} (grey: ±{res.matched_tol:.3f} tolerance)"
            ),
            Line2D(
                [], [], marker="o", ls="", color="grey", markeredgecolor="k", label="matched point, within tolerance"
            ),
            Line2D([], [], marker="x", ls="", color="grey", label="matched point, outside tolerance"),
        ]
    else:
        extra = [
            Line2D(
                [],
                [],
                color="k",
                ls="--",
                label=f"largest gain a band's seeds reach {m.target:+.3f}: under {MIN_TARGET_SE:g} SE",
            )
        ]
    hits = {b: sum(res.bands[b].matched_hit) for b in BANDS}
    handles = [Line2D([], [], color=COLORS[b], label=f"{b} band (hit {hits[b]}/{len(res.seeds)})") for b in BANDS]
    ax.legend(handles=handles + extra, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.16), ncol=2, frameon=False)
    ax.set(
        xlabel="GRPO step (updates; fractional: inside one update)",
        ylabel="gain in sampled accuracy over base\n(fraction of eval set)",
        title="Accuracy gain per run",
    )


def fig_gain(out: Path, a: BandAnalysis) -> str:
    fig, ax = plt.subplots(figsize=(7, 5))
    gain_panel(ax, a)
    ax.set_title(f"Accuracy gain per band run ({len(a.result.seeds)} seeds per band)")
    return save_figure(fig, out / "figures" / "gain.png")


def fig_headline(out: Path, a: BandAnalysis, setting: str) -> str:
    """The claim at a glance: gain curves with the matched points; at those points, each group's specific share of
    the gain (carried minus its matched random groups) and the deliberate rate, per band."""
    res = a.result
    fig, (ax_gain, ax_share, ax_rate) = plt.subplots(
        1, 3, figsize=(15, 5.2), gridspec_kw={"width_ratios": [1.3, 1.3, 0.6]}
    )
    gain_panel(ax_gain, a)
    x, width = np.arange(len(ATTRIBUTED)), 0.27
    for i, band in enumerate(BANDS):
        shares = res.bands[band].gain_share
        est = [shares[g]["specific"] for g in ATTRIBUTED] if shares else []
        if not est or not any(e.n for e in est):
            continue
        means = np.array([e.mean for e in est])
        err = np.abs(np.array([[e.mean - e.ci95[0], e.ci95[1] - e.mean] for e in est]).T)
        ax_share.bar(
            x + (i - 1) * width,
            np.nan_to_num(means),
            width,
            yerr=np.nan_to_num(err),
            color=COLORS[band],
            capsize=3,
            label=f"{band} (n = {est[0].n} hitting seeds)",
        )
    ax_share.axhline(0, color="k", lw=0.8)
    ax_share.set_xticks(x, [f"{g}{' *' if g == 'mode' else ''}" for g in ATTRIBUTED])
    ax_share.set(
        ylabel="specific share of the gain carried\n(group minus matched random groups)",
        title="What carries the gain, at matched gain",
    )
    if ax_share.containers:
        ax_share.legend(
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(0, -0.12),
            frameon=False,
            title="mean, 95% t interval over seeds; * outside the verdict",
            title_fontsize=8,
        )
    else:
        ax_share.text(
            0.5, 0.5, "no run hit a target: nothing attributed", ha="center", va="center", transform=ax_share.transAxes
        )
    for i, band in enumerate(BANDS):
        rates = [r for r in res.bands[band].matched_deliberate_rate if r is not None]
        start = res.bands[band].behaviour["deliberate_rate"]["start"]
        ax_rate.scatter([i] * len(rates), rates, color=COLORS[band], s=18, zorder=3)
        ax_rate.plot([i - 0.3, i + 0.3], [start, start], color="grey", lw=1)
    ax_rate.set_xticks(range(len(BANDS)), BANDS)
    ax_rate.set(ylim=(0, 1), ylabel="deliberate rate of eval samples", title="Deliberation at\nthe matched points")
    ax_rate.legend(
        handles=[
            Line2D([], [], marker="o", ls="", color="grey", label="matched run"),
            Line2D([], [], color="grey", label="base model"),
        ],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(0, -0.12),
        frameon=False,
    )
    fig.suptitle(
        f"Band study ({res.preset}, {setting}): {len(res.seeds)} GRPO seeds per band — verdict: {res.verdict_class}",
        fontsize=11,
    )
    fig.tight_layout()
    return save_figure(fig, out / "figures" / "headline.png")


def fig_feature_change(out: Path, a: BandAnalysis) -> str:
    blocks = a.blocks
    fig, axes = plt.subplots(1, len(blocks), figsize=(5.8 * len(blocks), 4.2), squeeze=False)
    for ax, (name, blk) in zip(axes[0], blocks.items()):
        x = np.arange(len(CONTRASTED))
        for i, band in enumerate(BANDS):
            est = [blk.estimates[band][g] for g in CONTRASTED]
            means = np.array([e.mean for e in est])
            err = np.array([[e.mean - e.ci95[0], e.ci95[1] - e.mean] for e in est]).T
            ax.bar(
                x + (i - 1) * 0.27,
                means,
                0.27,
                yerr=np.nan_to_num(err),
                color=COLORS[band],
                capsize=3,
                label=f"{band} (n = {est[0].n} seeds)",
            )
            for j, g in enumerate(CONTRASTED):
                ax.scatter(
                    [x[j] + (i - 1) * 0.27] * len(blk.values[band][g]), blk.values[band][g], s=8, c="k", zorder=3
                )
        for j, g in enumerate(CONTRASTED):
            f = blk.noise_floor[g]
            if np.isfinite(f):
                ax.fill_between([j - 0.45, j + 0.45], -f, f, color="grey", alpha=0.25, lw=0)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, [f"{g}\n({blk.labels[g]['n']} latents)" for g in CONTRASTED])
        ax.set(ylabel=f"relative change of group activity vs base\n({a.result.diff_view} tokens)")
        ax.set_title(
            f"{name}: change at matched gain (bars: mean, 95% t interval;\n"
            "dots: seeds; grey: same-band seed noise floor)",
            fontsize=9,
        )
        ax.legend(
            fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False
        )  # below the tick labels: never over the data
    return save_figure(fig, out / "figures" / "feature_change.png")


def fig_behaviour(out: Path, a: BandAnalysis) -> str:
    shown = ("deliberate_rate", "skipped_step_rate", "lucky_success_rate", "mean_length", "trace_length")
    fig, axes = plt.subplots(1, len(shown), figsize=(3.3 * len(shown), 3.4), sharex=True)
    for ax, b in zip(axes, shown):
        for name, rows in a.metrics.items():
            ev = [(r["step"], r[f"eval/behaviour/{b}"]) for r in rows if f"eval/behaviour/{b}" in r]
            ax.plot(*zip(*ev), color=COLORS[band_of_run(name)], alpha=0.7)
        unit = "tokens" if "length" in b else "fraction of completions"
        ax.set(title=b.replace("_", " "), xlabel="GRPO step (updates)", ylabel=unit)
    band_legend(axes[-1], len(a.result.seeds))
    fig.suptitle(
        f"Eval-set behaviour of sampled completions (T = 1), {len(a.result.seeds)} seeds per band", fontsize=10
    )
    fig.tight_layout()
    return save_figure(fig, out / "figures" / "behaviour.png")


def fig_sae_quality(out: Path, a: BandAnalysis) -> str:
    blocks = a.blocks
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = []
    for (name, blk), ls in zip(blocks.items(), ("-", "--", ":")):
        for run in a.metrics:
            pts = sorted((point_step(Path(c)), v) for c, v in blk.fve.items() if c.startswith(run + "/"))
            pts = [(0, blk.fve["base"]), *pts]
            ax.plot(*zip(*pts), ls=ls, color=COLORS[band_of_run(run)], alpha=0.7)
        styles.append(Line2D([], [], ls=ls, color="k", label=f"SAE {name}"))
    band_legend(ax, len(a.result.seeds), styles)
    ax.set(
        xlabel="GRPO step (updates)",
        ylabel="fraction of variance explained (FVE)",
        title="Shared SAE basis: reconstruction on every checkpoint",
    )
    return save_figure(fig, out / "figures" / "sae_quality.png")


def fig_success_activity(out: Path, a: BandAnalysis) -> str:
    act = a.result.hard_success_activity
    fig, (ax, ax_rate) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = [int(s) for s in act]
    for key, color, label in (
        ("on_success", "tab:green", "successful rollouts"),
        ("on_failure", "tab:red", "failed rollouts"),
    ):
        est = [(s, act[str(s)][key]) for s in steps if act[str(s)][key]["n"]]
        x = [s for s, _ in est]
        ax.plot(x, [e["mean"] for _, e in est], "o-", color=color, label=f"{label} (mean, 95% CI over seeds)")
        ax.fill_between(x, [e["ci95"][0] for _, e in est], [e["ci95"][1] for _, e in est], color=color, alpha=0.2)
    ax.set(
        xlabel="GRPO step of the hard-band run (updates)",
        ylabel="deliberation group: mean code on completion tokens",
        title="Deliberation activity, successes vs failures",
    )
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    rate = [act[str(s)]["success_rate"] for s in steps]
    ax_rate.errorbar(
        steps,
        [r["mean"] for r in rate],
        yerr=np.array([[r["mean"] - r["ci95"][0], r["ci95"][1] - r["mean"]] for r in rate]).T,
        fmt="o-",
        color=COLORS["hard"],
        capsize=3,
        label="hard-band runs (mean, 95% CI over seeds)",
    )
    ax_rate.set(
        xlabel="GRPO step of the hard-band run (updates)",
        ylabel="fraction of rollouts correct",
        title="Success rate on the same problems",
    )
    ax_rate.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    fig.tight_layout()
    return save_figure(fig, out / "figures" / "success_activity.png")


def success_activity_lines(res: BandStudyResult, fig: str | None) -> list[str]:
    """The deliberation group on the hard-band runs' own rollouts, successes vs failures, along training."""
    act = res.hard_success_activity
    if not act:
        return []
    lines = [
        "## Deliberation activity on hard-band rollouts: successes vs failures",
        "",
        "At the base model (step 0) and every stored checkpoint of each hard-band run, rollouts of the same hard-pool "
        "problems with the same draws; the headline SAE's deliberation group's mean code over each completion's "
        "tokens. Mean over seeds, 95% CI; a seed counts in a step's activity only with both successes and failures "
        "there. Descriptive: not in the verdict's family.",
        "",
        "| step | success rate | activity, successes | activity, failures | gap (successes − failures) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {s} | {_fmt(Estimate.from_dict(v['success_rate']))} | {_fmt(Estimate.from_dict(v['on_success']))} | "
        f"{_fmt(Estimate.from_dict(v['on_failure']))} | {_fmt(Estimate.from_dict(v['gap']))} |"
        for s, v in act.items()
    ]
    return [*lines, "", f"![success activity]({fig})", ""] if fig else [*lines, ""]


def _fmt(e: Estimate) -> str:
    text = interval(e.mean, *e.ci95)
    return text if text == "n/a" else f"{text} (n={e.n})"


def label_lines(labels: dict[str, dict]) -> list[str]:
    """The feature groups of one SAE: selection evidence on the test split and the causal check."""
    head = (
        "| group | latents | probe acc (shuffled labels) | test attribution share (matched random) | ablation: "
        "behaviour change [95% CI over problems] | random groups it beats | dissociation [95% CI] | check |"
    )
    lines = [
        "Feature groups: selected by attribution on a labelling split; probe, attribution share and the "
        "causal check on a disjoint test split; random groups are matched in firing rate and activation mass.",
        "",
        head,
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, lab in labels.items():
        if lab["passed"] is None:
            lines.append(f"| {group} | {lab['n']} | | | | | | not checked |")
            continue
        pr, (lo, hi), d = lab["probe"], lab["ci95"], lab["dissociation"]
        diss = "" if d is None else interval(d["mean"], *d["ci95"])
        lines.append(
            f"| {group} | {lab['n']} | {pr['accuracy']:.2f} ({pr['shuffled_accuracy']:.2f}) | "
            f"{lab['test_share']:.2f} ({lab['random_share_mean']:.2f}) | {lab['metric']} "
            f"{interval(lab['effect'], lo, hi)} | "
            f"{round(lab['percentile'] * len(lab['random_effects']))}/{len(lab['random_effects'])} | {diss} | "
            f"{'passes' if lab['passed'] else 'FAILS'} |"
        )
    return [*lines, ""]


def _step(step: float | None) -> str:
    return "never" if step is None else (f"{step:g}" if float(step).is_integer() else f"{step:.3f}")


def matched_lines(res: BandStudyResult, noise_ok: bool) -> list[str]:
    """Per band and seed: the matched point, its actual gain with a 95% CI (± 1.96 SE of a gain), and the confounds
    beside it: updates taken, KL to the base model and the deliberate rate there."""
    lines = [
        "| band | seed | matched step | actual gain [95% CI] | KL to base (per token) | deliberate rate | "
        "hits target |",
        "|---|---|---|---|---|---|---|",
    ]
    for b, v in res.bands.items():
        for seed, step, gain, hit, kl, rate in zip(
            res.seeds, v.matched_step, v.matched_gain, v.matched_hit, v.matched_kl, v.matched_deliberate_rate
        ):
            cell = "—" if gain is None else interval(gain, gain - Z95 * res.gain_se, gain + Z95 * res.gain_se)
            hits = (
                ("yes" if hit else "no (never reaches it)" if step is None else "no") if noise_ok else "— (no target)"
            )
            lines.append(
                f"| {b} | {seed} | {_step(step)} | {cell} | {'—' if kl is None else f'{kl:.4f}'} | "
                f"{'—' if rate is None else f'{rate:.2f}'} | {hits} |"
            )
    return lines


def contrast_lines(family: list[dict]) -> list[str]:
    lines = [
        "| contrast | order | mean difference | permutation p | decision p | seeds | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in family:
        order = "Holm" if c["order"] is None else str(c["order"] + 1)
        if c["p"] is None or c["p"] != c["p"]:  # null in results.json, nan before it is written
            lines.append(
                f"| {c['group']}: {c['a']} vs {c['b']} | {order} | | | | {c['n_a']}+{c['n_b']} | {c['status']} |"
            )
            continue
        status = f"**{c['status']}**" if c["significant"] else c["status"]
        lines.append(
            f"| {c['group']}: {c['a']} vs {c['b']} | {order} | {c['diff']:+.3f} | {c['p']:.3f} | {c['p_adjusted']:.3f} "
            f"| {c['n_a']}+{c['n_b']} | {status} |"
        )
    return lines


SHARES_EXPLAINED = (
    "Shares need not lie in [0, 1] or sum to 1 over groups: patching a group back can *raise* accuracy (its change "
    "cost accuracy while the gain came from elsewhere, a negative share), groups compute overlapping things, and "
    "the model is not additive in its latents. That is why the verdict compares the **specific** share (the group's "
    "minus the mean of its matched random groups'): what the group carries beyond any group of its size and activity."
)


def gain_share_lines(res: BandStudyResult) -> list[str]:
    """Per band and group: the share of the gain carried, its matched random groups' mean share, the specific share,
    and the check that the gain shares divide by is the matched gain."""
    if not any(e.n for v in res.bands.values() for per in v.gain_share.values() for e in per.values()):
        return []
    lines = [
        "## Gain attribution (headline SAE)",
        "",
        "At each hitting run's matched point, the group's codes are patched back to the base model's values at "
        "the hook (on the same tokens) and the share of the run's gain that disappears is measured (**carried**); "
        "the same for each of the group's matched random groups (firing rate and activation mass), each on its own "
        "slice of the rows, paired with the model's outcome there (their mean is **random**); **specific** = carried "
        "− random. Every condition samples the run's own evaluation draws, so the gain divided by is the matched gain "
        "itself. Mean over hitting seeds, 95% t interval. The mode-choice group is measured beside the three "
        "contrasted groups but is not in the verdict's family.",
        "",
        SHARES_EXPLAINED,
        "",
        "| band | group | carried | random (control) | specific |",
        "|---|---|---|---|---|",
    ]
    for band, v in res.bands.items():
        for group, per in v.gain_share.items():
            if per["carried"].n:
                lines.append(
                    f"| {band} | {group} | {_fmt(per['carried'])} | {_fmt(per['random'])} | {_fmt(per['specific'])} |"
                )
    if res.gain_check:
        bad = [n for n, c in res.gain_check.items() if not c["agree"]]
        worst = max(abs(c["matched"] - c["measured_again"]) for c in res.gain_check.values())
        path = min(c["path_agreement"] for c in res.gain_check.values())
        lines += [
            "",
            f"One gain, one measurement: measured again on the same draws for attribution, every run's gain "
            f"{'agrees' if not bad else 'does NOT agree'} with its matched gain within the tolerance (largest "
            f"difference {worst:.4f}{'; disagreeing: ' + ', '.join(bad) if bad else ''}); the patching path with "
            f"nothing patched reproduced the model's own outcome on at least {path:.1%} of the rows checked.",
        ]
    return [*lines, ""]


def step_matched_lines(res: BandStudyResult) -> list[str]:
    """The secondary reading at equal updates: every band after the same budget."""
    lines = [
        "## Step-matched reading (secondary)",
        "",
        f"Every band after the same {res.final_step} updates (all seeds, whatever their gain): the final gain and each "
        "group's change in activity (headline SAE). Gain is then *not* matched; read it beside the matched reading to "
        "see which differences belong to how far a run moved rather than to what it learned.",
        "",
        "| band | final gain | " + " | ".join(CONTRASTED) + " |",
        "|---|---|" + "---|" * len(CONTRASTED),
    ]
    for band, v in res.bands.items():
        lines.append(f"| {band} | {_fmt(v.gain)} | " + " | ".join(_fmt(v.at_final_step[g]) for g in CONTRASTED) + " |")
    return [
        *lines,
        "",
        "The same tests on these changes (not in the verdict):",
        "",
        *contrast_lines(res.step_contrasts),
        "",
    ]


def hook_lines(choice: dict) -> list[str]:
    """Which hook the SAEs read and, where the labelling-split rule chose it, why."""
    if not choice:
        return []
    kinds = choice["kinds"]
    lines = [
        "## The hook",
        "",
        f"The SAEs read `{choice['hook']}`, chosen before the test split was read there, on the labelling "
        f"split only: at every block's residual stream the headline SAE's {' and '.join(kinds)} groups were selected "
        "and checked causally on the labelling split; the hook whose groups pass most wins, then the one whose groups "
        "beat more random groups, then the preset's.",
        "",
        "| hook | " + " | ".join(f"{k}: passes (beats random)" for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for hook, per in choice["scores"].items():
        lines.append(
            f"| `{hook}` | "
            + " | ".join(f"{'yes' if per[k]['passed'] else 'no'} ({per[k]['percentile']:.0%})" for k in kinds)
            + " |"
        )
    return [*lines, ""]


def setting_of(config: dict) -> str:
    """The base-model setting in words, from the pretraining section of config.json."""
    pre = config.get("stages", {}).get("pretrain", {})
    lo, hi = pre.get("k_train_max"), pre.get("k_eval_max")
    if lo is None or hi is None:
        return "base model of unknown recipe"
    return "hard in range" if lo >= hi else f"hard mostly beyond the pretraining range (k ≤ {lo} of {hi})"


_QUESTION = (
    "**The question.** Models were trained with RL on easy, medium or hard problems; at the point where each "
    "had gained the same held-out accuracy, do they owe that gain to different internal features?"
)
_WHERE = "The figure below shows each band's gain over training and, at the matched points, what carries it."
PLAIN_SUMMARY: dict[str, tuple[str, ...]] = {
    "no_target": (
        _QUESTION,
        "**The answer here.** Not askable: no gain well above the evaluation's noise is reached by "
        "enough runs of any band, so there is no point at which to compare them.",
        _WHERE,
    ),
    "untestable": (
        _QUESTION,
        "**The answer here.** Not tested: the runs were matched, but no registered comparison could "
        "be made (a band with too few matched runs, or a feature group that failed its causal check). This is "
        "not evidence either way.",
        _WHERE,
    ),
    "no_difference": (
        _QUESTION,
        "**The answer here.** No difference was found in the first registered comparison that "
        "could be made; with a handful of seeds per band, small differences can go undetected.",
        _WHERE,
    ),
    "differs": (
        _QUESTION,
        "**The answer here.** Yes, in the first registered comparison that could be made: the bands' "
        "matched gains rest on a feature group to different degrees (controlled for random groups, tested over "
        "seeds).",
        _WHERE,
    ),
}
"""Three plain-language lines that open the report, per verdict class."""
GLOSSARY: dict[str, str] = {
    "matched point": "the first point of a run (a step, or a fraction of one update) whose gain reaches the target "
    "minus the tolerance",
    "tolerance": "one standard error of a measured gain; a matched gain within it of the target hits the target",
    "carried / random / specific share": "the share of a run's gain that disappears when a group's codes are patched "
    "back to base values; the same for matched random groups (their mean); the difference",
    "matched random group": "latents drawn to match the group's firing rate and activation mass, the control for any "
    "group of that size and activity",
    "causal check": "ablating the group changes its behaviour more than every one of the matched random groups does, "
    "with an interval excluding zero (and, for shortcut and deliberation, a double dissociation)",
    "dissociation": "the ablation's effect on the group's own behaviour minus its effect on the other mode's (direct "
    "vs deliberate accuracy)",
    "hook": "the residual-stream position the SAEs read (a TransformerLens hook name)",
    "decision row": "the token position where the model chooses between answering directly and writing a trace",
    "claim checkpoint": "the checkpoint model diffing reads per run: its matched point, else its last step",
    "Latent Scaling": "a check that a crosscoder latent is really absent from one model: the best scale (beta) at "
    "which its decoder direction explains that model's activations",
    "noise floor": "the mean absolute difference between two seeds of the same band: changes below it are seed noise",
}
"""Terms the report uses, one line each."""


def markdown(res: BandStudyResult, figs: dict[str, str], out: Path, config: dict, ingested: dict | None = None) -> str:
    task, noise_ok = config.get("task"), res.verdict_class != "no_target"
    plain = [x for line in PLAIN_SUMMARY[res.verdict_class] for x in (line, "")]  # a paragraph each
    lines = [
        f"# Band study ({res.preset}, {setting_of(config)})",
        "",
        *plain,
        f"**Verdict ({res.verdict_class}).** {res.verdict}",
        "",
        f"![headline]({figs['headline']})",
        "",
    ]
    if task:
        params = ", ".join(
            f"{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in task.items() if k != "task"
        )
        lines += [f"Task: {task['task']} ({params}); k is the {task_of(task).knob_name}.", ""]
    lines += [
        f"Seeds per band: {res.seeds}. GRPO loss aggregation: `{res.loss_agg}`. Feature changes are read on the "
        f"**{res.diff_view}** token view (teacher-forced canonical completions, stratified by token role × k, "
        f"decision rows a stratum of their own); the checkpoints' own samples are the second view in diff.json.",
        "",
    ]
    if ingested:
        lines += [
            "Runs trained elsewhere and ingested (`experiments.ingest`), matched on their evaluated checkpoints only "
            "(never replayed): "
            + "; ".join(f"{name} ({e['engine']}, steps in {e['step_unit']})" for name, e in ingested.items())
            + ".",
            "",
        ]
    reach = ", ".join(f"{b} {g:+.3f}" for b, g in res.reach.items())
    lines += [
        "## Matched gain",
        "",
        f"Matched on `{res.matched_key}`: target {res.matched_gain_target:+.3f}, tolerance ±{res.matched_tol:.3f} "
        f"(one standard error of a measured gain, {res.gain_se:.3f}). Unless set, the target is the largest gain that "
        f"all but one seed of every matchable band reach (at least {MIN_SEEDS}); a band is matchable when that many "
        f"of its seeds gain at least {MIN_TARGET_SE:g} SE (reach per band: {reach}; matchable: "
        f"{', '.join(res.matchable_bands) or 'none'}). Each run is matched at the first point whose gain reaches the "
        f"target minus the tolerance: whole steps between stored checkpoints are regenerated by replay, and where one "
        f"update jumps over the target, fractions of it are bisected (step t + a is the blend θ_t + a(θ_t+1 − θ_t), "
        f"which with AdamW, no weight decay and one inner update is update t at learning rate a·lr). So every run "
        f"that reaches the target hits it; a run drops out of the contrasts only because it never reaches it. "
        f"Updates taken, KL to the base model and the deliberate rate at each matched point are the confounds of a "
        f"matched gain, printed beside it.",
        "",
    ]
    if not noise_ok:
        lines += [f"No target is at least {MIN_TARGET_SE:g} SE above zero, so nothing is matched or compared.", ""]
    lines += [
        *matched_lines(res, noise_ok),
        "",
        f"![gain]({figs['gain']})",
        "",
        *gain_share_lines(res),
        "## Band contrasts",
        "",
    ]
    seq = "; ".join(f"({i + 1}) {g}: {a} vs {b}" for i, (g, a, b) in enumerate(SEQUENCE))
    lines += [
        f"Exact permutation tests over seed labels of each band pair's mean **specific share of the gain carried** "
        f"(the verdict's family), by serial gatekeeping registered before any matched result: the sequence {seq} "
        f"is tested in order at α = {ALPHA}; a contrast that cannot be tested (a band with fewer than {MIN_SEEDS} "
        f"seeds hitting the target, an empty group, or a group that failed its causal check) is skipped and passes "
        f"the gate on; the first tested contrast that is not rejected closes it. Only if every tested contrast of "
        f"the sequence is rejected are the others tested, with Holm's correction ('decision p'). The verdict's class "
        f"comes from the first tested contrast. With n seeds per band the smallest attainable p is 2 / C(2n, n) "
        f"(3: 0.1, 4: 0.029, 5: 0.008).",
        "",
    ]
    if not noise_ok:
        lines += ["No contrast is tested: there is no gain well above noise to match at."]
    else:
        lines += contrast_lines(res.contrasts)
        lines += [
            "",
            "Secondary family, not in the verdict: the same tests on the change in group activity at matched gain "
            "(headline SAE).",
            "",
        ]
        lines += contrast_lines(res.feature_contrasts)
    lines += [
        "",
        *step_matched_lines(res),
        *hook_lines(res.hook_choice),
        "## Feature change at matched gain (SAEs side by side)",
        "",
    ]
    for sae, nf in res.noise_floor_by_sae.items():
        lines += [f"### {sae}", "", "| band | " + " | ".join(CONTRASTED) + " |", "|---|" + "---|" * len(CONTRASTED)]
        for band, v in res.bands.items():
            gone = (
                sae == res.headline_sae and band in res.model_diffing and "base_sae" in res.model_diffing[band].removed
            )
            row = (REMOVED if gone else _fmt(v.feature_change_by_sae[sae][x]) for x in CONTRASTED)
            lines.append(f"| {band} | " + " | ".join(row) + " |")
        lines.append("| same-band noise floor | " + " | ".join(f"{nf[x]:.3f}" for x in CONTRASTED) + " |")
        cos = ", ".join(f"{k}: {v:+.2f}" for k, v in res.cosine_by_sae[sae].items())
        lines += ["", f"Whole-dictionary change cosine between bands: {cos or 'n/a'}.", ""]
        lines += label_lines(res.labels_by_sae[sae])
    lines += [
        f"![feature change]({figs['feature_change']})",
        "",
        "## Behaviour (eval set, first → last evaluation, mean over seeds)",
        "",
    ]
    lines += ["| band | " + " | ".join(BEHAVIOURS) + " |", "|---|" + "---|" * len(BEHAVIOURS)]
    for band, v in res.bands.items():
        lines.append(
            f"| {band} | "
            + " | ".join(f"{v.behaviour[x]['start']:.2f} → {v.behaviour[x]['end']:.2f}" for x in BEHAVIOURS)
            + " |"
        )
    lines += ["", f"![behaviour]({figs['behaviour']})", "", *success_activity_lines(res, figs.get("success_activity"))]
    lines += diffing_lines(res.model_diffing, figs.get("crosscoder_norms"))
    lines += ["## Controls: SAE transfer per checkpoint", "", f"![sae quality]({figs['sae_quality']})", ""]
    lines += ["## Profile", "", *profile_lines(RunLayout(out).profile), "## Glossary", ""]
    lines += [f"- **{term}**: {meaning}" for term, meaning in GLOSSARY.items()]
    return "\n".join(lines) + "\n"


def write_report(out: Path, a: BandAnalysis) -> None:
    """report.md and its figures."""
    config = read_json(RunLayout(out).config)
    shown = (fig_gain, fig_feature_change, fig_behaviour, fig_sae_quality)
    shown += (fig_success_activity,) if a.result.hard_success_activity else ()
    figs = {f.__name__[4:]: f(out, a) for f in shown}
    figs["headline"] = fig_headline(out, a, setting_of(config))
    if a.result.model_diffing:
        figs["crosscoder_norms"] = fig_crosscoder_norms(out, list(a.result.model_diffing))
    ingested = {
        name: read_json(d / INGESTED) for name, d in RunLayout(out).band_runs().items() if (d / INGESTED).is_file()
    }
    write_text(out / REPORT, markdown(a.result, figs, out, config, ingested))
