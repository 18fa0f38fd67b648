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
import functools
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
from experiments.analysis.contrasts import MIN_SEEDS, SEQUENCE_GROUPS
from experiments.analysis.diffing_results import summarise
from experiments.analysis.gain_results import ATTRIBUTED
from experiments.harness import cli, seeds
from experiments.harness.diffing import means_tensors, read_all
from experiments.harness.executors import EXECUTORS, run_jobs
from experiments.harness.gain_attribution import attribute_gain
from experiments.harness.labelling import LabelSpec, label_and_check, labelling_checks, split_problems, summary
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
from probes.matched_gain import MAX_HALVINGS, GainCurve, bisect, first_reaching, with_points
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
    """Hook the SAEs read (empty: chosen among every block's residual stream by the labelling-split rule,
    ``hook_stage``; the train_sae preset's hook wins ties)."""
    matched_key: str = "eval/acc/all/sampled"
    """Eval metric whose gain over the base model is matched."""
    target_gain: float | None = None
    """Matched gain target (None: the largest gain every run of each band that can be matched reaches,
    a band being matchable when all its runs gain at least 3 standard errors)."""
    matched_tol: float | None = None
    """A matched gain hits the target within this (None: one standard error of a gain, from the evals)."""
    activity_problems: int = 32
    """Hard-pool problems whose rollouts every stored checkpoint of each hard-band run is read on
    (deliberation-group activity on successes vs failures, along training)."""
    activity_samples: int = 4
    """Rollouts per problem and checkpoint for that reading."""
    causal_per_k: int = 40
    """Problems per k (inside the pretraining range) in each of the labelling and test splits of the causal stream:
    with 40, a check that reads every k beyond the shortcut's range (deliberation) has 360 problems, enough for an
    interval of about +-0.05 on an effect near -0.7."""
    causal_shortcut_per_k: int = 120
    """The same where direct answers work (k <= shortcut_k), which is all the shortcut check reads (k = 1 holds 363
    chains over Z_11; where the SAE's probe set leaves fewer, the test split keeps its share first)."""
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
        cli.check_common(self)
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
        for name in ("grpo_steps", "workers", "diffing_samples", "diffing_per_k", "diffing_rollouts", "activity_problems", "activity_samples", "causal_per_k", "causal_shortcut_per_k", "n_random", "diff_per_k", "replicate"):
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

    @property
    def band_runs(self) -> dict[str, grpo.GRPOArgs]:
        """Every band x seed run's arguments, by its name (``run_name``)."""
        return {run_name(b, s): self.grpo_args(b, s) for b in BANDS for s in self.seeds}

    def sae_args(self, arch: str, hook: str = "") -> train_sae.TrainSAEArgs:
        """An SAE stage's arguments, at ``hook``, else the study's hook, else the stage preset's."""
        hook = {"hook": hook or self.hook} if hook or self.hook else {}
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
        return StudySettings(self.preset, self.seeds, self.matched_key, self.target_gain, self.matched_tol, loss_agg, self.grpo_steps)


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(seeds=(0, 1, 2, 3), grpo_steps=8, diffing_samples=16_384, diffing_seeds=2, diffing_per_k=2, activity_problems=4, activity_samples=2, causal_per_k=4, causal_shortcut_per_k=4, n_random=3, diff_per_k=3),
    "gpu": dict(seeds=tuple(range(8)), grpo_steps=200, causal_per_k=100, causal_shortcut_per_k=100, n_random=50, diff_per_k=50,
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
    return LabelSpec(n_random=args.n_random, shortcut_k=max(args.pretrain_args.family.shortcut_k, args.pretrain_args.direct_k_max))


def feature_stage(args: BandStudyArgs, arch: str) -> dict:
    """Train the SAE (if needed), label its latents and check the labels causally."""
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
    record = label_and_check(load_sae(sae_dir, args.run_device), src, sae_args.hook, label_split, test_split, spec, meta)
    write_json(path, record)
    return record


def candidate_hooks(args: BandStudyArgs) -> list[str]:
    """Every block's residual-stream output, the train_sae preset's hook first (it wins ties)."""
    preset = args.stage_args("train_sae", run=args.out, arch=args.sae_archs[0]).hook
    n_layers = read_json(RunLayout(args.out).base / "config.json")["num_hidden_layers"]
    return [preset, *(h for h in (f"blocks.{i}.hook_resid_post" for i in range(n_layers)) if h != preset)]


def hook_stage(args: BandStudyArgs) -> BandStudyArgs:
    """The study's arguments with the hook its SAEs read. Unless one is given, a rule fixed in December 2026 (before
    any hook but the preset's had been read) chooses it on the labelling split only, before the test split is read
    at that hook: per candidate hook, the headline SAE trained there, its groups selected on the labelling split,
    and the registered sequence's groups checked causally on that same split; the hook whose groups pass most,
    then beat the most random groups on average, then the preset's. hook_choice.json keeps the choice."""
    if args.hook:
        return args
    path = RunLayout(args.out).hook_choice
    if not path.exists():
        scores = {}
        for hook in tqdm(candidate_hooks(args), desc="hook rule: labelling-split checks per hook"):
            sae_args = args.sae_args(args.sae_archs[0], hook=hook)
            train_sae.main(sae_args)
            label_split, _ = causal_problems(args, sae_args.probe_spec)
            sae, src = load_sae(RunLayout(args.out).sae(sae_args.sae_name), args.run_device), open_source(sae_args.source_spec, sae_args.checkpoint_dir)
            scores[hook] = labelling_checks(sae, src, hook, label_split, SEQUENCE_GROUPS, label_spec(args))
        rank = lambda h: (sum(c["passed"] for c in scores[h].values()), sum(c["percentile"] for c in scores[h].values()))  # noqa: E731
        write_json(path, {"hook": max(scores, key=rank), "kinds": list(SEQUENCE_GROUPS), "scores": scores})
    return dataclasses.replace(args, hook=read_json(path)["hook"])


def matched_points(args: BandStudyArgs) -> dict[str, float]:
    """Each hitting run's matched step (fractional where sub-step matching blended an update)."""
    runs = run_data(args)
    curve_by_run, p = planned(runs, args.settings)
    if not p.noise_ok:
        return {}
    points = matching(curve_by_run, runs.extra, p).points
    return {name: pt.step for name, pt in points.items() if pt.within_tol}


def diff_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """Read every checkpoint in every SAE basis; latent means also go to latent_means.safetensors.

    Activation caches persist under acts/, so a rerun only re-encodes them; a parallel executor makes
    the missing ones first, one job per checkpoint."""
    layout = RunLayout(args.out)
    blends = [grpo.at_step(args.band_runs[n], step) for n, step in matched_points(args).items() if not float(step).is_integer()]
    ckpts = [*layout.checkpoints(), *blends]
    if args.executor != "local":  # the caches are independent jobs; reading them after only encodes
        run_jobs(cache_activations, [(args.diff_source, c) for c in ckpts], args.executor, args.workers, args.gpus_per_job)
    saes = {name: load_sae(layout.sae(name), args.run_device) for name in features}
    readings = read_all(args.diff_source, ckpts, saes)
    with atomic_file(layout.latent_means) as tmp:
        save_file(means_tensors(readings), str(tmp))
    return readings


def run_data(args: BandStudyArgs) -> RunData:
    """The band runs' metrics, their stored checkpoints and the evaluations made while matching."""
    layout = RunLayout(args.out)
    names = [run_name(b, s) for b in BANDS for s in args.seeds]
    metrics = {n: read_jsonl(layout.root / n / METRICS) for n in names}
    measured = {n: read_jsonl(layout.root / n / MATCH) for n in names}
    return RunData(metrics, {n: set(checkpoints(layout.root / n)) for n in names}, measured, args.matched_key)  # curves use evaluated ones


@dataclasses.dataclass(frozen=True)
class MatchJob:
    """Pin one run's first crossing of the target (``match_run``)."""

    run: grpo.GRPOArgs
    target: float
    tol: float
    key: str
    """The matched metric."""
    curve: GainCurve
    """The run's gain at its stored evaluated checkpoints and at the steps measured before."""
    base_acc: float


def match_run(job: MatchJob) -> None:
    """Bisect one run's crossing: whole steps are regenerated by replay, fractions of one update by blending its
    two ends (``grpo.blended``), each evaluated on the run's own draws (no greedy pass: matching reads the sampled
    numbers) and appended to its match.jsonl at once, so a killed run keeps what it measured."""
    g = job.run
    inputs, base = grpo.RunInputs.read(g), load_hf(RunLayout(g.run).base, g.device)
    tokenizer = load_tokenizer(RunLayout(g.run).base)

    def measure(step: float) -> float:
        whole = float(step).is_integer()
        model = load_hf(grpo.replay(g, int(step)), g.device) if whole else grpo.blended(g, step)
        row = {"step": int(step) if whole else step, **grpo.evaluate(model, tokenizer, g, inputs, base, greedy=False)}
        append_jsonl(g.out / MATCH, [row])
        return row[job.key] - job.base_acc

    bisect(job.curve, job.target, job.tol, measure, max_halvings=MAX_HALVINGS if g.inner_updates == 1 else 0)


def match_stage(args: BandStudyArgs) -> None:
    """Pin every run's first crossing of the matched target to within the tolerance (``match_run``), one job per
    run on the study's executor (a rerun reuses what match.jsonl holds)."""
    runs = run_data(args)
    curve_by_run, p = planned(runs, args.settings)
    if not p.noise_ok:
        return
    jobs = [MatchJob(g, p.target, p.tol, args.matched_key, with_points(curve_by_run[n], runs.extra[n]), runs.metrics[n][0][args.matched_key])
            for n, g in args.band_runs.items() if not (g.out / INGESTED).is_file()]  # ingested: matched on its evaluated checkpoints only
    jobs = [j for j in jobs if not first_reaching(j.curve, p.target, p.tol).within_tol and first_reaching(j.curve, p.target, p.tol).reached]
    run_jobs(match_run, jobs, args.executor, args.workers, args.gpus_per_job)


@dataclasses.dataclass(frozen=True)
class AttributionJob:
    """Attribute one hitting run's matched gain to the headline SAE's groups (``attribute_run``)."""

    run: grpo.GRPOArgs
    step: float
    sae_dir: Path
    hook: str
    groups: dict[str, list[int]]
    randoms: dict[str, list[list[int]]]
    acc_base: float
    matched_acc: float
    made: dict
    """What the record is made with; a record that says otherwise is redone."""
    device: str


def attribute_run(job: AttributionJob) -> dict:
    """The run's gain attribution record for the SAE, made now (and written to gain_attribution.json) unless the
    file holds one made the same way."""
    g, name = job.run, job.sae_dir.name
    path = g.out / GAIN_ATTRIBUTION
    record = read_json(path) if path.exists() else {}
    if {k: record.get(name, {}).get(k) for k in job.made} != job.made:
        ckpt, inputs = grpo.at_step(g, job.step), grpo.RunInputs.read(g)
        score = functools.partial(grpo.sampled_correct, tokenizer=load_tokenizer(ckpt), args=g, inputs=inputs, n_samples=g.eval_samples)
        base = load_bridge(RunLayout(g.run).base, job.device)
        res = attribute_gain(score, len(inputs.eval_set) * g.eval_samples, job.acc_base, job.matched_acc, load_bridge(ckpt, job.device),
                             base, load_sae(job.sae_dir, job.device), job.hook, job.groups, job.randoms)  # fmt: skip
        record[name] = {**job.made, **dataclasses.asdict(res)}
        write_json(path, record)
    return record[name]


def gain_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """At every hitting run's matched point, patch each group of the headline SAE back to base values, and each of
    its matched random groups (``experiments.harness.gain_attribution``); every condition samples the run's own
    eval draws, so the shares divide by the matched gain itself. One job per run on the study's executor; each
    run's gain_attribution.json keeps the result, so a rerun reuses it. Returns the records per run (none without
    a target)."""
    points = matched_points(args)
    if not points:
        return {}
    layout, sae_name, runs = RunLayout(args.out), args.sae_args(args.sae_archs[0]).sae_name, run_data(args)
    feats = features[sae_name]
    groups = {g: feats["groups"][g] for g in ATTRIBUTED}
    randoms = {g: c["random_groups"] for g, c in feats["causal"]["checks"].items()}
    jobs = {n: AttributionJob(g, points[n], layout.sae(sae_name), feats["meta"]["hook"], groups, randoms, runs.metrics[n][0][args.matched_key],
                              runs.row_at(n, points[n])[args.matched_key],
                              {"step": points[n], "n_samples": g.eval_samples, "groups": groups, "random_groups": randoms},
                              args.run_device)
            for n, g in args.band_runs.items() if n in points}  # fmt: skip
    return dict(zip(jobs, run_jobs(attribute_run, list(jobs.values()), args.executor, args.workers, args.gpus_per_job)))


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


def claim_checkpoints(args: BandStudyArgs) -> dict[str, tuple[str, dict[str, float]]]:
    """Per band: "matched" with the matched points of its first ``diffing_seeds`` hitting runs where at least
    MIN_SEEDS runs hit the target (a band the contrasts can use), else "final" with the last step of its first
    ``diffing_seeds`` runs (equal budget, unmatched)."""
    points = matched_points(args)
    out = {}
    for band in BANDS:
        names = [run_name(band, s) for s in args.seeds]
        hits = [n for n in names if n in points]
        if len(hits) >= MIN_SEEDS:
            out[band] = ("matched", {n: points[n] for n in hits[: args.diffing_seeds or None]})
        else:
            out[band] = ("final", dict.fromkeys(names[: args.diffing_seeds or None], args.grpo_steps))
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
    gargs = args.band_runs
    pairs = {b: [Pair(n, base, open_source(args.diffing_source, grpo.at_step(gargs[n], step))) for n, step in claims[b][1].items()] for b in BANDS}
    sae_name = args.sae_args(args.sae_archs[0]).sae_name
    label_split, _ = causal_problems(args, args.sae_args(args.sae_archs[0]).probe_spec)
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
    path = RunLayout(args.out).hook_choice
    hook_choice = read_json(path) if path.exists() else {}
    return analyse(args.settings, run_data(args), features, labels, readings, attributions, activity, model_diffing, hook_choice)


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
    layout = RunLayout(args.out)
    stage = cli.StageClock("band_study", layout.profile)

    stage("pretrain, bands, GRPO per band x seed")
    train_stages(args)
    stage("matched gain: pin each run's crossing of the target by replay")
    match_stage(args)
    if not args.hook:
        stage("hook rule: the headline SAE at every block, its sequence groups checked on the labelling split")
    args = hook_stage(args)
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
    stage("results")
    analysis = results(args, features, readings, attributions, activity, diffing)
    write_json(layout.diff, diff_record(analysis))
    stage.finish()
    write_report(args.out, analysis)  # its profile, not results.json, holds wall times: they vary
    res = analysis.result.to_json()
    write_json(layout.results, res)
    print(f"Verdict ({analysis.result.verdict_class}): {analysis.result.verdict}\nReport, figures and every number behind it: {layout.report}")
    return res


if __name__ == "__main__":
    cli.run(main, BandStudyArgs, PRESETS)
