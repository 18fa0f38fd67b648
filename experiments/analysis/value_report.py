"""value/report.md and value/figures/*.png, rendered from the computed analysis only (nothing here computes data)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from experiments.analysis.figures import save_figure
from experiments.analysis.profile import profile_lines
from experiments.analysis.text import interval
from experiments.analysis.value_inference import N_PERM, STRATA
from experiments.analysis.value_results import (
    BEHAVIOURS,
    METRICS,
    TARGET_AWARE,
    TARGETS,
    ValueAnalysis,
    ValueStudyResult,
)
from experiments.harness.rundir import write_text
from probes.bands import BANDS, COLORS
from probes.layout import PROFILE, REPORT


def _ci(e: dict, fmt: str = "+.2f") -> str:
    return interval(e["mean"], *e["ci95"], fmt=fmt)


def fig_value_curve(out: Path, analysis: ValueAnalysis) -> str:
    res, cols, bands = analysis.result, analysis.cols, np.asarray(analysis.bands)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for band in BANDS:
        sel = bands == band
        ax.scatter(
            cols["pass_rate"][sel], cols["value"][sel], s=14, alpha=0.6, color=COLORS[band], label=f"{band} (label)"
        )
    bins = [b for b in res.value_curve["bins"] if b["n"]]
    mid = [(b["lo"] + b["hi"]) / 2 for b in bins]
    ax.errorbar(
        mid,
        [b["mean"] for b in bins],
        yerr=np.array([[b["mean"] - b["ci95"][0], b["ci95"][1] - b["mean"]] for b in bins]).T,
        color="k",
        marker="s",
        capsize=3,
        label="binned mean (95% CI)",
    )
    a, b, c = res.value_curve["coef"]
    if math.isfinite(c):
        x = np.linspace(0, 1, 50)
        ax.plot(x, a + b * x + c * x**2, "k--", lw=1, label="quadratic fit")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(
        xlabel="base pass rate",
        ylabel="value: held-out accuracy change",
        title=f"One-sample value vs base pass rate (n={len(bands)})",
    )
    ax.legend(fontsize=8)
    return save_figure(fig, out / "figures" / "value_vs_pass_rate.png")


def fig_correlations(out: Path, res: ValueStudyResult) -> str:
    corr = res.correlations
    names = list(corr)
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(names) + 1.2))
    y = np.arange(len(names))
    for j, (t, color) in enumerate(zip(TARGETS, ("tab:blue", "tab:purple"))):
        est = [corr[m][t] for m in names]
        means = np.array([np.nan if e["mean"] is None else e["mean"] for e in est], float)
        err = np.array(
            [[m - e["ci95"][0], e["ci95"][1] - m] if np.isfinite(m) else [0, 0] for m, e in zip(means, est)]
        ).T
        ax.errorbar(means, y + (j - 0.5) * 0.3, xerr=err, fmt="o", color=color, capsize=2, label=f"with {t}")
    for t, ls in zip(TARGETS, ("-", ":")):
        if t in res.reliability and res.reliability[t]["ceiling"]["mean"] is not None:
            ax.axvline(
                res.reliability[t]["ceiling"]["mean"],
                color="grey",
                ls=ls,
                lw=1,
                label=f"{t} ceiling (seed-mean reliability, Spearman-Brown)",
            )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="Spearman rho (95% bootstrap CI)", title="Difficulty metrics vs measured value")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2)
    return save_figure(fig, out / "figures" / "correlations.png")


def fig_drift(out: Path, res: ValueStudyResult) -> str | None:
    if not res.has_ledgers:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for band in BANDS:
        d = res.drift[band]
        if d["curve"]:
            ax.plot(
                [c["step"] for c in d["curve"]], [c["stale"] for c in d["curve"]], "o-", color=COLORS[band], label=band
            )
        if d["label_noise"] is not None and math.isfinite(d["label_noise"]):
            ax.axhline(d["label_noise"], color=COLORS[band], ls=":", lw=1)
    ax.set(
        xlabel="GRPO step of the band run",
        ylabel="fraction no longer in its band",
        ylim=(-0.02, 1.02),
        title="Band drift (dotted: re-measuring the base model alone)",
    )
    ax.legend(fontsize=8)
    return save_figure(fig, out / "figures" / "drift.png")


def fig_one_shot(out: Path, res: ValueStudyResult) -> str:
    degen = res.degeneration
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for band, d in degen.items():
        axes[0].plot(np.arange(1, len(d["reward_curve"]) + 1), d["reward_curve"], "o-", color=COLORS[band], label=band)
    axes[0].set(xlabel="update", ylabel="mean rollout reward", title="One-sample runs: reward")
    axes[0].legend(fontsize=8)
    for ax, key in zip(axes[1:], ("mean_length", "direct_rate")):
        for i, (band, d) in enumerate(degen.items()):
            ax.bar(
                [i - 0.2, i + 0.2],
                [d[f"rollout/{key}"]["first"], d[f"rollout/{key}"]["last"]],
                0.4,
                color=COLORS[band],
                edgecolor="k",
                hatch=["", "//"],
            )
        ax.set_xticks(range(len(degen)), [f"{b}\nfirst | last" for b in degen])
        ax.set(title=f"rollout {key}")
    return save_figure(fig, out / "figures" / "one_shot_behaviour.png")


def write_report(out: Path, analysis: ValueAnalysis) -> None:
    """value/report.md and its figures, rendered from the analysis."""
    res = analysis.result
    figs = [fig_value_curve(out, analysis), fig_correlations(out, res), fig_drift(out, res), fig_one_shot(out, res)]
    rel = res.reliability
    lines = [
        "# Difficulty metrics vs the value of training examples",
        "",
        f"**{res.verdict}**",
        "",
        f"Preset `{res.preset}`; {res.n_problems} problems (equal numbers from each band pool); value = change of "
        f"held-out sampled accuracy after {res.one_shot_steps} one-sample GRPO updates from the base model, mean over "
        f"seeds {res.value_seeds}; damage = share of held-out problems the base model solved greedily that it then "
        "fails.",
        "",
        "## Correlation of each metric with value (Spearman, 95% bootstrap CI over problems)",
        "",
        *ceiling_lines(res),
        f"Each difficulty metric is tested over all problems and inside each band label by permutation ({N_PERM} "
        f"shuffles); Holm's correction runs over that family of {len(res.tests) - len(TARGET_AWARE)} x {len(STRATA)} "
        "tests. Target-aware gradient estimates see the eval set value is measured on: they are shown, not in the "
        "family.",
        "",
        "| metric | what | rho with value | p | Holm p | disattenuated | rho with damage (uncorrected) | n |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {m} | {METRICS[m]} | {_ci(t['all'])} | {_pv(t['all'], 'p')} | {_pv(t['all'], 'p_holm')} | "
            f"{_ci(t['all']['disattenuated']) if t['all']['disattenuated'] else 'n/a'} | "
            f"{_ci(res.correlations[m]['damage'])} | {t['all']['n']} |"
            for m, t in res.tests.items()
        ),
        "",
        *leakage_lines(res),
        "",
        f"![correlations]({figs[1]})",
        "",
        "Within each band label (does a metric rank problems beyond the band it implies?), rho with Holm p:",
        "",
        "| metric | easy | medium | hard |",
        "|---|---|---|---|",
        *(
            [
                "| ceiling (seed-mean reliability) | "
                + " | ".join(_ci(rel["value_within_bands"][b]["ceiling"]) for b in BANDS)
                + " |"
            ]
            if rel
            else []
        ),
        *(
            f"| {m} | " + " | ".join(f"{_ci(t[b])} ({_pv(t[b], 'p_holm')})" for b in BANDS) + " |"
            for m, t in res.tests.items()
        ),
        "",
        *supervised_lines(res),
        "## Value by band label (mean over problems, 95% CI)",
        "",
        "| band | value | greedy value | damage | repair | on eval easy | on eval medium | on eval hard |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {b} | "
            + " | ".join(
                _ci(res.by_band[b][k], "+.3f")
                for k in ("value", "value_greedy", "damage", "repair", "value/easy", "value/medium", "value/hard")
            )
            + " |"
            for b in BANDS
        ),
        "",
        "## Value vs base pass rate",
        "",
        f"Quadratic fit curvature {_ci(res.value_curve['curvature'], '+.3f')}, vertex "
        f"{_ci(res.value_curve['vertex'], '.2f')}; inverted U: {'yes' if res.value_curve['inverted_u'] else 'no'}.",
        "",
        "| base pass rate | n | value | damage |",
        "|---|---|---|---|",
        *(
            f"| [{b['lo']:.2f}, {b['hi']:.2f}) | {b['n']} | {_ci(b, '+.3f')} | {_ci(d, '+.3f')} |"
            for b, d in zip(res.value_curve["bins"], res.value_curve["damage_bins"])
        ),
        "",
        f"![value curve]({figs[0]})",
        "",
        *drift_lines(res, figs[2]),
        "## One-sample runs: degenerate behaviour",
        "",
        "| band | runs | never updated | " + " | ".join(f"rollout {b} first→last" for b in BEHAVIOURS) + " |",
        "|---|---|---|" + "---|" * len(BEHAVIOURS),
        *(
            f"| {b} | {d['runs']} | {d['inert_frac']:.0%} | "
            + " | ".join(f"{d[f'rollout/{k}']['first']:.2f} → {d[f'rollout/{k}']['last']:.2f}" for k in BEHAVIOURS)
            + " |"
            for b, d in res.degeneration.items()
        ),
        "",
        "Held-out behaviour after the runs (base → after, mean over runs):",
        "",
        *(
            f"- {b}: "
            + ", ".join(f"{k} {d[f'eval/{k}']['base']:.2f} → {d[f'eval/{k}']['after']:.2f}" for k in BEHAVIOURS)
            for b, d in res.degeneration.items()
        ),
        "",
        f"![one-sample runs]({figs[3]})",
        "",
        'Per-problem numbers: `examples.json` ("inf" = never learned).',
        "",
        "## Profile",
        "",
        *profile_lines(out / PROFILE),
    ]
    write_text(out / REPORT, "\n".join(lines))


def _pv(t: dict, key: str) -> str:
    v = t.get(key)
    return "—" if v is None else ("n/a" if not math.isfinite(v) else f"{v:.4f}")


def ceiling_lines(res: ValueStudyResult) -> list[str]:
    """Value's reliability: one seed, the seed mean (Spearman-Brown), and the correlation ceiling it sets."""
    rel = res.reliability
    if not rel:
        return ["Ceiling: n/a (one value seed).", ""]
    return [
        f"Reliability of {t} (over {rel[t]['m']} seeds): seed to seed {_ci(rel[t]['single'])}; of the seed mean "
        f"(Spearman-Brown) {_ci(rel[t]['of_mean'])}; ceiling for any metric's rho, its square root, "
        f"{_ci(rel[t]['ceiling'])}."
        for t in TARGETS
    ] + [""]


