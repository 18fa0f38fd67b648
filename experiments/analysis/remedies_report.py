"""The remedies study's figure (held-out gain over updates per arm, beside the groups' activity change) and report."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from experiments.analysis.figures import save_figure
from experiments.analysis.profile import profile_lines
from experiments.analysis.remedies_results import ALPHA, BEHAVIOUR, RemediesResult
from experiments.analysis.text import interval
from experiments.harness.rundir import write_text
from probes.bands import BANDS
from probes.layout import RewardStudyLayout

NAMES = {
    "plain": "plain GRPO (hard)",
    "reverse": "reverse curriculum (hard)",
    "shaping": "feature-guided credit (hard)",
    "more_samples": "more samples per prompt (hard)",
    "medium": "plain GRPO (medium)",
}


def _groups(result: RemediesResult, quantity: str = "change") -> list[str]:
    """The groups a per-arm quantity (``change``, ``share``) is read for."""
    return [k.split("/", 1)[1] for k in next(iter(result.arms.values())) if k.startswith(f"{quantity}/")]


def _bars(ax, result: RemediesResult, quantity: str, ylabel: str, title: str) -> None:
    """Per group, each arm's mean ``quantity`` with its t interval (arms without a value leave a gap)."""
    groups = _groups(result, quantity)
    width = 0.8 / max(1, len(result.arms))
    for i, (arm, q) in enumerate(result.arms.items()):
        est = [q[f"{quantity}/{g}"] for g in groups]
        x = np.arange(len(groups)) + (i - (len(result.arms) - 1) / 2) * width
        mid = np.array([e["mean"] for e in est], float)
        err = np.abs(np.array([e["ci95"] for e in est], float).T - mid)
        ax.bar(x, mid, width, yerr=np.nan_to_num(err), color=f"C{i}", capsize=2, label=NAMES.get(arm, arm))
    ax.axhline(0, color="0.7", lw=1)
    ax.set_xticks(np.arange(len(groups)), [f"{g}\n(confirmed)" if g in result.confirmed else g for g in groups])
    ax.set(xlabel="feature group (headline SAE)", ylabel=ylabel, title=title)


