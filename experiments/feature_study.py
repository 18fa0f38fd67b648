"""Label every latent of an SAE and check each label causally on the checkpoint it reads.

Labels come from ``probes.features`` over the SAE's activation cache. Each labelled
group is then ablated at the SAE's hook (``probes.causal``: its decoder contribution is
removed, the SAE's error term kept) while the model solves held-out problems inside the
pretraining range; the behaviour the label is named after must move further than under
any of several random groups of equal size drawn from the live latents:

* shortcut     -> forced-direct accuracy drops,
* computation  -> forced-deliberate accuracy drops,
* deliberation -> the rate of choosing <think> drops.

Works on any sae_lens-format SAE and any HF checkpoint directory of the architecture it
was trained on (bring your own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments import cli, train_sae
from experiments.cli import preset_args
from experiments.hooked_eval import behaviour_under_hooks
from experiments.probe_sets import task_spec_of
from experiments.rundir import check_writable, init_run, write_json
from experiments.task import Problem, generate_problems
from probes.activations import ActivationCache
from probes.causal import ablation_hook, judge, random_groups
from probes.features import LABELS, LabelRules, feature_stats, features_json, label_features
from probes.models import load_bridge
from probes.sae_train import check_sae_fits, load_sae

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


def group_problems(table: dict, k_max: int, per_k: int) -> list[Problem]:
    """Held-out problems with k in 1..k_max (the range where both behaviours exist)."""
    out = []
    for k in range(1, k_max + 1):
        out += [Problem.from_record(r, table["p"]) for r in table["eval_set"] if r["k"] == k][:per_k]
    return out


def summary(features: dict) -> dict[str, dict]:
    """Per label: size, whether its check passed, named effect and the random effects' range."""
    out = {}
    for label in LABELS:
        check = features["causal"]["checks"].get(label)
        out[label] = {"n": features["counts"][label], "passed": None if check is None else check["passed"]}
        if check:
            out[label] |= {"metric": check["metric"], "effect": check["effect"], "random_effects": check["random_effects"]}
    return out


@dataclasses.dataclass(frozen=True)
class FeatureStudyArgs:
    """Label an SAE's latents on a checkpoint and check the labels causally (bring your own of both)."""

    checkpoint: Path = Path("runs/default/base")
    """HF checkpoint directory (safetensors + tokenizer) the SAE reads."""
    sae: Path = Path("runs/default/sae/batchtopk-blocks.1.hook_resid_post")
    """sae_lens-format SAE directory (cfg.json + sae_weights.safetensors)."""
    out: Path = Path("runs/default/features-byo")
    """Directory for features.json and the activation cache."""
    preset: str = "default"
    """Probe-set size (smoke, default, gpu: as in experiments.train_sae)."""
    k_max: int = 6
    """Causal checks use held-out problems with k = 1..k_max (where both behaviours exist)."""
    per_k: int = 20
    """Held-out problems per k for the causal checks."""
    n_random: int = 5
    """Random latent groups per check."""

    def __post_init__(self) -> None:
        for name in ("k_max", "per_k", "n_random"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")


def main(args: FeatureStudyArgs) -> dict:
    """Write <out>/features.json for ``args.sae`` on ``args.checkpoint``; returns it."""
    check_writable(args.out)
    sae = load_sae(args.sae)
    check_sae_fits(sae, load_bridge(args.checkpoint), args.sae)  # before anything is written
    hook = sae.cfg.metadata.hook_name
    probe = preset_args(train_sae.TrainSAEArgs, train_sae.PRESETS, args.preset, run=args.out, hook=hook, checkpoint=str(args.checkpoint))
    init_run(args.out, "feature_study", args)
    src = train_sae.open_source(probe, args.checkpoint)
    features = label_checkpoint(sae, src.cache, LabelRules(), {"sae": str(args.sae), "checkpoint": str(args.checkpoint), "hook": hook})
    task = task_spec_of(src.tokenizer)
    problems = [pr for k in range(1, args.k_max + 1) for pr in generate_problems(4_000_037, k, args.per_k, task)]
    checks = causal_checks(src.bridge, src.tokenizer, sae, hook, problems, features, CausalSpec(args.n_random))
    record = with_checks(features, checks)
    write_json(args.out / "features.json", record)
    for label, s in summary(record).items():
        print(f"{label:<13} {s['n']:>5} latents  causal check: {s['passed']}")
    return record


if __name__ == "__main__":
    cli.run(main, FeatureStudyArgs, {"default": {}, "smoke": {"k_max": 3, "per_k": 4, "n_random": 2}})