def leakage_lines(res: ValueStudyResult) -> list[str]:
    """Gradient alignment that sees the eval set against the blind estimate, on the same problems."""
    out = []
    for name, g in res.leakage.items():
        out.append(
            f"- `{name}`: target-aware (eval set value is measured on, the value run's own rollouts) rho = "
            f"{_ci(g['target_aware'])}; blind (a validation set disjoint by content, independent rollouts) "
            f"rho = {_ci(g['blind'])}; difference {_ci(g['difference'])} (paired bootstrap)."
        )
    return out


def supervised_lines(res: ValueStudyResult) -> list[str]:
    """Stability of the supervised scores: problems learned, forgetting counts, and the read-step and
    presentation sensitivity of their correlations with value."""
    sv = res.supervised
    lines = [
        "## Supervised scores: how stable they are",
        "",
        "Problems a scoring run ever gets right (mean over runs): "
        + ", ".join(f"{m} {v:.0%}" for m, v in sv["ever_learned"].items())
        + ".",
        "",
        "Forgetting events (median over runs) per problem, counts: "
        + "; ".join(f"{m}: " + ", ".join(f"{k}×{n}" for k, n in c.items()) for m, c in sv["forgetting_counts"].items())
        + ".",
        "",
        "Rho with value by read step (the headline step is marked *):",
        "",
    ]
    names = list(next(iter(sv["by_read_step"].values())))
    lines += ["| read step | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [
        f"| {s}{'*' if int(s) == res.score_step else ''} | " + " | ".join(_ci(per[n]) for n in names) + " |"
        for s, per in sv["by_read_step"].items()
    ]
    lines += [
        "",
        "Rho of forgetting with value by presentations counted (every 4th, 2nd, all):",
        "",
        "| presentations | forgetting/deliberate | forgetting/direct |",
        "|---|---|---|",
    ]
    lines += [
        f"| {p} | {_ci(per['forgetting/deliberate'])} | {_ci(per['forgetting/direct'])} |"
        for p, per in sv["by_presentations"].items()
    ]
    return [*lines, ""]


def drift_lines(res: ValueStudyResult, fig: str | None) -> list[str]:
    if not res.has_ledgers:
        return [
            "## Band drift",
            "",
            "No GRPO band runs in this run directory: run experiments.band_study for drift.",
            "",
        ]
    lines = [
        "## Band drift during the band runs",
        "",
        "| band | label noise at base (n) | "
        + " | ".join(f"step {c['step']}" for c in res.drift["medium"]["curve"])
        + " |",
        "|---|---|" + "---|" * len(res.drift["medium"]["curve"]),
    ]
    for b in BANDS:
        d = res.drift[b]
        noise = "n/a" if d["label_noise"] is None else f"{d['label_noise']:.2f} ({d['label_noise_n']})"
        lines.append(
            f"| {b} | {noise} | " + " | ".join(f"{c['stale']:.2f} ({c['measured']:.0f})" for c in d["curve"]) + " |"
        )
    return [
        *lines,
        "",
        "Cells: fraction of the pool no longer in its band (problems re-measured in that window).",
        "",
        f"![drift]({fig})",
        "",
    ]