def fig_remedies(out: RewardStudyLayout, result: RemediesResult) -> str:
    """Left: each arm's held-out gain over updates (mean over seeds, t interval). Middle: each group's activity
    change at the final checkpoint. Right: the specific share of the band study's matched gain each group carries,
    over the seeds that hit it."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.4), width_ratios=(1.1, 1, 1))
    for i, (arm, q) in enumerate(result.arms.items()):
        steps = sorted(int(k.split("/")[1]) for k in q if k.startswith("curve/"))
        est = [q[f"curve/{s}"] for s in steps]
        mean = np.array([e["mean"] for e in est])
        lo, hi = (np.array([e["ci95"][j] for e in est]) for j in (0, 1))
        left.plot(steps, mean, marker="o", color=f"C{i}", label=NAMES.get(arm, arm))
        left.fill_between(steps, lo, hi, color=f"C{i}", alpha=0.15)
    left.axhline(0, color="0.7", lw=1)
    left.set(xlabel="GRPO update", ylabel="held-out accuracy gain (sampled, T = 1)", title="gain over updates")
    left.legend(fontsize=8)
    _bars(middle, result, "change", "activity change vs base (relative)", "group activity at the final checkpoint")
    hits = ", ".join(f"{a} {n}" for a, n in result.hits.items())
    _bars(right, result, "share", "specific share of the matched gain", f"shares at gain {result.target:+.3f}")
    right.text(0.01, 0.01, f"seeds hitting: {hits}", transform=right.transAxes, fontsize=7, va="bottom")
    return save_figure(fig, out.figures / "remedies.png")


def _cell(e: dict, fmt: str = "+.3f") -> str:
    return interval(e["mean"], *e["ci95"], fmt=fmt)


def arm_table(result: RemediesResult) -> list[str]:
    head = ["gain", *(f"gain on {b}" for b in BANDS), "damage", *BEHAVIOUR]
    lines = [f"| arm | {' | '.join(head)} | worth |", "|---" * (len(head) + 2) + "|"]
    for arm, q in result.arms.items():
        cells = [_cell(q[h]) for h in ("gain", *(f"gain/{b}" for b in BANDS))]
        cells += [_cell(q[h], ".3f") for h in ("damage", *BEHAVIOUR)]
        lines.append(f"| {NAMES.get(arm, arm)} | {' | '.join(cells)} | {result.worth[arm]} |")
    return lines


def contrast_table(rows: list[dict], with_call: bool) -> list[str]:
    lines = ["| contrast | difference [95% Welch] | permutation p | Holm p |" + (" call |" if with_call else "")]
    lines.append("|---|---|---|---|" + ("---|" if with_call else ""))
    for c in rows:
        if not np.isfinite(c["p"]):
            lines.append(f"| {c['name']} | n/a ({c['n'][0]} and {c['n'][1]} seeds) | | |" + (" |" if with_call else ""))
            continue
        call = f" {c['call'].replace('_', ' ')} |" if with_call else ""
        diff = interval(c["diff"], *c["ci95"])
        lines.append(f"| {c['name']} | {diff} | {c['p']:.3f} | {c['p_holm']:.3f} |{call}")
    return lines


def write_report(out: RewardStudyLayout, result: RemediesResult) -> None:
    fig = fig_remedies(out, result)
    groups = _groups(result)
    share_groups = _groups(result, "share")
    change = [
        f"| {NAMES.get(a, a)} | " + " | ".join(_cell(q[f"change/{g}"]) for g in groups) + " |"
        for a, q in result.arms.items()
    ]
    lines = [
        "# Remedies for hard samples",
        "",
        f"**Verdict.** {result.verdict}",
        "",
        f"![held-out gain over updates per arm, beside the groups' activity change and carried shares]({fig})",
        "",
        f"Seeds {result.seeds} per arm, every arm with the band study's budget, learning rate and evaluation draws. "
        "Gain: held-out accuracy (sampled, T = 1) at the last update minus the base model's, overall and on each "
        "base band's problems. Damage: the share of held-out problems the base model solved greedily that the final "
        "checkpoint fails greedily. Behaviour: the final evaluation's own samples. Worth: the arm's gain interval "
        "against 0. Intervals: Student t over seeds.",
        "",
        *arm_table(result),
        "",
        f"## Registered contrasts (equal compute; Holm over the family, alpha = {ALPHA})",
        "",
        *contrast_table(result.useful, with_call=True),
        "",
        "## Which groups changed (the headline SAE's causally confirmed groups; Holm over the family)",
        "",
        "Relative change of each group's mean activity on the band study's diff probe set, final checkpoint vs base:",
        "",
        f"| arm | {' | '.join(groups)} |",
        "|---" * (len(groups) + 1) + "|",
        *change,
        "",
        *(contrast_table(result.mechanism, with_call=False) if result.mechanism else ["No confirmed group."]),
        "",
    ]
    shares = [
        f"| {NAMES.get(a, a)} | {result.hits[a]} | " + " | ".join(_cell(q[f"share/{g}"]) for g in share_groups) + " |"
        for a, q in result.arms.items()
    ]
    lines += [
        f"## Which groups carry the gain (at the band study's matched gain, {result.target:+.3f})",
        "",
        "Each run matched at the band study's target as the band study matches its own (replay, then fractions of an "
        "update), its gain attributed there: the specific share each group carries (patched back to base values, "
        "minus its matched random groups), over the seeds that hit the target.",
        "",
        f"| arm | seeds hitting | {' | '.join(share_groups)} |",
        "|---" * (len(share_groups) + 2) + "|",
        *shares,
        "",
        *(contrast_table(result.carried, with_call=False) if result.carried else ["No confirmed group is attributed."]),
        "",
    ]
    if result.shaping:
        s = result.shaping
        lines += [
            "## Reward hacking under feature-guided credit",
            "",
            f"Share of the paid reward that came from the bonus: {_cell(s['bonus_share'], '.3f')}. The group's "
            f"activity on failed rollouts, first fifth of updates {_cell(s['activity_failed_first'], '.3f')}, last "
            f"fifth {_cell(s['activity_failed_last'], '.3f')}: activity that rises while the gain does not is hacking.",
            "",
        ]
    if result.not_run:
        lines += ["## Arms not run", "", *(f"- {a}: {why}" for a, why in result.not_run.items()), ""]
    lines += ["## Profile", "", *profile_lines(out.profile)]
    write_text(out.report, "\n".join(lines))
