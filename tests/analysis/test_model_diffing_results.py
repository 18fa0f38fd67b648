"""The model-diffing summary on a hand-built record with planted effects, a flagged splice and known readings."""

import json

import pytest
import torch

from experiments.analysis.band_results import BandDiffing
from experiments.analysis.model_diffing_results import flagged, summarise

SEEDS = ("bands/medium/seed0", "bands/medium/seed1", "bands/medium/seed2")


def effects(seed: int) -> dict[str, float]:
    """Clean 0.5 -> 0.7; the crosscoder's group brings +0.1 to the base and carries 0.15 + 0.05 * seed of
    the tuned accuracy, its random twin nothing; its splice into the tuned model of seed 2 loses accuracy."""
    out = {
        "acc/base": 0.5,
        "acc/tuned": 0.7,
        "ce/base": 1.0,
        "ce/tuned": 0.9,
        "acc/tuned/base_sae": 0.7,
        "ce/tuned/base_sae": 0.95,
    }
    for k in ("crosscoder", "difference"):
        out |= {f"acc/base/{k}": 0.5, f"acc/tuned/{k}": 0.7, f"ce/base/{k}": 1.0, f"ce/tuned/{k}": 0.9}
    out["acc/tuned/crosscoder"] = 0.2 if seed == 2 else 0.7
    out |= {
        "acc/base/crosscoder/group": 0.6,
        "acc/base/crosscoder/random": 0.5,
        "acc/tuned/crosscoder/group": 0.7 - (0.15 + 0.05 * seed),
        "acc/tuned/crosscoder/random": 0.7,
    }
    return out


def dictionary(group, labels, unique) -> dict:
    rel = [0.5, 0.95, 0.97, 0.05]
    return {
        "fve": dict.fromkeys(SEEDS, 0.9),
        "l0": dict.fromkeys(SEEDS, 8.0),
        "dead_frac": 0.0,
        "relative_norm": rel,
        "fire_rate": [0.1, 0.1, 0.2, 0.0],
        "change_mass": [0.1, 0.3, 0.1, 0.0],
        "group": group,
        "unique": unique,
        "labels": labels,
    }


def record(difference_labels: dict) -> dict:
    """The crosscoder found a shortcut and an unlabelled latent; the difference SAE's group is latents 0..2."""
    return {
        "claim": "matched",
        "steps": dict.fromkeys(SEEDS, 20),
        "n_rollouts": 200,
        "dictionaries": {
            "crosscoder": dictionary([1, 2], {"1": "shortcut", "2": "unlabelled"}, [1]),
            "difference": dictionary([0, 1, 2], difference_labels, []),
        },
        "effects": {s: effects(i) for i, s in enumerate(SEEDS)},
    }


def readings(shortcut_up: bool) -> dict:
    """Base-SAE latent means: latent 0 (the shortcut group) grows by 50% at every claim checkpoint, or not at all."""
    means = lambda x: {  # noqa: E731
        "means": {"canonical": torch.tensor([x, 1.0]), "sampled": torch.tensor([x, 1.0])},
        "fve": 0.95,
        "l0": 9.0,
        "dead_frac": 0.1,
    }
    out = {"base": {"sae": means(1.0)}}
    out |= {f"{s}/checkpoint-20": {"sae": means(1.5 if shortcut_up else 1.0)} for s in SEEDS}
    return out


def test_flagged__a_change_beyond_two_standard_errors_either_way_and_not_within_them():
    assert flagged(0.7, 0.2, 200) and flagged(0.2, 0.7, 200) and not flagged(0.7, 0.68, 200)
    assert flagged(1.0, 0.98, 200) and not flagged(1.0, 0.996, 200)  # at a clean 1.0 the floor is one rollout


