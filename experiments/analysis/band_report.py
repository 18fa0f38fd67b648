"""report.md and figures/*.png of the band study, rendered from the computed analysis only."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from experiments.analysis.band_results import BEHAVIOURS, GROUPS, BandAnalysis, BandStudyResult  # noqa: E402
from experiments.analysis.contrasts import ALPHA, MAIN_CONTRAST, MIN_SEEDS  # noqa: E402
from experiments.analysis.diffing_report import diffing_lines, fig_crosscoder_norms  # noqa: E402
from experiments.analysis.figures import COLORS, save_figure  # noqa: E402
from experiments.harness.rundir import write_text  # noqa: E402
from probes.bands import BANDS  # noqa: E402
from probes.layout import INGESTED, REPORT, RunLayout, band_of_run, checkpoint_step, read_json  # noqa: E402
from probes.stats import Estimate  # noqa: E402

Z95 = 1.96


def band_legend(ax, n_seeds: int, extra: list | None = None) -> None:
    """A legend naming each band's colour (with the seed count) plus any extra handles."""
    handles = [Line2D([], [], color=COLORS[b], label=f"{b} band ({n_seeds} seeds)") for b in BANDS]
    ax.legend(handles=handles + (extra or []), fontsize=8)


def fig_gain(out: Path, a: BandAnalysis) -> str:
    res, m = a.result, a.matching
    key = res.matched_key
    fig, ax = plt.subplots(figsize=(7, 4.2))
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
        extra = [Line2D([], [], color="k", ls="--", label=f"target {m.target:+.3f} (band: ±{res.matched_tol:.3f} tolerance)"),
                 Line2D([], [], marker="o", ls="", color="grey", markeredgecolor="k", label="matched step, within tolerance"),
                 Line2D([], [], marker="x", ls="", color="grey", label="matched step, outside tolerance")]  # fmt: skip
    else:
        extra = [Line2D([], [], color="k", ls="--", label=f"largest common gain {m.target:+.3f}: under 3 SE, nothing matched")]
    band_legend(ax, len(res.seeds), extra)
    ax.set(xlabel="GRPO step (updates)", ylabel="gain in sampled accuracy over base (fraction of eval set)",
           title=f"Accuracy gain per band run ({len(res.seeds)} seeds per band)")  # fmt: skip
    return save_figure(fig, out / "figures" / "gain.png")


def fig_feature_change(out: Path, a: BandAnalysis) -> str:
    blocks = a.blocks
    fig, axes = plt.subplots(1, len(blocks), figsize=(5.8 * len(blocks), 4.2), squeeze=False)
    for ax, (name, blk) in zip(axes[0], blocks.items()):
        x = np.arange(len(GROUPS))
        for i, band in enumerate(BANDS):
            est = [blk.estimates[band][g] for g in GROUPS]
            means = np.array([e.mean for e in est])
            err = np.array([[e.mean - e.ci95[0], e.ci95[1] - e.mean] for e in est]).T
            ax.bar(x + (i - 1) * 0.27, means, 0.27, yerr=np.nan_to_num(err), color=COLORS[band], capsize=3,
                   label=f"{band} (n = {est[0].n} seeds)")  # fmt: skip
            for j, g in enumerate(GROUPS):
                ax.scatter([x[j] + (i - 1) * 0.27] * len(blk.values[band][g]), blk.values[band][g], s=8, c="k", zorder=3)
        for j, g in enumerate(GROUPS):
            f = blk.noise_floor[g]
            if np.isfinite(f):
                ax.fill_between([j - 0.45, j + 0.45], -f, f, color="grey", alpha=0.25, lw=0)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, [f"{g}\n({blk.labels[g]['n']} latents)" for g in GROUPS])
        ax.set(ylabel=f"relative change of group activity vs base\n({a.result.diff_view} tokens)")
        ax.set_title(f"{name}: change at matched gain (bars: mean, 95% bootstrap CI;\ndots: seeds; grey: same-band seed noise floor)", fontsize=9)
        ax.legend(fontsize=8)
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
    band_legend(axes[0], len(a.result.seeds))
    fig.suptitle(f"Eval-set behaviour of sampled completions (T = 1), {len(a.result.seeds)} seeds per band", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out / "figures" / "behaviour.png")


