"""Feature groups: the shared SAEs' groups, labelled and causally checked, and the hook they read.

Steps of ``experiments.band_study``; each takes the study's arguments and is resumable on its own."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from experiments import train_sae
from experiments.analysis.contrasts import SEQUENCE_GROUPS
from experiments.harness.reading.labelling import LabelSpec, label_and_check, labelling_checks, split_problems
from experiments.harness.reading.probe_sets import ProbeSetSpec, probe_problems
from experiments.harness.reading.sources import open_source
from experiments.harness.rundir import init_run, write_json
from experiments.harness.tasks.family import Problem
from experiments.harness.tasks.registry import run_task
from probes.layout import FEATURES, RunLayout, read_json
from probes.saes.train import load_sae

if TYPE_CHECKING:
    from experiments.band_study import BandStudyArgs


def causal_problems(args: BandStudyArgs, sae_probe: ProbeSetSpec) -> tuple[list[Problem], list[Problem]]:
    """(labelling split, test split) of the causal stream, k inside the pretraining range (where both
    behaviours exist), without the chains the SAEs were trained on; more problems where direct answers work."""
    layout = RunLayout(args.out)
    task, pre = run_task(layout.root), read_json(layout.config)["stages"]["pretrain"]
    seen = [pr for pr, _ in probe_problems(sae_probe, task)]
    ks = task.knobs(pre["k_train_max"])
    per_k = {k: args.causal_shortcut_per_k if k <= label_spec(args).shortcut_k else args.causal_per_k for k in ks}
    return split_problems(args.bands_args.seed, ks, per_k, task, seen)


def label_spec(args: BandStudyArgs) -> LabelSpec:
    return LabelSpec(
        n_random=args.n_random, shortcut_k=max(args.pretrain_args.family.shortcut_k, args.pretrain_args.direct_k_max)
    )


def feature_jobs(args: BandStudyArgs) -> list[tuple[BandStudyArgs, str]]:
    """``sae_features``' jobs, one per architecture (their config.json sections written first)."""
    init_saes(args, [args.sae_args(arch) for arch in args.sae_archs])
    return [(args, arch) for arch in args.sae_archs]


def by_sae(args: BandStudyArgs, records: list[dict]) -> dict[str, dict]:
    """``feature_jobs``' records by SAE name."""
    return {args.sae_args(arch).sae_name: rec for arch, rec in zip(args.sae_archs, records)}


def sae_features(job: tuple[BandStudyArgs, str]) -> dict:
    """Train one SAE (if needed), label its latents and check the labels causally."""
    args, arch = job
    sae_args = args.sae_args(arch)
    train_sae.main(sae_args)
    sae_dir = RunLayout(args.out).sae(sae_args.sae_name)
    path, spec = sae_dir / FEATURES, label_spec(args)
    label_split, test_split = causal_problems(args, sae_args.probe_spec)
    cached = read_json(path) if path.exists() else {}
    if cached.get("spec") == dataclasses.asdict(spec) and cached["causal"]["problems"] == len(test_split):
        return cached  # made with this spec and split (an older format or another spec is redone)
    src = open_source(sae_args.source_spec, sae_args.checkpoint_dir)
    meta = {"sae": sae_args.sae_name, "hook": sae_args.hook, "checkpoint": str(sae_args.checkpoint_dir)}
    record = label_and_check(
        load_sae(sae_dir, args.run_device), src, sae_args.hook, label_split, test_split, spec, meta
    )
    write_json(path, record)
    return record


def candidate_hooks(args: BandStudyArgs) -> list[str]:
    """Every block's residual-stream output, the train_sae preset's hook first (it wins ties)."""
    preset = args.stage_args("train_sae", run=args.out, arch=args.sae_archs[0]).hook
    n_layers = read_json(RunLayout(args.out).base / "config.json")["num_hidden_layers"]
    return [preset, *(h for h in (f"blocks.{i}.hook_resid_post" for i in range(n_layers)) if h != preset)]


def hook_scores(job: tuple[BandStudyArgs, str]) -> dict:
    """The hook rule's evidence at one hook: the headline SAE trained there, its groups selected on the labelling
    split, and the registered sequence's groups checked causally on that same split."""
    args, hook = job
    sae_args = args.sae_args(args.sae_archs[0], hook=hook)
    train_sae.main(sae_args)
    label_split, _ = causal_problems(args, sae_args.probe_spec)
    sae, src = (
        load_sae(RunLayout(args.out).sae(sae_args.sae_name), args.run_device),
        open_source(sae_args.source_spec, sae_args.checkpoint_dir),
    )
    return labelling_checks(sae, src, hook, label_split, SEQUENCE_GROUPS, label_spec(args))


def hook_stage(args: BandStudyArgs) -> BandStudyArgs:
    """The study's arguments with the hook its SAEs read. Unless one is given, a rule fixed in December 2026 (before
    any hook but the preset's had been read) chooses it on the labelling split only, before the test split is read
    at that hook: per candidate hook (one job each on the study's executor), ``hook_scores``; the hook whose groups
    pass most, then beat the most random groups on average, then the preset's. hook_choice.json keeps the choice."""
    jobs = hook_jobs(args)
    return chosen_hook(args, jobs, args.run_jobs(hook_scores, jobs))


def hook_jobs(args: BandStudyArgs) -> list[tuple[BandStudyArgs, str]]:
    """The hook rule's ``hook_scores`` jobs, one per candidate hook (their SAEs' config.json sections written first);
    none where the hook is given or already chosen. They read only the base model."""
    if args.hook or RunLayout(args.out).hook_choice.exists():
        return []
    hooks = candidate_hooks(args)
    init_saes(args, [args.sae_args(args.sae_archs[0], hook=h) for h in hooks])
    return [(args, h) for h in hooks]


def chosen_hook(args: BandStudyArgs, jobs: list[tuple[BandStudyArgs, str]], results: list[dict]) -> BandStudyArgs:
    """The arguments at the hook the rule picks from ``hook_jobs``' results (written to hook_choice.json), or at the
    hook given or chosen before."""
    if args.hook:
        return args
    path = RunLayout(args.out).hook_choice
    if jobs:
        scores = {hook: res for (_, hook), res in zip(jobs, results)}
        rank = lambda h: (  # noqa: E731
            sum(c["passed"] for c in scores[h].values()),
            sum(c["percentile"] for c in scores[h].values()),
        )
        write_json(path, {"hook": max(scores, key=rank), "kinds": list(SEQUENCE_GROUPS), "scores": scores})
    return dataclasses.replace(args, hook=read_json(path)["hook"])


def init_saes(args: BandStudyArgs, saes: list) -> None:
    """Each SAE stage's section of config.json, written here, in order, before any worker could race on it."""
    for s in saes:
        init_run(s.run, f"sae/{s.sae_name}", s)