def test_summarise__effects_over_unflagged_seeds_labels_counts_and_the_three_readings():
    groups = {"shortcut": [0], "computation": [], "deliberation": [1], "mode": []}
    labels = {"0": "mode", "1": "shortcut", "2": "unlabelled"}  # change mass 0.1, 0.3, 0.1 of 0.5
    typed = summarise({"medium": record(labels)}, readings(shortcut_up=True), "sae", groups)["medium"]
    md = typed.to_json()  # what results.json holds, read back whole
    assert (
        json.dumps(BandDiffing.from_json(json.loads(json.dumps(md))).to_json()) == json.dumps(md)
        and typed.dictionary("crosscoder") is typed.crosscoder
    )
    xc = md["crosscoder"]
    assert (
        xc["n"] == 2
        and xc["n_unique"] == 1
        and xc["labels"] == {"shortcut": 1, "unlabelled": 1}
        and xc["unique_labels"] == {"shortcut": 1}
    )
    assert xc["norm_classes"] == {"base_only": 0, "shared": 1, "tuned_only": 2, "confirmed": 2, "live": 3}
    steer, ablate = xc["effects"]["steer"], xc["effects"]["ablate"]
    assert (
        steer["seeds"] == 3
        and steer["group"]["mean"] == pytest.approx(0.1)
        and steer["random"]["mean"] == pytest.approx(0.0)
    )
    assert ablate["seeds"] == 2 and ablate["group"]["mean"] == pytest.approx(0.175)  # seed 2's tuned splice is flagged
    assert md["difference"]["label_share"] == pytest.approx({"mode": 0.2, "shortcut": 0.6, "unlabelled": 0.2})
    assert md["difference"]["effects"]["steer"]["seeds"] == 0  # no group accuracies in the record
    faith = md["faithfulness"]
    assert len(faith) == 3 * 5 and [r["flagged"] for r in faith].count(True) == 1
    assert {r["dictionary"] for r in faith if r["flagged"]} == {"crosscoder"}
    rd = md["readings"]
    assert (
        rd["groups"]["shortcut"]["base_sae"]["mean"] == pytest.approx(0.5)
        and rd["groups"]["shortcut"]["crosscoder"] == 1
    )
    assert rd["groups"]["mode"]["base_sae"] is None and rd["groups"]["mode"]["difference"] == pytest.approx(0.2)
    assert (
        rd["top"] == {"base_sae": "shortcut", "crosscoder": "shortcut", "difference": "shortcut"}
        and rd["agree"] is True
    )
    other = summarise(
        {"medium": record({**labels, "0": "computation", "1": "mode"})}, readings(shortcut_up=True), "sae", groups
    )["medium"]
    assert other.readings["top"]["difference"] == "mode" and other.readings["agree"] is False
    quiet = summarise({"medium": record(labels)}, readings(shortcut_up=False), "sae", groups)["medium"].readings
    assert quiet["top"]["base_sae"] is None and quiet["agree"] is True  # the two dictionaries still both name shortcut


def test_summarise__a_dictionary_flagged_on_most_models_loses_its_reading_and_one_flag_does_not():
    """The base SAE's splice breaks 2 of 3 tuned checkpoints: its activity reading names nothing and is removed;
    the crosscoder, flagged on 1 of its 6 spliced models, keeps its reading."""
    groups = {"shortcut": [0], "computation": [], "deliberation": [1], "mode": []}
    rec = record({"0": "mode", "1": "shortcut", "2": "unlabelled"})
    for seed in SEEDS[:2]:
        rec["effects"][seed]["acc/tuned/base_sae"] = 0.1
    md = summarise({"medium": rec}, readings(shortcut_up=True), "sae", groups)["medium"]
    rd = md.readings
    assert md.removed == ["base_sae"]
    assert rd["top"]["base_sae"] is None and all(g["base_sae"] is None for g in rd["groups"].values())
    assert rd["top"]["crosscoder"] == "shortcut" and rd["groups"]["shortcut"]["crosscoder"] == 1
    assert rd["agree"] is True  # the two remaining readings both name shortcut
    kept = summarise(
        {"medium": record({"0": "mode", "1": "shortcut", "2": "unlabelled"})}, readings(shortcut_up=True), "sae", groups
    )
    assert kept["medium"].removed == [] and kept["medium"].readings["top"]["base_sae"] == "shortcut"
