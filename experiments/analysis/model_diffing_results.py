"""The model-diffing section of results.json: three readings of each band's claim checkpoints.

* base SAE: each behaviour group's activity change vs the base model (the band study's basis);
* crosscoder: the band's confirmed fine-tune-only latents, their labels and causal effects;
* difference SAE: the latents carrying most of the band's activation change, the same way.

They answer different questions (did known features change their activity; did fine-tuning make
features the base model lacks; which features write the change), so they are compared on one
thing they all name: the behaviour group the band's fine-tune changed most.

Causal effects are per seed, then a mean with a t interval over seeds: steering adds the group's
change to the base model (accuracy gained), ablating removes it from the tuned model (accuracy
lost), each beside a random group of the same dictionary matched in firing rate and mass. With
5 seeds a paired sign-flip test cannot reach p < 0.05, so these are estimates, not tests. A
dictionary whose spliced accuracy on a checkpoint lies more than FLAG_SE standard errors from the
clean accuracy is flagged there, and that seed's effects on that model are left out. A dictionary
flagged on most of a band's spliced models is unfaithful for the band: its reading is removed
there (``removed``), since it describes a model the dictionary does not reproduce.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

from experiments.analysis.band_results import BandDiffing, group_changes
from experiments.harness.reading.feature_groups import NAMES
from probes.layout import point_name
from probes.saes.change import DICTIONARIES
from probes.saes.crosscoder import SHARED, TUNED_ONLY
from probes.stats import t_mean

FLAG_SE = 2.0
"""Spliced accuracy this many standard errors from clean flags the dictionary on that checkpoint (set before
results)."""
UNFAITHFUL_SHARE = 0.5
"""A dictionary flagged on more than this share of a band's spliced models loses its reading there (set before
results)."""
INTERVENTIONS = {"steer": "base", "ablate": "tuned"}
"""Intervention -> the model it acts on."""


def flagged(clean: float, spliced: float, n: int) -> bool:
    """The splice changes task accuracy, either way, by more than FLAG_SE binomial standard errors of the
    two accuracies (a splice that pulls a checkpoint toward the other model is no more faithful than one that breaks
    it)."""
    se = math.sqrt((clean * (1 - clean) + spliced * (1 - spliced)) / max(n, 1))
    return abs(clean - spliced) > FLAG_SE * max(se, 1 / max(n, 1))


def faithfulness(band: str, rec: dict, readings: Mapping[str, dict], sae_name: str) -> list[dict]:
    """Per seed, dictionary and model: FVE, L0, dead fraction, clean vs spliced accuracy and next-token loss."""
    rows, n = [], rec["n_rollouts"]
    for run, eff in rec["effects"].items():
        ckpt = f"{run}/{point_name(rec['steps'][run])}"
        base_fit = readings.get(ckpt, {}).get(sae_name, {})
        fits = {"base_sae": (base_fit.get("fve"), base_fit.get("l0"), base_fit.get("dead_frac"))}
        fits |= {k: (d["fve"][run], d["l0"][run], d["dead_frac"]) for k, d in rec["dictionaries"].items()}
        for name, (fve, l0, dead) in fits.items():
            for model in ("base", "tuned") if name != "base_sae" else ("tuned",):
                clean, spliced = eff[f"acc/{model}"], eff[f"acc/{model}/{name}"]
                rows.append(
                    {
                        "band": band,
                        "run": run,
                        "checkpoint": ckpt if model == "tuned" else "base",
                        "dictionary": name,
                        "model": model,
                        "fve": fve,
                        "l0": l0,
                        "dead_frac": dead,
                        "acc_clean": clean,
                        "acc_spliced": spliced,
                        "ce_clean": eff[f"ce/{model}"],
                        "ce_spliced": eff[f"ce/{model}/{name}"],
                        "flagged": flagged(clean, spliced, n),
                    }
                )
    return rows


def unfaithful(faith: list[dict]) -> list[str]:
    """The dictionaries flagged on more than UNFAITHFUL_SHARE of the band's spliced models."""
    names = dict.fromkeys(r["dictionary"] for r in faith)
    flags = {k: [r["flagged"] for r in faith if r["dictionary"] == k] for k in names}
    return [k for k, v in flags.items() if sum(v) > UNFAITHFUL_SHARE * len(v)]


def effects(rec: dict, kind: str, faith: list[dict]) -> dict[str, dict]:
    """Per intervention: the group's and the random group's accuracy effect over unflagged seeds."""
    bad = {(r["run"], r["model"]) for r in faith if r["dictionary"] == kind and r["flagged"]}
    out = {}
    for name, model in INTERVENTIONS.items():
        sign = 1.0 if model == "base" else -1.0
        runs = [
            run for run, e in rec["effects"].items() if f"acc/{model}/{kind}/group" in e and (run, model) not in bad
        ]
        per = {
            g: [sign * (rec["effects"][r][f"acc/{model}/{kind}/{g}"] - rec["effects"][r][f"acc/{model}"]) for r in runs]
            for g in ("group", "random")
        }
        out[name] = {g: t_mean(v).as_dict() for g, v in per.items()} | {"seeds": len(runs)}
    return out


