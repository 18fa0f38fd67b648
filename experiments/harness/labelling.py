"""Label every latent of an SAE and check each label causally: the one label-and-check pipeline.

Labels come from ``probes.features`` over the SAE's activation cache. Each labelled
group is then ablated at the SAE's hook (``probes.causal``: its decoder contribution is
removed, the SAE's error term kept) while the model solves held-out problems inside the
pretraining range; the behaviour the label is named after must move further than under
any of several random groups of equal size drawn from the live latents:

* shortcut     -> forced-direct accuracy drops,
* computation  -> forced-deliberate accuracy drops,
* deliberation -> the rate of choosing <think> drops.

Works on any sae_lens-format SAE and any HF checkpoint of the architecture it was trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from experiments.harness.rollout import behaviour_under_hooks
from experiments.harness.sources import Source
from experiments.harness.task import Problem
from probes.activations import ActivationCache
from probes.causal import ablation_hook, judge, random_groups
from probes.features import LABELS, LabelRules, feature_stats, features_json, label_features

NAMED_BEHAVIOUR: dict[str, tuple[str, float]] = {
    "shortcut": ("direct_acc", -1.0),
    "computation": ("deliberate_acc", -1.0),
    "deliberation": ("deliberate_rate", -1.0),
}
"""Per label: the behaviour ablation must change, and the expected sign of the change."""


@dataclasses.dataclass(frozen=True)
class CausalSpec:
    """How labels are checked."""

    n_random: int = 5
    """Random groups per label to compare against."""
    max_group: int = 64
    """Largest group ablated (the highest-scoring latents of a label)."""
    seed: int = 0
    """Seeds the random groups."""


def label_checkpoint(sae, cache: ActivationCache, rules: LabelRules, meta: dict) -> dict:
    """features.json content for one SAE on one cache (all rows, duplicates included)."""
    stats = feature_stats(sae, cache, rows=np.arange(cache.n_tokens))
    return features_json(label_features(stats, rules), rules, meta)


def causal_checks(bridge, tokenizer, sae, hook: str, problems: Sequence[Problem], features: dict, spec: CausalSpec) -> dict:
    """Ablate each non-empty label group and random groups; returns per-label check records."""
    clean = behaviour_under_hooks(bridge, tokenizer, problems)
    live = [f["latent"] for f in features["features"] if (f["evidence"].get("fire_rate") or 0) > 0]
    out = {"clean": clean, "problems": len(problems), "checks": {}}
    for label in LABELS:
        group = features["groups"][label][: spec.max_group]
        if not group:
            continue
        pool = [i for i in live if i not in set(features["groups"][label])]
        ablated = behaviour_under_hooks(bridge, tokenizer, problems, [(hook, ablation_hook(sae, group))])
        randoms = [
            behaviour_under_hooks(bridge, tokenizer, problems, [(hook, ablation_hook(sae, g))])
            for g in random_groups(pool, len(group), spec.n_random, spec.seed)
        ]
        metric, direction = NAMED_BEHAVIOUR[label]
        result = judge(metric, direction, clean, ablated, randoms)
        out["checks"][label] = {"group": group, **dataclasses.asdict(result)}
    return out


def with_checks(features: dict, checks: dict) -> dict:
    """features.json record with each latent marked by its group's check (None: not checked)."""
    passed = {label: c["passed"] for label, c in checks["checks"].items()}
    marked = [{**f, "causal_check": passed.get(f["label"])} for f in features["features"]]
    return {**features, "features": marked, "causal": checks}


def summary(features: dict) -> dict[str, dict]:
    """Per label: size, whether its check passed, named effect and the random effects' range."""
    out = {}
    for label in LABELS:
        check = features["causal"]["checks"].get(label)
        out[label] = {"n": features["counts"][label], "passed": None if check is None else check["passed"]}
        if check:
            out[label] |= {"metric": check["metric"], "effect": check["effect"], "random_effects": check["random_effects"]}
    return out


def label_and_check(
    sae, src: Source, hook: str, problems: Sequence[Problem], spec: CausalSpec, meta: dict, rules: LabelRules | None = None
) -> dict:
    """features.json content: every latent labelled on ``src``'s cache, each label group checked causally."""
    features = label_checkpoint(sae, src.cache, rules or LabelRules(), meta)
    checks = causal_checks(src.bridge, src.tokenizer, sae, hook, problems, features, spec)
    return with_checks(features, checks)
