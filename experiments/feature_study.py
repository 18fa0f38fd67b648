"""Label an SAE's latents on a checkpoint and check the labels causally (bring your own of both).

``python -m experiments.feature_study --checkpoint DIR --sae DIR --out runs/mine`` writes
``<out>/features.json`` through the one label-and-check pipeline
(``experiments.harness.reading.labelling``), with the checkpoint's activations cached under ``<out>/acts/``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from experiments.harness import cli
from experiments.harness.reading.labelling import LabelSpec, label_and_check, split_problems, summary
from experiments.harness.reading.probe_sets import ProbeSetSpec
from experiments.harness.reading.sources import SourceSpec, open_source
from experiments.harness.rundir import check_writable, init_run, write_json
from experiments.harness.tasks.registry import task_of_vocab
from probes.layout import FEATURES
from probes.models import load_bridge
from probes.saes.train import check_sae_fits, load_sae


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
    """Named defaults (smoke, default)."""
    k_max: int = 6
    """Causal checks use held-out problems with k = 1..k_max (where both behaviours exist)."""
    per_k: int = 20
    """Problems per k in each of the labelling and test splits (the causal checks run on the test split)."""
    n_random: int = 20
    """Random latent groups (matched in firing rate and mass) per check."""
    probe_k_max: int = 8
    """Longest chain in the probe set the latents are labelled on."""
    probe_per_k: int = 200
    """Probe problems per k."""
    probe_samples: int = 2
    """The checkpoint's own completions sampled per probe problem."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        for name in ("k_max", "per_k", "n_random", "probe_k_max", "probe_per_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")

    def source_spec(self, hook: str) -> SourceSpec:
        return SourceSpec(
            self.out, hook, ProbeSetSpec(k_max=self.probe_k_max, per_k=self.probe_per_k, n_samples=self.probe_samples)
        )


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(k_max=3, per_k=4, n_random=3, probe_k_max=4, probe_per_k=10, probe_samples=1),
}


def main(args: FeatureStudyArgs) -> dict:
    """Write <out>/features.json for ``args.sae`` on ``args.checkpoint``; returns it."""
    check_writable(args.out)
    sae = load_sae(args.sae)
    check_sae_fits(sae, load_bridge(args.checkpoint), args.sae)  # before anything is written
    hook = sae.cfg.metadata.hook_name
    init_run(args.out, "feature_study", args)
    src = open_source(args.source_spec(hook), args.checkpoint)
    task = task_of_vocab(src.tokenizer.get_vocab())
    label_split, test_split = split_problems(0, task.knobs(args.k_max), args.per_k, task)
    meta = {"sae": str(args.sae), "checkpoint": str(args.checkpoint), "hook": hook}
    spec = LabelSpec(n_random=args.n_random, shortcut_k=task.shortcut_k)
    record = label_and_check(sae, src, hook, label_split, test_split, spec, meta)
    write_json(args.out / FEATURES, record)
    for label, s in summary(record).items():
        print(f"{label:<13} {s['n']:>5} latents  causal check: {s['passed']}")
    return record


if __name__ == "__main__":
    cli.run(main, FeatureStudyArgs, PRESETS)