def fig_sae_quality(out: Path, a: BandAnalysis) -> str:
    blocks = a.blocks
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = []
    for (name, blk), ls in zip(blocks.items(), ("-", "--", ":")):
        for run in a.metrics:
            pts = sorted((checkpoint_step(Path(c)), v) for c, v in blk.fve.items() if c.startswith(run + "/"))
            pts = [(0, blk.fve["base"]), *pts]
            ax.plot(*zip(*pts), ls=ls, color=COLORS[band_of_run(run)], alpha=0.7)
        styles.append(Line2D([], [], ls=ls, color="k", label=f"SAE {name}"))
    band_legend(ax, len(a.result.seeds), styles)
    ax.set(xlabel="GRPO step (updates)", ylabel="fraction of variance explained (FVE)",
           title="Shared SAE basis: reconstruction on every checkpoint")  # fmt: skip
    return save_figure(fig, out / "figures" / "sae_quality.png")


def fig_success_activity(out: Path, a: BandAnalysis) -> str:
    act = a.result.hard_success_activity
    fig, (ax, ax_rate) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = [int(s) for s in act]
    for key, color, label in (("on_success", "tab:green", "successful rollouts"), ("on_failure", "tab:red", "failed rollouts")):
        est = [(s, act[str(s)][key]) for s in steps if act[str(s)][key]["n"]]
        x = [s for s, _ in est]
        ax.plot(x, [e["mean"] for _, e in est], "o-", color=color, label=f"{label} (mean, 95% CI over seeds)")
        ax.fill_between(x, [e["ci95"][0] for _, e in est], [e["ci95"][1] for _, e in est], color=color, alpha=0.2)
    ax.set(xlabel="GRPO step of the hard-band run (updates)", ylabel="deliberation group: mean code on completion tokens",
           title="Deliberation activity, successes vs failures")  # fmt: skip
    ax.legend(fontsize=8)
    rate = [act[str(s)]["success_rate"] for s in steps]
    ax_rate.errorbar(steps, [r["mean"] for r in rate], yerr=np.array([[r["mean"] - r["ci95"][0], r["ci95"][1] - r["mean"]] for r in rate]).T,
                     fmt="o-", color=COLORS["hard"], capsize=3, label="hard-band runs (mean, 95% CI over seeds)")  # fmt: skip
    ax_rate.set(xlabel="GRPO step of the hard-band run (updates)", ylabel="fraction of rollouts correct", title="Success rate on the same problems")
    ax_rate.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out / "figures" / "success_activity.png")


def success_activity_lines(res: BandStudyResult, fig: str | None) -> list[str]:
    """The deliberation group on the hard-band runs' own rollouts, successes vs failures, along training."""
    act = res.hard_success_activity
    if not act:
        return []
    lines = ["## Deliberation activity on hard-band rollouts: successes vs failures", "",
             "At the base model (step 0) and every stored checkpoint of each hard-band run, rollouts of the same hard-pool "
             "problems with the same draws; the headline SAE's deliberation group's mean code over each completion's tokens. "
             "Mean over seeds, 95% CI; a seed counts in a step's activity only with both successes and failures there. "
             "Descriptive: not in the verdict's family.", "",
             "| step | success rate | activity, successes | activity, failures | gap (successes − failures) |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {s} | {_fmt(Estimate.from_dict(v['success_rate']))} | {_fmt(Estimate.from_dict(v['on_success']))} | "
              f"{_fmt(Estimate.from_dict(v['on_failure']))} | {_fmt(Estimate.from_dict(v['gap']))} |" for s, v in act.items()]  # fmt: skip
    return [*lines, "", f"![success activity]({fig})", ""] if fig else [*lines, ""]


def _fmt(e: Estimate) -> str:
    if not np.isfinite(e.mean):
        return "n/a"
    return f"{e.mean:+.3f} [{e.ci95[0]:+.3f}, {e.ci95[1]:+.3f}] (n={e.n})"


