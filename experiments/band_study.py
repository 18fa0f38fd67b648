"""The band study end to end: ``python -m experiments.band_study --preset default --out runs/NAME``.

pretrain -> bands -> GRPO per band x seed -> shared SAEs (BatchTopK and T-SAE) on the base
model -> feature labels with causal checks -> every checkpoint diffed in each SAE basis ->
results.json and report.md with figures. Every stage writes atomically and is skipped
when its artifact exists, so rerunning the same command resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from safetensors.torch import save_file

from experiments import bands, cli, grpo, pretrain, train_sae
from experiments.diffing import VIEWS, checkpoints, means_tensors, read_all
from experiments.feature_study import CausalSpec, causal_checks, group_problems, label_checkpoint, summary, with_checks
from experiments.rundir import check_writable, init_run, read_json, write_json
from experiments.study_report import write_report
from experiments.study_results import (
    BEHAVIOURS,
    GROUPS,
    behaviour,
    estimates,
    final_gain,
    floors,
    matched_changes,
    matching,
    run_name,
    verdict,
)  # fmt: skip
from probes.bands import BANDS
from probes.diff import change_vector
from probes.features import LabelRules
from probes.runs import read_jsonl
from probes.sae_train import load_sae
from probes.stats import bootstrap_mean, cosine


@dataclasses.dataclass(frozen=True)
class BandStudyArgs:
    """Run the whole band study and write results.json and report.md."""

    out: Path = Path("runs/default")
    """Run directory."""
    preset: str = "default"
    """smoke (< 60 s, tests), default (the real study on 2 CPU cores), gpu."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """GRPO seeds per band (>= 3 for confidence intervals)."""
    grpo_steps: int = 40
    """GRPO updates per run (the same budget for every band)."""
    sae_archs: tuple[str, ...] = ("batchtopk", "temporal")
    """Shared SAE bases, reported side by side; the first is the headline."""
    hook: str = ""
    """Hook the SAEs read (empty: the train_sae preset's default)."""
    matched_key: str = "eval/acc/all/sampled"
    """Eval metric whose gain over the base model is matched."""
    target_gain: float | None = None
    """Matched gain target (None: the largest gain every run reaches)."""
    matched_tol: float = 0.0
    """Tolerance below the target that still counts as reaching it."""
    causal_per_k: int = 20
    """Held-out problems per k (inside the pretraining range) for causal checks."""
    n_random: int = 5
    """Random latent groups per causal check."""
    diff_per_k: int = 10
    """Probe problems per k for checkpoint diffing."""

    def __post_init__(self) -> None:
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: need distinct seeds, got {self.seeds}")
        if not self.sae_archs or set(self.sae_archs) - {"batchtopk", "matryoshka", "temporal"}:
            raise ValueError(f"sae_archs: must be from batchtopk, matryoshka, temporal; got {self.sae_archs}")
        for name in ("grpo_steps", "causal_per_k", "n_random", "diff_per_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")

    def sae_args(self, arch: str, **over) -> train_sae.TrainSAEArgs:
        hook = {"hook": self.hook} if self.hook else {}
        return cli.preset_args(train_sae.TrainSAEArgs, train_sae.PRESETS, self.preset, run=self.out, arch=arch, **hook, **over)


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(grpo_steps=4, causal_per_k=4, n_random=2, diff_per_k=3),
    "gpu": dict(seeds=(0, 1, 2, 3, 4), grpo_steps=200, causal_per_k=100, n_random=10, diff_per_k=50),
}


def train_stages(args: BandStudyArgs) -> None:
    """Base model, bands, and one GRPO run per band x seed (each resumable)."""
    pretrain.main(cli.preset_args(pretrain.PretrainArgs, pretrain.PRESETS, args.preset, out=args.out))
    bands.main(cli.preset_args(bands.BandArgs, bands.PRESETS, args.preset, run=args.out))
    for seed in args.seeds:
        for band in BANDS:
            grpo.main(cli.preset_args(grpo.GRPOArgs, grpo.PRESETS, args.preset, run=args.out, band=band, seed=seed, steps=args.grpo_steps))


def feature_stage(args: BandStudyArgs, arch: str) -> dict:
    """Train the SAE (if needed), label its latents and check the labels causally."""
    sae_args = args.sae_args(arch)
    train_sae.main(sae_args)
    sae_dir = args.out / "sae" / sae_args.sae_name
    path = sae_dir / "features.json"
    if path.exists():
        return read_json(path)
    src = train_sae.open_source(sae_args, sae_args.checkpoint_dir)
    sae = load_sae(sae_dir)
    meta = {"sae": sae_args.sae_name, "hook": sae_args.hook, "checkpoint": str(sae_args.checkpoint_dir)}
    features = label_checkpoint(sae, src.cache, LabelRules(), meta)
    table = read_json(args.out / "bands" / "table.json")
    k_max = read_json(args.out / "config.json")["stages"]["pretrain"]["k_train_max"]
    problems = group_problems(table, k_max, args.causal_per_k)
    checks = causal_checks(src.bridge, src.tokenizer, sae, sae_args.hook, problems, features, CausalSpec(args.n_random))
    record = with_checks(features, checks)
    write_json(path, record)
    return record


DIFF_PROBE_SEED = 17
"""Seed of the diffing probe set: other problems than the SAE's training probe set (seed 0)."""


