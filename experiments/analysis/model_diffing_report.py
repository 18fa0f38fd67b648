"""The model-diffing section of the band study's report: band-specific latents, three readings, faithfulness."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from experiments.analysis.band_results import BandDiffing
from experiments.analysis.figures import save_figure
from experiments.analysis.model_diffing_results import FLAG_SE, UNFAITHFUL_SHARE
from experiments.analysis.text import interval
from probes.bands import BANDS
from probes.layout import MODEL_DIFFING, RunLayout, read_json
from probes.saes.change import DICTIONARIES
from probes.saes.crosscoder import NU_MAX, TUNED_ONLY
from probes.stats import Estimate

NAMES = {"base_sae": "base SAE", "crosscoder": "crosscoder", "difference": "difference SAE"}
REMOVED = "removed (unfaithful)"


def fig_crosscoder_norms(out: Path, bands: list[str]) -> str:
    """Histogram of the live crosscoder latents' relative decoder norms, one panel per band."""
    fig, axes = plt.subplots(1, len(bands), figsize=(4 * len(bands), 3.2), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, band in zip(axes, bands):
        d = read_json(RunLayout(out).diffing(band) / MODEL_DIFFING)["dictionaries"]["crosscoder"]
        live = [r for r, f in zip(d["relative_norm"], d["fire_rate"]) if f > 0]
        confirmed = [d["relative_norm"][int(j)] for j in d["group"]]
        ax.hist(live, bins=np.linspace(0, 1, 41), color="0.6", label="live latents")
        ax.hist(confirmed, bins=np.linspace(0, 1, 41), color="C3", label="confirmed fine-tune-only")
        ax.axvline(TUNED_ONLY, color="C3", ls="--", lw=1, label=f"fine-tune-only above {TUNED_ONLY}")
        ax.set(title=band, xlabel="relative decoder norm |d_tuned| / (|d_base| + |d_tuned|)")
    axes[0].set_ylabel("latents")
    axes[-1].legend(fontsize=7)
    return save_figure(fig, out / "figures" / "crosscoder_norms.png")


def _est(d: dict | None) -> str:
    if not d or d.get("n", 0) == 0:
        return "–"
    e = Estimate.from_dict(d)
    return interval(e.mean, *e.ci95)


def _counts(c: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "–"


def latent_lines(md: Mapping[str, BandDiffing]) -> list[str]:
    lines = [
        "| band | claim | dictionary | band's latents | only this band | labels | steer base: group / random | "
        "ablate tuned: group / random | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for band, b in md.items():
        for k in DICTIONARIES:
            s = b.dictionary(k)
            eff = s["effects"]
            lines.append(
                f"| {band} | {b.claim} | {NAMES[k]} | {s['n']} | {s['n_unique']} | {_counts(s['labels'])} | "
                f"{_est(eff['steer']['group'])} / {_est(eff['steer']['random'])} | "
                f"{_est(eff['ablate']['group'])} / {_est(eff['ablate']['random'])} | "
                f"{eff['steer']['seeds']}/{eff['ablate']['seeds']} |"
            )
    return lines


def reading_lines(md: Mapping[str, BandDiffing]) -> list[str]:
    lines = [
        "| band | group | base SAE: activity change [95% CI] | crosscoder: new latents | "
        "difference SAE: share of the change |",
        "|---|---|---|---|---|",
    ]
    for band, b in md.items():
        for g, r in b.readings["groups"].items():
            cells = {
                "base_sae": _est(r["base_sae"]),
                "crosscoder": r["crosscoder"],
                "difference": f"{r['difference'] or 0:.2f}",
            }
            cells |= dict.fromkeys(b.removed, REMOVED)
            lines.append(f"| {band} | {g} | " + " | ".join(map(str, cells.values())) + " |")
    lines += [
        "",
        "| band | most changed group: base SAE | crosscoder | difference SAE | agree |",
        "|---|---|---|---|---|",
    ]
    for band, b in md.items():
        top, agree = b.readings["top"], {True: "yes", False: "**no**", None: "–"}[b.readings["agree"]]
        named = [REMOVED if k in b.removed else top[k] or "none" for k in ("base_sae", "crosscoder", "difference")]
        lines.append(f"| {band} | " + " | ".join(named) + f" | {agree} |")
    return lines


def faithfulness_lines(md: Mapping[str, BandDiffing]) -> list[str]:
    lines = [
        "| band | dictionary | model | FVE | L0 | dead | accuracy clean → spliced | next-token loss clean → spliced | "
        "flagged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for band, b in md.items():
        rows = b.faithfulness
        for key in dict.fromkeys((r["dictionary"], r["model"]) for r in rows):
            sel = [r for r in rows if (r["dictionary"], r["model"]) == key]
            m = lambda f, sel=sel: np.nanmean([np.nan if r[f] is None else r[f] for r in sel])  # noqa: E731
            lines.append(
                f"| {band} | {NAMES[key[0]]} | {key[1]} | {m('fve'):.3f} | {m('l0'):.1f} | {m('dead_frac'):.3f} | "
                f"{m('acc_clean'):.3f} → {m('acc_spliced'):.3f} | {m('ce_clean'):.3f} → {m('ce_spliced'):.3f} | "
                f"{sum(r['flagged'] for r in sel)}/{len(sel)} |"
            )
    return lines


def removed_lines(md: Mapping[str, BandDiffing]) -> list[str]:
    """What an unfaithful dictionary takes out of the report (nothing when every dictionary is faithful)."""
    gone = [f"{NAMES[k]} for {band}" for band, b in md.items() for k in b.removed]
    if not gone:
        return []
    return [
        f"**Readings removed**: {'; '.join(gone)}. Each of these dictionaries is flagged on more than "
        f"{UNFAITHFUL_SHARE:.0%} of the band's spliced models, so its reading describes a model it does not reproduce; "
        "it names no group and is left out of the agreement count. Where the base SAE is removed, so are its activity "
        "changes for that band in the feature-change table above, and the secondary family's contrasts involving "
        "that band are not evidence. The verdict's attribution keeps the error term and stands.",
        "",
    ]


def diffing_lines(md: Mapping[str, BandDiffing], fig: str | None) -> list[str]:
    """The report section (empty without model diffing)."""
    if not md:
        return []
    agree = [b.readings["agree"] for b in md.values() if b.readings["agree"] is not None]
    base_flags = [r for b in md.values() for r in b.faithfulness if r["dictionary"] == "base_sae"]
    n_flag = sum(r["flagged"] for r in base_flags)
    return [
        "## Model diffing: three readings of the claim checkpoints",
        "",
        "Per band, a crosscoder (BatchTopK, one decoder per model) and a difference SAE (BatchTopK on a_tuned − "
        "a_base) are trained on the pooled (base, claim checkpoint) pairs of the band's seeds, on teacher-forced "
        "canonical tokens, and read on held-out ones. Claim checkpoints are the matched ones where every run of the "
        "band hit the target, else the final step (equal budget, unmatched). A band's crosscoder latents are the live "
        f"ones whose relative decoder norm exceeds {TUNED_ONLY} and whose Latent Scaling ratios both stay below "
        f'{NU_MAX}; its difference-SAE latents are those carrying half of the change mass. "Only this band": a '
        "latent's change direction, with this band's codes, is held in every other band's changes at less than "
        f"{NU_MAX} of its beta here. Labels: the band study's attribution rule on the tuned models' read-outs. "
        "Steering adds the group's change to the base model; ablating removes it from the tuned model; accuracy "
        "effects are means over seeds with 95% CIs, a matched random group of the same dictionary beside each "
        "(estimates: 5 seeds cannot make a paired test significant).",
        "",
        *latent_lines(md),
        "",
        *(
            [
                "Not diffed, because no claim checkpoint reads any token differently from the base model (no update "
                f"moved the weights): {', '.join(b for b in BANDS if b not in md)}.",
                "",
            ]
            if set(BANDS) - set(md)
            else []
        ),
        *([f"![crosscoder norms]({fig})", ""] if fig else []),
        "The three readings answer different questions: did the base basis's groups change their activity (relative "
        "change at the claim checkpoints vs base); did fine-tuning make features the base model lacks (the "
        "crosscoder's confirmed latents, by label); which features write the change (the share of the difference SAE's "
        "change mass whose latents carry each label). They are compared on what they all name, the group the band "
        'changed most (base SAE: the largest |change| whose CI excludes 0; "none" where a reading names no group); '
        f"they agree in {sum(agree)} of {len(agree)} bands where at least two name one.",
        "",
        *reading_lines(md),
        "",
        "**The verdict rests on the base SAE's groups**, read through gain attribution: the groups are selected on one "
        "split and causally checked on another against matched random groups, one basis reads every band so shares are "
        "comparable across bands, and attribution patches the groups with the SAE's error term kept, so it acts on the "
        "model's own activations and does not need the SAE to reproduce them. The change dictionaries are trained per "
        "band, so their latents are not shared between bands; they are the check on what the base basis cannot "
        f"represent. The base SAE changes task accuracy when spliced in (flagged) on {n_flag} of {len(base_flags)} "
        "claim checkpoints.",
        "",
        *removed_lines(md),
        f"Faithfulness (mean over seeds; flagged: spliced accuracy more than {FLAG_SE:g} standard errors from clean, "
        "and that seed's effects on that model left out; the base SAE's FVE and L0 are on the diffing probe set, the "
        "dictionaries' on their held-out tokens):",
        "",
        *faithfulness_lines(md),
        "",
    ]
