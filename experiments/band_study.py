"""The band study end to end: ``python -m experiments.band_study --preset default --out runs/NAME``.

pretrain -> bands -> GRPO per band x seed -> matched gain (replay) -> shared SAEs (BatchTopK and
T-SAE) on the base model -> feature groups with causal checks -> gain attribution at the matched
checkpoints -> deliberation activity on hard-band rollouts (successes vs failures, along training)
-> every checkpoint diffed in each SAE basis -> results.json, diff.json and report.md
with figures. Every stage writes atomically and is skipped when its artifact exists, so rerunning
the same command resumes where it stopped.

Any stage's knobs can be set for the whole study from a config file with one section per
stage (``--config study.json``: ``{"pretrain": {"p": 13}, "grpo": {"lr": 5e-5}, "seeds": [0, 1]}``).
"""

# No `from __future__ import annotations`: a spawned pool worker re-runs this module as __mp_main__,
# where string ClassVar annotations read as dataclass fields.
import dataclasses
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from safetensors.torch import save_file
from tqdm.auto import tqdm

from experiments import bands, grpo, pretrain, train_sae
from experiments.analysis.band_report import write_report
from experiments.analysis.band_results import (
    BandAnalysis,
    RunData,
    StudySettings,
    analyse,
    diff_record,
    matching,
    planned,
)
from experiments.analysis.diffing_results import summarise
from experiments.analysis.gain_results import ATTRIBUTED
from experiments.harness import cli, seeds
from experiments.harness.diffing import means_tensors, read_all
from experiments.harness.executors import EXECUTORS, run_jobs
from experiments.harness.gain_attribution import attribute_gain
from experiments.harness.labelling import LabelSpec, label_and_check, split_problems, summary
from experiments.harness.model_diffing import DiffingSpec, Pair, band_record
from experiments.harness.probe_sets import ProbeSetSpec, probe_problems
from experiments.harness.rollout_activity import rollout_activity
from experiments.harness.rundir import append_jsonl, atomic_file, check_writable, init_run, write_json
from experiments.harness.sources import SourceSpec, cache_activations, open_source
from experiments.harness.tasks import TASKS, Problem, run_task, stage_preset
from probes.bands import BANDS
from probes.layout import (
    FEATURES,
    GAIN_ATTRIBUTION,
    INGESTED,
    MATCH,
    METRICS,
    MODEL_DIFFING,
    ROLLOUT_ACTIVITY,
    RunLayout,
    checkpoints,
    read_json,
    read_jsonl,
    run_name,
)
from probes.matched_gain import bisect, with_points
from probes.models import load_bridge, load_hf, load_tokenizer
from probes.saes.train import SAESpec, load_sae

STAGES: dict[str, tuple[type, dict]] = {
    "pretrain": (pretrain.PretrainArgs, pretrain.PRESETS),
    "bands": (bands.BandArgs, bands.PRESETS),
    "grpo": (grpo.GRPOArgs, grpo.PRESETS),
    "train_sae": (train_sae.TrainSAEArgs, train_sae.PRESETS),
}
"""The stages the study runs, with their argument classes and presets (config-file sections)."""

SET_BY_STUDY = {"pretrain": ("out", "task"), "bands": ("run",), "grpo": ("run", "band", "seed", "steps"), "train_sae": ("run", "arch")}
"""Stage fields the study sets itself (a config section may not)."""