def label_lines(labels: dict[str, dict]) -> list[str]:
    """The feature groups of one SAE: selection evidence on the test split and the causal check."""
    head = ("| group | latents | probe acc (shuffled labels) | test attribution share (matched random) | ablation: behaviour "
            "change [95% CI over problems] | beats random | dissociation [95% CI] | check |")  # fmt: skip
    lines = ["Feature groups: selected by attribution on a labelling split; probe, attribution share and the "
             "causal check on a disjoint test split; random groups are matched in firing rate and activation mass.", "",
             head, "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for group, lab in labels.items():
        if lab["passed"] is None:
            lines.append(f"| {group} | {lab['n']} | | | | | | not checked |")
            continue
        pr, (lo, hi), d = lab["probe"], lab["ci95"], lab["dissociation"]
        diss = "" if d is None else f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
        lines.append(
            f"| {group} | {lab['n']} | {pr['accuracy']:.2f} ({pr['shuffled_accuracy']:.2f}) | "
            f"{lab['test_share']:.2f} ({lab['random_share_mean']:.2f}) | {lab['metric']} {lab['effect']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
            f"{lab['percentile']:.0%} of {len(lab['random_effects'])} | {diss} | {'passes' if lab['passed'] else 'FAILS'} |"
        )
    return [*lines, ""]


def matched_lines(res: BandStudyResult) -> list[str]:
    """Per band and seed: the matched step and its actual gain with a 95% CI (± 1.96 SE of a gain)."""
    lines = ["| band | seed | matched step | actual gain [95% CI] | hits target |", "|---|---|---|---|---|"]
    for b, v in res.bands.items():
        for seed, step, gain, hit in zip(res.seeds, v.matched_step, v.matched_gain, v.matched_hit):
            cell = "—" if gain is None else f"{gain:+.3f} [{gain - Z95 * res.gain_se:+.3f}, {gain + Z95 * res.gain_se:+.3f}]"
            lines.append(f"| {b} | {seed} | {'never' if step is None else step} | {cell} | {'yes' if hit else 'no'} |")
    return lines


def contrast_lines(family: list[dict]) -> list[str]:
    lines = ["| contrast | mean difference | permutation p | decision p | seeds | difference shown |", "|---|---|---|---|---|---|"]
    for c in family:
        name = f"{c['group']}: {c['a']} vs {c['b']}" + (" (**main**)" if c["main"] else "")
        if c["p"] is None or c["p"] != c["p"]:  # null in results.json, nan before it is written
            lines.append(f"| {name} | untestable | | | {c['n_a']}+{c['n_b']} | no |")
            continue
        lines.append(f"| {name} | {c['diff']:+.3f} | {c['p']:.3f} | {c['p_adjusted']:.3f} | {c['n_a']}+{c['n_b']} | "
                     f"{'**yes**' if c['significant'] else 'no'} |")  # fmt: skip
    return lines


def gain_share_lines(res: BandStudyResult) -> list[str]:
    """Per band and group: the share of the gain carried, a matched random group's share, and the reverse patch."""
    if not any(e.n for v in res.bands.values() for per in v.gain_share.values() for e in per.values()):
        return []
    lines = ["## Gain attribution (headline SAE)", "",
             "At each hitting run's matched checkpoint, the group's codes are patched back to the base model's values at "
             "the hook (on the same tokens) and the share of the run's gain that disappears is measured (**carried**); "
             "the same with a random group matched in firing rate and activation mass (**random**); and the share of "
             "the gain the group alone brings to the base model (**reverse**). Mean over seeds, 95% CI. Every condition "
             "of a run shares its random draws (`attribution_samples` completions per eval problem, recorded in each "
             "run's gain_attribution.json). The mode-choice group is measured beside the three contrasted groups but is "
             "not in the verdict's family. The SAE's reconstruction on each checkpoint is in the transfer figure below.", "",
             "| band | group | carried | random (control) | reverse |", "|---|---|---|---|---|"]  # fmt: skip
    for band, v in res.bands.items():
        for group, per in v.gain_share.items():
            if per["carried"].n:
                lines.append(f"| {band} | {group} | {_fmt(per['carried'])} | {_fmt(per['random'])} | {_fmt(per['reverse'])} |")
    return [*lines, ""]


KNOB = {"arith": "chain length", "maze": "grid side"}


def markdown(res: BandStudyResult, figs: dict[str, str], wall_s: float, task: dict | None = None, ingested: dict | None = None) -> str:
    g, a, b = MAIN_CONTRAST
    lines = [f"# Band study ({res.preset})", "", f"**Verdict ({res.verdict_class}).** {res.verdict}", ""]
    if task:
        params = ", ".join(f"{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in task.items() if k != "task")
        lines += [f"Task: {task['task']} ({params}); k is the {KNOB.get(task['task'], 'difficulty knob')}.", ""]
    lines += [f"Seeds per band: {res.seeds}. GRPO loss aggregation: `{res.loss_agg}`. Feature changes are read on the "
              f"**{res.diff_view}** token view (teacher-forced canonical completions, stratified by token role × k, "
              f"decision rows a stratum of their own); the checkpoints' own samples are the second view in diff.json.", ""]  # fmt: skip
    if ingested:
        lines += ["Runs trained elsewhere and ingested (`experiments.ingest`), matched on their evaluated checkpoints only "
                  "(never replayed): " + "; ".join(f"{name} ({e['engine']}, steps in {e['step_unit']})" for name, e in ingested.items()) + ".", ""]
    lines += ["## Matched gain", "",
              f"Matched on `{res.matched_key}`: target {res.matched_gain_target:+.3f}, tolerance ±{res.matched_tol:.3f} "
              f"(one standard error of a measured gain, {res.gain_se:.3f}). Each run is matched at the first step whose "
              f"gain reaches the target minus the tolerance; steps between stored checkpoints were regenerated by replay "
              f"(in runs trained here). "
              f"A seed enters the contrasts only when its matched gain is within the tolerance. Unless set, the target is "
              f"the largest gain every run of every band whose runs all gain at least 3 SE reaches; a band that never gets "
              f"that far is shown as not reaching it.", ""]  # fmt: skip
    if res.verdict_class == "no_target":
        lines += [f"The largest common gain ({res.matched_gain_target:+.3f}) is not at least 3 SE above zero, so the "
                  "matches below are shown for completeness only and nothing is compared at them.", ""]  # fmt: skip
    lines += [*matched_lines(res), "", "| band | final gain (mean over seeds, 95% CI) |", "|---|---|"]
    lines += [f"| {band} | {_fmt(v.gain)} |" for band, v in res.bands.items()]
    lines += ["", f"![gain]({figs['gain']})", "", *gain_share_lines(res), "## Band contrasts", ""]
    lines += [f"Exact permutation tests over seed labels of each band pair's mean **share of the gain carried** "
              f"(the verdict's family). The pre-registered main contrast ({g}: {a} vs {b}) is tested first at α = "
              f"{ALPHA}; only if it shows a difference are the other contrasts tested, with Holm's correction "
              f"('decision p'). A band needs ≥ {MIN_SEEDS} seeds hitting the target. With n seeds per band the smallest "
              f"attainable p is 2 / C(2n, n) (n = 5: 0.008).", ""]  # fmt: skip
    if res.verdict_class == "no_target":
        lines += ["No contrast is tested: there is no gain well above noise to match at (the numbers below are descriptive)."]
    else:
        lines += contrast_lines(res.contrasts)
        lines += ["", "Secondary family, not in the verdict: the same tests on the change in group activity (headline SAE).", ""]
        lines += contrast_lines(res.feature_contrasts)
    lines += ["", "## Feature change at matched gain (SAEs side by side)", ""]
    for sae, nf in res.noise_floor_by_sae.items():
        lines += [f"### {sae}", "", "| band | " + " | ".join(GROUPS) + " |", "|---|" + "---|" * len(GROUPS)]
        for band, v in res.bands.items():
            lines.append(f"| {band} | " + " | ".join(_fmt(v.feature_change_by_sae[sae][x]) for x in GROUPS) + " |")
        lines.append("| same-band noise floor | " + " | ".join(f"{nf[x]:.3f}" for x in GROUPS) + " |")
        cos = ", ".join(f"{k}: {v:+.2f}" for k, v in res.cosine_by_sae[sae].items())
        lines += ["", f"Whole-dictionary change cosine between bands: {cos or 'n/a'}.", ""]
        lines += label_lines(res.labels_by_sae[sae])
    lines += [f"![feature change]({figs['feature_change']})", "", "## Behaviour (eval set, first → last evaluation, mean over seeds)", ""]
    lines += ["| band | " + " | ".join(BEHAVIOURS) + " |", "|---|" + "---|" * len(BEHAVIOURS)]
    for band, v in res.bands.items():
        lines.append(f"| {band} | " + " | ".join(f"{v.behaviour[x]['start']:.2f} → {v.behaviour[x]['end']:.2f}" for x in BEHAVIOURS) + " |")
    lines += ["", f"![behaviour]({figs['behaviour']})", "", *success_activity_lines(res, figs.get("success_activity"))]
    lines += diffing_lines(res.model_diffing, figs.get("crosscoder_norms"))
    lines += ["## Controls: SAE transfer per checkpoint", "", f"![sae quality]({figs['sae_quality']})", ""]
    lines += [f"Wall time of this invocation (a resumed run counts only its own part): {wall_s:.0f} s."]
    return "\n".join(lines) + "\n"


def write_report(out: Path, a: BandAnalysis, wall_s: float) -> None:
    """report.md and its figures."""
    shown = (fig_gain, fig_feature_change, fig_behaviour, fig_sae_quality)
    shown += (fig_success_activity,) if a.result.hard_success_activity else ()
    figs = {f.__name__[4:]: f(out, a) for f in shown}
    if a.result.model_diffing:
        figs["crosscoder_norms"] = fig_crosscoder_norms(out, list(a.result.model_diffing))
    config = read_json(RunLayout(out).config)
    ingested = {name: read_json(d / INGESTED) for name, d in RunLayout(out).band_runs().items() if (d / INGESTED).is_file()}
    write_text(out / REPORT, markdown(a.result, figs, wall_s, config.get("task"), ingested))