def diff_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """Read every checkpoint in every SAE basis; latent means also go to latent_means.safetensors.

    Activation caches persist under acts/, so a rerun only re-encodes them."""
    probe = args.sae_args(args.sae_archs[0], per_k=args.diff_per_k, n_samples=1, seed=DIFF_PROBE_SEED)
    saes = {name: load_sae(args.out / "sae" / name) for name in features}
    readings = read_all(probe, checkpoints(args.out), saes)
    path = args.out / "latent_means.safetensors"
    save_file(means_tensors(readings), str(tmp := path.with_name(f".{path.name}.write.tmp")))
    tmp.replace(path)
    return readings


def sae_block(readings, name: str, feats: dict, m, args: BandStudyArgs) -> dict:
    """Per band: matched-gain group change with CIs; noise floor; cosine between bands."""
    groups = {g: feats["groups"][g] for g in GROUPS}
    values = matched_changes(readings, name, groups, m, args.seeds)
    est = estimates(values)
    live = readings["base"][name]["means"][VIEWS[0]] > 0
    vectors = {}
    for band in BANDS:
        vs = [change_vector(readings[f"{run_name(band, s)}/ckpt-{m.points[run_name(band, s)].step}"][name]["means"][VIEWS[0]],
                            readings["base"][name]["means"][VIEWS[0]], live)
              for s in args.seeds if m.points[run_name(band, s)].reached]  # fmt: skip
        vectors[band] = sum(vs) / len(vs) if vs else None
    cos = {f"{a}~{b}": cosine(vectors[a], vectors[b]) for a, b in (("easy", "medium"), ("medium", "hard"), ("easy", "hard"))
           if vectors[a] is not None and vectors[b] is not None}  # fmt: skip
    fve = {ckpt: r[name]["fve"] for ckpt, r in readings.items()}
    return {"values": values, "estimates": est, "noise_floor": floors(values, GROUPS), "cosine": cos, "fve": fve,
            "labels": summary(feats), "groups": groups}  # fmt: skip


def results(args: BandStudyArgs, features: dict[str, dict], readings: dict[str, dict]) -> tuple[dict, dict]:
    """(results.json, everything the report needs)."""
    metrics = {run_name(b, s): read_jsonl(args.out / run_name(b, s) / "metrics.jsonl") for b in BANDS for s in args.seeds}
    steps = {n: {int(p.name.split("-")[1]) for p in (args.out / n).glob("ckpt-*")} for n in metrics}
    m = matching(metrics, steps, args.matched_key, args.target_gain, args.matched_tol)
    blocks = {name: sae_block(readings, name, feats, m, args) for name, feats in features.items()}
    head_name = next(iter(blocks))
    head = blocks[head_name]
    n_reached = {b: sum(m.points[run_name(b, s)].reached for s in args.seeds) for b in BANDS}
    out_bands = {}
    for band in BANDS:
        names = [run_name(band, s) for s in args.seeds]
        gains = [final_gain(metrics[n], args.matched_key) for n in names]
        beh = [behaviour(metrics[n]) for n in names]
        out_bands[band] = {
            "gain": bootstrap_mean(gains).as_dict(),
            "matched_step": [m.points[n].step for n in names],
            "matched_gain": [m.points[n].gain for n in names],
            "behaviour": {b: {k: float(sum(x[b][k] for x in beh) / len(beh)) for k in ("start", "end")} for b in BEHAVIOURS},
            "feature_change": {g: head["estimates"][band][g].as_dict() for g in GROUPS},
            "feature_change_by_sae": {n: {g: blk["estimates"][band][g].as_dict() for g in GROUPS} for n, blk in blocks.items()},
        }
    res = {
        "preset": args.preset, "seeds": list(args.seeds), "bands": out_bands, "matched_key": args.matched_key,
        "matched_gain_target": m.target, "noise_floor": head["noise_floor"],
        "noise_floor_by_sae": {n: blk["noise_floor"] for n, blk in blocks.items()},
        "cosine_by_sae": {n: blk["cosine"] for n, blk in blocks.items()},
        "labels_by_sae": {n: blk["labels"] for n, blk in blocks.items()}, "headline_sae": head_name,
        "verdict": verdict(head["estimates"], head["noise_floor"], m, n_reached, len(args.seeds),
                           {g: lab["passed"] for g, lab in head["labels"].items()}),
    }  # fmt: skip
    return res, {"metrics": metrics, "matching": m, "blocks": blocks, "readings": readings}


def main(args: BandStudyArgs) -> dict:
    """Run or resume every stage; returns results.json's content."""
    check_writable(args.out)
    init_run(args.out, "band_study", args)
    start = time.perf_counter()

    def stage(name: str) -> None:
        print(f"[band_study {time.perf_counter() - start:6.0f} s] {name}", flush=True)

    stage("pretrain, bands, GRPO per band x seed")
    train_stages(args)
    features = {}
    for arch in args.sae_archs:
        stage(f"SAE {arch}: train, label latents, causal checks")
        features[args.sae_args(arch).sae_name] = feature_stage(args, arch)
    stage("diff every checkpoint in each SAE basis")
    readings = diff_stage(args, features)
    stage("results and report")
    res, extra = results(args, features, readings)
    write_report(args.out, res, extra, wall_s=time.perf_counter() - start)  # not in results.json: it varies
    write_json(args.out / "results.json", res)
    print(res["verdict"])
    return res


if __name__ == "__main__":
    cli.run(main, BandStudyArgs, PRESETS)