@dataclasses.dataclass(frozen=True)
class BandStudyArgs:
    """Run the whole band study and write results.json and report.md."""

    SECTIONS: ClassVar[dict[str, type]] = {name: cls for name, (cls, _) in STAGES.items()}
    HOW_TO_RUN: ClassVar[tuple[str, ...]] = ("executor", "workers", "gpus_per_job")  # how it runs, not what: not recorded, free on resume

    out: Path = Path("runs/default")
    """Run directory."""
    preset: str = "default"
    """smoke (< 60 s, tests), default (the real study on 2 CPU cores), gpu."""
    task: str = "arith"
    """Task family: arith (chained modular arithmetic) or maze (A* search traces); picks each stage's preset
    for that family (its parameters go in the pretrain section of --config)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """GRPO seeds per band: with 5, an exact permutation test of two bands can reach p = 0.008; with 3, never below 0.1."""
    grpo_steps: int = 40
    """GRPO updates per run (the same budget for every band)."""
    sae_archs: tuple[str, ...] = ("batchtopk", "temporal")
    """Shared SAE bases, reported side by side; the first is the headline."""
    hook: str = ""
    """Hook the SAEs read (empty: the train_sae preset's default)."""
    matched_key: str = "eval/acc/all/sampled"
    """Eval metric whose gain over the base model is matched."""
    target_gain: float | None = None
    """Matched gain target (None: the largest gain every run of each band that can be matched reaches,
    a band being matchable when all its runs gain at least 3 standard errors)."""
    matched_tol: float | None = None
    """A matched gain hits the target within this (None: one standard error of a gain, from the evals)."""
    attribution_samples: int = 4
    """Completions per eval problem for each patched accuracy in gain attribution (the same draws in every
    condition; fewer than the eval's 8 to keep the default study's time)."""
    activity_problems: int = 32
    """Hard-pool problems whose rollouts every stored checkpoint of each hard-band run is read on
    (deliberation-group activity on successes vs failures, along training)."""
    activity_samples: int = 4
    """Rollouts per problem and checkpoint for that reading."""
    causal_per_k: int = 20
    """Problems per k (inside the pretraining range) in each of the labelling and test splits of the causal stream."""
    n_random: int = 20
    """Random latent groups (matched in firing rate and mass) per causal check."""
    diff_per_k: int = 10
    """Probe problems per k for checkpoint diffing."""
    diffing_samples: int = 300_000
    """Rows each band's change dictionaries (a crosscoder and a difference SAE over its seeds' (base,
    claim checkpoint) pairs, the headline SAE's width and k) are trained on."""
    diffing_seeds: int = 0
    """How many seeds (the first ones) the change dictionaries pair with the base model (0: all)."""
    diffing_per_k: int = 16
    """Held-out problems per k (the first ones; a third of the eval set by default, for time) on which the
    change dictionaries' spliced accuracies and causal checks are measured."""
    diffing_rollouts: int = 1
    """Rollouts per such problem."""
    replicate: int = 1
    """Run the whole study this many times, with pretraining seeds 0..N-1 (in <out>/pretrain-seed<i>/), and
    count how often each verdict class comes out (<out>/replicates.json): does the headline depend on one base model?"""
    device: str = ""
    """Torch device for every stage (cpu, cuda, cuda:1 ...; empty: each stage's preset or config section)."""
    executor: str = "local"
    """Where the band x seed GRPO runs go: local (one after another), pool (worker processes, one GPU each
    round robin where there are GPUs) or ray (Ray tasks, on the cluster in RAY_ADDRESS or a local instance);
    the runs write the same bytes on each."""
    workers: int = 2
    """Jobs at once: the pool's worker processes, or a local Ray instance's room (a cluster has its own)."""
    gpus_per_job: float = 1.0
    """Ray: the share of a GPU each job asks for where the cluster has GPUs (0.25: four tiny-model runs per GPU)."""
    stages: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """Per stage (pretrain, bands, grpo, train_sae): field values over the stage's preset (config-file sections)."""

    def __post_init__(self) -> None:
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: need distinct seeds, got {self.seeds}")
        if not self.sae_archs or set(self.sae_archs) - {"batchtopk", "matryoshka", "temporal"}:
            raise ValueError(f"sae_archs: must be from batchtopk, matryoshka, temporal; got {self.sae_archs}")
        if self.task not in TASKS:
            raise ValueError(f"task: must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor: must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.diffing_seeds < 0:
            raise ValueError(f"diffing_seeds: must be >= 0, got {self.diffing_seeds}")
        if self.gpus_per_job <= 0 or (self.gpus_per_job > 1 and self.gpus_per_job != int(self.gpus_per_job)):
            raise ValueError(f"gpus_per_job: must be a fraction in (0, 1] or a whole number, got {self.gpus_per_job}")
        for name in ("grpo_steps", "workers", "attribution_samples", "diffing_samples", "diffing_per_k", "diffing_rollouts", "activity_problems", "activity_samples", "causal_per_k", "n_random", "diff_per_k", "replicate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for stage, values in self.stages.items():
            if stage not in STAGES:
                raise ValueError(f"stages: unknown stage {stage!r} (known: {', '.join(STAGES)})")
            fixed = sorted(set(values) & set(SET_BY_STUDY[stage]))
            if fixed:
                raise ValueError(f"{stage}.{fixed[0]}: set by the study itself, not by a stage section")
        self.pretrain_args, self.bands_args, self.sae_args(self.sae_archs[0])  # noqa: B018 -- validate sections now

    def stage_args(self, stage: str, **fixed: Any):
        """A stage's arguments: its preset, then the config section, then what the study fixes."""
        cls, presets = STAGES[stage]
        values = cli.as_field_values(self.stages.get(stage, {}))
        device = {"device": self.device} if self.device else {}
        preset = stage_preset(self.task, self.preset)
        return cls(**{**presets[preset], **values, **device, "preset": preset, **fixed})

    @property
    def run_device(self) -> str:
        """Where the study's own readers (features, gain attribution, activity, model diffing) run: the SAE stage's device."""
        return self.sae_args(self.sae_archs[0]).device

    @property
    def pretrain_args(self) -> pretrain.PretrainArgs:
        return self.stage_args("pretrain", out=self.out, task=self.task)

    @property
    def bands_args(self) -> bands.BandArgs:
        return self.stage_args("bands", run=self.out)

    def grpo_args(self, band: str, seed: int) -> grpo.GRPOArgs:
        return self.stage_args("grpo", run=self.out, band=band, seed=seed, steps=self.grpo_steps)

    def sae_args(self, arch: str) -> train_sae.TrainSAEArgs:
        hook = {"hook": self.hook} if self.hook else {}
        return self.stage_args("train_sae", run=self.out, arch=arch, **hook)

    @property
    def diff_source(self) -> SourceSpec:
        """The diffing probe set: fixed problems of their own stream, each checkpoint's own samples."""
        sae = self.sae_args(self.sae_archs[0])
        probe = ProbeSetSpec("diff_probe", self.bands_args.seed, sae.k_min, sae.k_max, self.diff_per_k, n_samples=1)
        return SourceSpec(self.out, sae.hook, probe, sae.collect_batch_size, sae.device)

    @property
    def diffing_source(self) -> SourceSpec:
        """The change dictionaries' tokens: the SAE probe set's problems, canonical completions only
        (the tokens every checkpoint reads the same way)."""
        sae = self.sae_args(self.sae_archs[0])
        return SourceSpec(self.out, sae.hook, dataclasses.replace(sae.probe_spec, n_samples=0), sae.collect_batch_size, sae.device)

    @property
    def diffing_spec(self) -> DiffingSpec:
        sae = self.sae_args(self.sae_archs[0])
        shape = SAESpec(d_sae=sae.d_sae, top_k=sae.top_k, threshold_lr=sae.threshold_lr)
        return DiffingSpec(shape, dataclasses.replace(sae.train_spec, n_samples=self.diffing_samples))

    @property
    def settings(self) -> StudySettings:
        loss_agg = self.grpo_args("easy", self.seeds[0]).loss_agg
        return StudySettings(self.preset, self.seeds, self.matched_key, self.target_gain, self.matched_tol, loss_agg)


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(grpo_steps=4, attribution_samples=1, diffing_samples=16_384, diffing_seeds=2, diffing_per_k=2, activity_problems=4, activity_samples=2, causal_per_k=4, n_random=3, diff_per_k=3),
    "gpu": dict(seeds=tuple(range(8)), grpo_steps=200, attribution_samples=16, causal_per_k=100, n_random=50, diff_per_k=50,
                diffing_samples=2_000_000, diffing_per_k=1_000),
}

def train_stages(args: BandStudyArgs) -> None:
    """Base model, bands, and one GRPO run per band x seed (each resumable), on the chosen executor."""
    pretrain.main(args.pretrain_args)
    bands.main(args.bands_args)
    jobs = [args.grpo_args(band, seed) for seed in args.seeds for band in BANDS]
    for g in jobs:  # config.json is written here, in order, before any worker could race on it
        init_run(g.run, g.stage, g)
    run_jobs(grpo.main, jobs, args.executor, args.workers, args.gpus_per_job)


def causal_problems(layout: RunLayout, per_k: int, seed: int, sae_probe: ProbeSetSpec) -> tuple[list[Problem], list[Problem]]:
    """(labelling split, test split) of the causal stream, k inside the pretraining range (where both
    behaviours exist), without the chains the SAEs were trained on."""
    task, pre = run_task(layout.root), read_json(layout.config)["stages"]["pretrain"]
    seen = [pr for pr, _ in probe_problems(sae_probe, task)]
    return split_problems(seed, task.knobs(pre["k_train_max"]), per_k, task, seen)


def feature_stage(args: BandStudyArgs, arch: str) -> dict:
    """Train the SAE (if needed), label its latents and check the labels causally."""
    sae_args = args.sae_args(arch)
    train_sae.main(sae_args)
    sae_dir = RunLayout(args.out).sae(sae_args.sae_name)
    path = sae_dir / FEATURES
    spec = LabelSpec(n_random=args.n_random, shortcut_k=max(args.pretrain_args.family.shortcut_k, args.pretrain_args.direct_k_max))
    cached = read_json(path) if path.exists() else {}
    if cached.get("spec") == dataclasses.asdict(spec):
        return cached  # made with this spec (an older format or another spec is redone)
    src = open_source(sae_args.source_spec, sae_args.checkpoint_dir)
    meta = {"sae": sae_args.sae_name, "hook": sae_args.hook, "checkpoint": str(sae_args.checkpoint_dir)}
    label_split, test_split = causal_problems(RunLayout(args.out), args.causal_per_k, args.bands_args.seed, sae_args.probe_spec)
    record = label_and_check(load_sae(sae_dir, args.run_device), src, sae_args.hook, label_split, test_split, spec, meta)
    write_json(path, record)
    return record


def diff_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """Read every checkpoint in every SAE basis; latent means also go to latent_means.safetensors.

    Activation caches persist under acts/, so a rerun only re-encodes them; a parallel executor makes
    the missing ones first, one job per checkpoint."""
    layout = RunLayout(args.out)
    if args.executor != "local":  # the caches are independent jobs; reading them after only encodes
        run_jobs(cache_activations, [(args.diff_source, c) for c in layout.checkpoints()], args.executor, args.workers, args.gpus_per_job)
    saes = {name: load_sae(layout.sae(name), args.run_device) for name in features}
    readings = read_all(args.diff_source, layout.checkpoints(), saes)
    with atomic_file(layout.latent_means) as tmp:
        save_file(means_tensors(readings), str(tmp))
    return readings


def run_data(args: BandStudyArgs) -> RunData:
    """The band runs' metrics, their stored checkpoints and the gains measured at replayed steps."""
    layout, key = RunLayout(args.out), args.matched_key
    names = [run_name(b, s) for b in BANDS for s in args.seeds]
    metrics = {n: read_jsonl(layout.root / n / METRICS) for n in names}
    extra = {n: {r["step"]: r[key] - metrics[n][0][key] for r in read_jsonl(layout.root / n / MATCH)} for n in names}
    return RunData(metrics, {n: set(checkpoints(layout.root / n)) for n in names}, extra)  # curves use evaluated ones


def match_stage(args: BandStudyArgs) -> None:
    """Pin every run's first crossing of the matched target to one step (or to within the tolerance):
    steps between stored checkpoints are regenerated by replay and evaluated, and the evaluations
    appended to the run's match.jsonl (a rerun reuses them)."""
    runs = run_data(args)
    curve_by_run, p = planned(runs, args.settings)
    if not p.noise_ok:
        return
    for band, seed in ((b, s) for b in BANDS for s in args.seeds):
        gargs, name = args.grpo_args(band, seed), run_name(band, seed)
        if (gargs.out / INGESTED).is_file():
            continue  # trained elsewhere: matched on its evaluated checkpoints, never replayed
        inputs, base_acc = grpo.RunInputs.read(gargs), runs.metrics[name][0][args.matched_key]

        def measure(step: int, gargs=gargs, inputs=inputs, base_acc=base_acc) -> float:
            ckpt = grpo.replay(gargs, step)
            row = {"step": step, **grpo.evaluate(load_hf(ckpt, gargs.device), load_tokenizer(ckpt), gargs, inputs)}
            append_jsonl(gargs.out / MATCH, [row])
            return row[args.matched_key] - base_acc

        bisect(with_points(curve_by_run[name], runs.extra[name]), p.target, p.tol, measure)


def gain_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """At every hitting run's matched checkpoint, patch each group of the headline SAE back to base
    values (and the reverse); each run's gain_attribution.json keeps the result, so a rerun reuses it.
    Returns the records per run (none without a target)."""
    runs = run_data(args)
    curve_by_run, p = planned(runs, args.settings)
    if not p.noise_ok:
        return {}
    points = matching(curve_by_run, runs.extra, p).points
    layout, sae_name = RunLayout(args.out), args.sae_args(args.sae_archs[0]).sae_name
    dev = args.run_device
    feats, sae, base = features[sae_name], load_sae(layout.sae(sae_name), dev), load_bridge(layout.base, dev)
    groups = {g: feats["groups"][g] for g in ATTRIBUTED}
    randoms = {g: c["random_groups"][0] for g, c in feats["causal"]["checks"].items()}
    out = {}
    hitting = [(b, s) for b in BANDS for s in args.seeds if points[run_name(b, s)].within_tol]
    for band, seed in tqdm(hitting, desc="gain attribution"):
        gargs, point = args.grpo_args(band, seed), points[run_name(band, seed)]
        path = gargs.out / GAIN_ATTRIBUTION
        record = read_json(path) if path.exists() else {}
        made = {"step": point.step, "n_samples": args.attribution_samples, "groups": list(ATTRIBUTED)}
        if {k: record.get(sae_name, {}).get(k) for k in made} != made:
            ckpt, inputs = grpo.replay(gargs, point.step), grpo.RunInputs.read(gargs)
            tok, n = load_tokenizer(ckpt), args.attribution_samples
            accuracy = lambda model, gargs=gargs, inputs=inputs, tok=tok, n=n: grpo.sampled_accuracy(model, tok, gargs, inputs, n)  # noqa: E731
            res = attribute_gain(accuracy, load_bridge(ckpt, dev), base, sae, feats["meta"]["hook"], groups, randoms)
            record[sae_name] = {**made, **dataclasses.asdict(res)}
            write_json(path, record)
        out[run_name(band, seed)] = record[sae_name]
    return out


def activity_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """At the base model and every stored checkpoint of each hard-band run, the headline SAE's
    deliberation-group activity on the run's rollouts of fixed hard-pool problems, with their success;
    each run's rollout_activity.json keeps the steps done, so a rerun resumes. Returns the records per run."""
    layout, sae_name = RunLayout(args.out), args.sae_args(args.sae_archs[0]).sae_name
    feats = features[sae_name]
    group, hook = feats["groups"]["deliberation"], feats["meta"]["hook"]
    if not group:
        return {}
    sae = load_sae(layout.sae(sae_name), args.run_device)
    spec = {"sae": sae_name, "group": group, "problems": args.activity_problems, "samples": args.activity_samples}
    out = {}
    for seed in tqdm(args.seeds, desc="hard-band rollouts: deliberation activity"):
        gargs = args.grpo_args("hard", seed)
        path = gargs.out / ROLLOUT_ACTIVITY
        record = read_json(path) if path.exists() else {}
        record = record if record.get("spec") == spec else {"spec": spec, "steps": {}}
        problems = grpo.RunInputs.read(gargs).pool[: args.activity_problems]
        stored = {s: c for s, c in checkpoints(gargs.out).items() if s % gargs.checkpoint_every == 0}  # not replays
        sampling = seeds.rollout_activity(seed)  # the same draws at every checkpoint of the run
        for step, ckpt in {0: layout.base, **stored}.items():
            if str(step) not in record["steps"]:
                reading = rollout_activity(load_bridge(ckpt, args.run_device), load_tokenizer(ckpt), sae, hook, group, problems, args.activity_samples, sampling)
                record["steps"][str(step)] = reading
                write_json(path, record)
        out[run_name("hard", seed)] = record["steps"]
    return out


def claim_checkpoints(args: BandStudyArgs) -> dict[str, tuple[str, dict[str, int]]]:
    """Per band, for its first ``diffing_seeds`` runs: "matched" with each run's matched step where every
    run of the band hit the target, else "final" with the last step (equal budget, unmatched)."""
    runs = run_data(args)
    curve_by_run, p = planned(runs, args.settings)
    points = matching(curve_by_run, runs.extra, p).points if p.noise_ok else {}
    out = {}
    for band in BANDS:
        names = [run_name(band, s) for s in args.seeds]
        hit_all = all(n in points and points[n].within_tol for n in names)
        chosen = names[: args.diffing_seeds or None]
        out[band] = ("matched", {n: points[n].step for n in chosen}) if hit_all else ("final", dict.fromkeys(chosen, args.grpo_steps))
    return out


def diffing_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """Per band: a crosscoder and a difference SAE over its seeds' (base, claim checkpoint) pairs, read,
    labelled and causally checked (``experiments.harness.model_diffing``); diffing/<band>/model_diffing.json
    keeps each band, so a rerun reuses it. Returns the records per band."""
    layout, spec, hook = RunLayout(args.out), args.diffing_spec, args.diffing_source.hook
    claims = claim_checkpoints(args)
    held_out = grpo.RunInputs.read(args.grpo_args(BANDS[0], args.seeds[0])).eval_per_k(args.diffing_per_k).eval_set
    n_rollouts = len(held_out) * args.diffing_rollouts
    made = lambda band: json.loads(json.dumps({"claim": claims[band][0], "steps": claims[band][1],  # noqa: E731
                                               "spec": dataclasses.asdict(spec), "n_rollouts": n_rollouts}))  # fmt: skip
    path = lambda band: layout.diffing(band) / MODEL_DIFFING  # noqa: E731
    records = {b: read_json(path(b)) for b in BANDS if path(b).exists()}
    todo = [b for b in BANDS if {k: records.get(b, {}).get(k) for k in made(b)} != made(b)]
    if not todo:
        return records
    base = open_source(args.diffing_source, layout.base)
    gargs = {run_name(b, s): args.grpo_args(b, s) for b in BANDS for s in args.seeds}
    pairs = {b: [Pair(n, base, open_source(args.diffing_source, grpo.replay(gargs[n], step))) for n, step in claims[b][1].items()] for b in BANDS}
    sae_name = args.sae_args(args.sae_archs[0]).sae_name
    label_split, _ = causal_problems(layout, args.causal_per_k, args.bands_args.seed, args.sae_args(args.sae_archs[0]).probe_spec)
    shortcut_k = features[sae_name]["spec"]["shortcut_k"]

    def accuracy_of(pair: Pair):
        g, inputs, tok = gargs[pair.run], grpo.RunInputs.read(gargs[pair.run]), pair.tuned.tokenizer
        inputs = inputs.eval_per_k(args.diffing_per_k)
        return lambda model: grpo.sampled_accuracy(model, tok, g, inputs, args.diffing_rollouts)

    moved = [b for b in BANDS if any(p.changed for p in pairs[b])]
    for band in todo:
        if band not in moved:  # nothing to diff: every claim checkpoint reads like the base model
            write_json(path(band), {**made(band), "unchanged": True})
            records[band] = read_json(path(band))
            continue
        others = {b: pairs[b] for b in moved if b != band}
        record = band_record(pairs[band], others, spec, hook, label_split, shortcut_k, accuracy_of, load_sae(layout.sae(sae_name), args.run_device), layout.diffing(band))
        caches = {"base": layout.name_of(base.cache.path), **{p.run: layout.name_of(p.tuned.cache.path) for p in pairs[band]}}
        write_json(path(band), {**made(band), **record, "caches": caches})
        records[band] = read_json(path(band))
    return records


def results(
    args: BandStudyArgs, features: dict[str, dict], readings: dict[str, dict], attributions: dict[str, dict], activity: dict[str, dict],
    diffing: dict[str, dict],
) -> BandAnalysis:
    labels = {name: summary(feats) for name, feats in features.items()}
    head = args.sae_args(args.sae_archs[0]).sae_name
    model_diffing = summarise(diffing, readings, head, features[head]["groups"])
    return analyse(args.settings, run_data(args), features, labels, readings, attributions, activity, model_diffing)


def replicate(args: BandStudyArgs) -> dict:
    """The study once per pretraining seed; returns (and writes) how often each verdict class came out."""
    runs = []
    for seed in range(args.replicate):
        pre = {**args.stages.get("pretrain", {}), "seed": seed}
        sub = dataclasses.replace(args, out=args.out / f"pretrain-seed{seed}", replicate=1, stages={**args.stages, "pretrain": pre})
        res = main(sub)
        runs.append({"pretrain_seed": seed, "verdict_class": res["verdict_class"], "verdict": res["verdict"]})
    classes = Counter(r["verdict_class"] for r in runs)
    summary = {"replicates": args.replicate, "verdict_classes": dict(classes.most_common()), "runs": runs}
    write_json(RunLayout(args.out).replicates, summary)
    for cls, n in classes.most_common():
        print(f"{cls}: {n}/{args.replicate} pretraining seeds")
    return summary


def main(args: BandStudyArgs) -> dict:
    """Run or resume every stage; returns results.json's content (with --replicate, the verdict-class counts)."""
    check_writable(args.out)
    init_run(args.out, "band_study", args)
    if args.replicate > 1:
        return replicate(args)
    stage = cli.StageClock("band_study")

    stage("pretrain, bands, GRPO per band x seed")
    train_stages(args)
    stage("matched gain: pin each run's crossing of the target by replay")
    match_stage(args)
    features = {}
    for arch in args.sae_archs:
        stage(f"SAE {arch}: train, label latents, causal checks")
        features[args.sae_args(arch).sae_name] = feature_stage(args, arch)
    stage("gain attribution: patch each group back to base values at the matched checkpoints")
    attributions = gain_stage(args, features)
    stage("deliberation activity on hard-band rollouts, successes vs failures, along training")
    activity = activity_stage(args, features)
    stage("model diffing: crosscoder and difference SAE per band, labelled and causally checked")
    diffing = diffing_stage(args, features)
    stage("diff every checkpoint in each SAE basis")
    readings = diff_stage(args, features)
    stage("results and report")
    analysis = results(args, features, readings, attributions, activity, diffing)
    layout = RunLayout(args.out)
    write_json(layout.diff, diff_record(analysis))
    write_report(args.out, analysis, wall_s=stage.seconds)  # wall time is not in results.json: it varies
    res = analysis.result.to_json()
    write_json(layout.results, res)
    print(analysis.result.verdict)
    return res


if __name__ == "__main__":
    cli.run(main, BandStudyArgs, PRESETS)