def dictionary_summary(rec: dict, kind: str, faith: list[dict]) -> dict:
    d = rec["dictionaries"][kind]
    labels = {int(j): lab for j, lab in d["labels"].items()}
    mass = {j: d["change_mass"][j] for j in d["group"]}
    total = sum(mass.values())
    shares = Counter({lab: 0.0 for lab in labels.values()})
    for j, m in mass.items():
        shares[labels[j]] += m / total if total > 0 else 0.0
    out = {
        "n": len(d["group"]),
        "n_unique": len(d["unique"]),
        "labels": dict(Counter(labels[j] for j in d["group"])),
        "unique_labels": dict(Counter(labels[j] for j in d["unique"])),
        "label_share": dict(shares),
        "effects": effects(rec, kind, faith),
    }
    if kind == "crosscoder":
        live = [r for r, f in zip(d["relative_norm"], d["fire_rate"]) if f > 0]
        out["norm_classes"] = {
            "base_only": sum(r < 1 - TUNED_ONLY for r in live),
            "shared": sum(SHARED[0] <= r <= SHARED[1] for r in live),
            "tuned_only": sum(r > TUNED_ONLY for r in live),
            "confirmed": len(d["group"]),
            "live": len(live),
        }
    return out


def _top(scores: Mapping[str, float]) -> str | None:
    """The behaviour group with the largest positive score (None when none has one)."""
    named = {g: v for g, v in scores.items() if g in NAMES and v > 0}
    return max(named, key=named.__getitem__) if named else None


def three_readings(
    rec: dict,
    summary: dict,
    readings: Mapping[str, dict],
    sae_name: str,
    groups: Mapping[str, list[int]],
    removed: list[str],
) -> dict:
    """Per behaviour group: the base SAE's activity change at the claim checkpoints (CI over seeds), the
    crosscoder's confirmed new latents with that label, and the share of the difference SAE's group change
    mass whose latents carry it. Each reading then names the group it implicates most (base SAE: the largest
    |change| whose CI excludes 0; crosscoder: the most new latents; difference SAE: the largest share), and
    the readings agree when all that name one (at least two) name the same. A ``removed`` (unfaithful)
    dictionary's reading is None and names nothing."""
    ckpts = [c for c in (f"{run}/{point_name(step)}" for run, step in rec["steps"].items()) if c in readings]
    per_group, base_scores = {}, {}
    for g in NAMES:
        est = (
            t_mean([group_changes(readings, sae_name, groups, c)[g] for c in ckpts])
            if groups.get(g) and ckpts
            else None
        )
        if est is not None and not est.ci95[0] <= 0 <= est.ci95[1]:
            base_scores[g] = abs(est.mean)
        read = {
            "base_sae": est.as_dict() if est else None,
            "crosscoder": summary["crosscoder"]["labels"].get(g, 0),
            "difference": summary["difference"]["label_share"].get(g, 0.0),
        }
        per_group[g] = {k: None if k in removed else v for k, v in read.items()}
    top = {
        "base_sae": _top(base_scores),
        "crosscoder": _top(summary["crosscoder"]["labels"]),
        "difference": _top(summary["difference"]["label_share"]),
    }
    top = {k: None if k in removed else v for k, v in top.items()}
    named = [v for v in top.values() if v is not None]
    return {"groups": per_group, "top": top, "agree": len(set(named)) == 1 if len(named) >= 2 else None}


def summarise(
    records: Mapping[str, dict], readings: Mapping[str, dict], sae_name: str, groups: Mapping[str, list[int]]
) -> dict[str, BandDiffing]:
    """results.json's model_diffing: per band whose claim checkpoints changed the model, its ``BandDiffing``
    (the readings less the unfaithful ones, named in ``removed``)."""
    out = {}
    for band, rec in records.items():
        if rec.get("unchanged"):
            continue  # no claim checkpoint moved: the report names the band as not diffed
        faith = faithfulness(band, rec, readings, sae_name)
        summary, removed = {k: dictionary_summary(rec, k, faith) for k in DICTIONARIES}, unfaithful(faith)
        out[band] = BandDiffing(
            rec["claim"],
            rec["steps"],
            rec["n_rollouts"],
            **summary,
            readings=three_readings(rec, summary, readings, sae_name, groups, removed),
            faithfulness=faith,
            removed=removed,
        )
    return out
