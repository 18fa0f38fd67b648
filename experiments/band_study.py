"""The band study end to end: ``python -m experiments.band_study --preset default --out runs/NAME``.

pretrain -> bands -> GRPO per band x seed -> matched gain (replay) -> shared SAEs (BatchTopK and
T-SAE) on the base model -> feature groups with causal checks -> gain attribution at the matched
checkpoints -> deliberation activity on hard-band rollouts (successes vs failures, along training)
-> every checkpoint diffed in each SAE basis -> results.json, diff.json and report.md
with figures. Every stage writes atomically and is skipped when its artifact exists, so rerunning
the same command resumes where it stopped. Steps that read only the base model (the hook rule, the
SAEs) run beside GRPO and matching on the same workers, so no worker waits on a stage's last job.

The steps after training live in ``experiments/band_steps/`` (matching, SAE groups, attribution, diffing).

Any stage's knobs can be set for the whole study from a config file with one section per
stage (``--config study.json``: ``{"pretrain": {"p": 13}, "grpo": {"lr": 5e-5}, "seeds": [0, 1]}``).
"""

# No `from __future__ import annotations`: a spawned pool worker re-runs this module as __mp_main__,
# where string ClassVar annotations read as dataclass fields.
import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from experiments import bands, grpo, pretrain, train_sae
from experiments.analysis.band_report import write_report
from experiments.analysis.band_results import BandAnalysis, StudySettings, analyse, diff_record
from experiments.analysis.model_diffing_results import summarise
from experiments.band_steps import sae_groups
from experiments.band_steps.attribution import activity_stage, gain_stage
from experiments.band_steps.diffing import diff_stage, diffing_stage
from experiments.band_steps.matching import match_jobs, match_run, run_data
from experiments.harness import cli
from experiments.harness.executors import (
    EXECUTORS,
    kept_pools,
    run_jobs,
    run_together,
    torch_threads,
    usable_cpus,
    warm_pool,
)
from experiments.harness.reading.labelling import summary
from experiments.harness.reading.model_diffing import DiffingSpec
from experiments.harness.reading.probe_sets import ProbeSetSpec
from experiments.harness.reading.sources import SourceSpec
from experiments.harness.rundir import check_writable, init_run, write_json
from experiments.harness.tasks.registry import TASKS, stage_preset
from probes.bands import BANDS
from probes.layout import RunDirError, RunLayout, read_json, run_name
from probes.saes.train import SAESpec

STAGES: dict[str, tuple[type, dict]] = {
    "pretrain": (pretrain.PretrainArgs, pretrain.PRESETS),
    "bands": (bands.BandArgs, bands.PRESETS),
    "grpo": (grpo.GRPOArgs, grpo.PRESETS),
    "train_sae": (train_sae.TrainSAEArgs, train_sae.PRESETS),
}
"""The stages the study runs, with their argument classes and presets (config-file sections)."""

SET_BY_STUDY = {
    "pretrain": ("out", "task"),
    "bands": ("run",),
    "grpo": ("run", "band", "seed", "steps"),
    "train_sae": ("run", "arch"),
}
"""Stage fields the study sets itself (a config section may not)."""


@dataclasses.dataclass(frozen=True)
class BandStudyArgs:
    """Run the whole band study and write results.json and report.md."""

    SECTIONS: ClassVar[dict[str, type]] = {name: cls for name, (cls, _) in STAGES.items()}
    # how it runs, not what: not recorded, free on resume
    HOW_TO_RUN: ClassVar[tuple[str, ...]] = ("executor", "workers", "gpus_per_job")

    out: Path = Path("runs/default")
    """Run directory."""
    preset: str = "default"
    """smoke (about 80 s on 2 CPU cores; tests), default (the real study on 2 CPU cores), gpu."""
    task: str = "arith"
    """Task family: arith (chained modular arithmetic) or maze (A* search traces); picks each stage's preset
    for that family (its parameters go in the pretrain section of --config)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """GRPO seeds per band: with 5, an exact permutation test of two bands can reach p = 0.008; with 3, never below
    0.1."""
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
    model_diffing: bool = False
    """Also train each band's change dictionaries (a crosscoder and a difference SAE) and read them (the
    ``diffing_*`` fields); off by default since December 2026, for time (8 of the default study's 60 minutes on 2
    cores; the verdict never reads them), on in the smoke and gpu presets."""
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
    executor: str = "pool"
    """Where the study's independent jobs go (band x seed GRPO runs, matching, the hook rule's blocks, the SAEs,
    gain attribution, activation caches, each band's model diffing): pool (worker processes, one GPU each round robin
    where there are GPUs), local (one after another) or ray (Ray tasks, on the cluster in RAY_ADDRESS or a local
    instance); the jobs write the same bytes on each."""
    workers: int = 0
    """Jobs at once: the pool's worker processes, or a local Ray instance's room (a cluster has its own); 0: one per
    CPU this process may use."""
    job_threads: int = 1
    """Torch threads of every step of the study (pretraining, bands, every job, every reading) on every executor.
    Float reductions depend on it, so it is part of what the study computes: fixed, the same command computes the same
    numbers on 2 cores and on 16. One lets the pool put one job on each core, which survives a busy machine."""
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
        if self.workers < 0:
            raise ValueError(f"workers: must be >= 0 (0: one per usable CPU), got {self.workers}")
        counts = ("grpo_steps", "job_threads", "diffing_samples", "diffing_per_k", "diffing_rollouts", "replicate")
        sizes = ("activity_problems", "activity_samples", "causal_per_k", "causal_shortcut_per_k", "n_random")
        for name in (*counts, *sizes, "diff_per_k"):
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

    def run_jobs(self, fn, jobs: list, desc: str = "") -> list:
        """``[fn(job) for job in jobs]`` on the study's executor, each job with ``job_threads`` torch threads (a
        ``desc``: with a progress bar of the jobs done)."""
        workers = self.workers or usable_cpus()
        return run_jobs(fn, jobs, self.executor, workers, self.gpus_per_job, self.job_threads, desc)

    def run_together(self, *batches: tuple[Callable, list]) -> list[list]:
        """``run_jobs`` of several stages' independent ``(fn, jobs)`` at once; each stage's results."""
        return run_together(batches, self.executor, self.workers or usable_cpus(), self.gpus_per_job, self.job_threads)

    @property
    def run_device(self) -> str:
        """Where the study's own readers (features, gain attribution, activity, model diffing) run: the SAE stage's
        device."""
        return self.sae_args(self.sae_archs[0]).device

    @property
    def pretrain_args(self) -> pretrain.PretrainArgs:
        return self.stage_args("pretrain", out=self.out, task=self.task, processes=self.workers)

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
        return SourceSpec(
            self.out, sae.hook, dataclasses.replace(sae.probe_spec, n_samples=0), sae.collect_batch_size, sae.device
        )

    @property
    def diffing_spec(self) -> DiffingSpec:
        sae = self.sae_args(self.sae_archs[0])
        shape = SAESpec(d_sae=sae.d_sae, top_k=sae.top_k, threshold_lr=sae.threshold_lr)
        return DiffingSpec(shape, dataclasses.replace(sae.train_spec, n_samples=self.diffing_samples))

    @property
    def settings(self) -> StudySettings:
        loss_agg = self.grpo_args("easy", self.seeds[0]).loss_agg
        return StudySettings(
            self.preset, self.seeds, self.matched_key, self.target_gain, self.matched_tol, loss_agg, self.grpo_steps
        )


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(
        seeds=(0, 1, 2, 3),
        grpo_steps=8,
        model_diffing=True,
        diffing_samples=16_384,
        diffing_seeds=2,
        diffing_per_k=2,
        activity_problems=4,
        activity_samples=2,
        causal_per_k=4,
        causal_shortcut_per_k=4,
        n_random=3,
        diff_per_k=3,
    ),
    "gpu": dict(
        seeds=tuple(range(8)),
        grpo_steps=200,
        model_diffing=True,
        causal_per_k=100,
        causal_shortcut_per_k=100,
        n_random=50,
        diff_per_k=50,
        diffing_samples=2_000_000,
        diffing_per_k=1_000,
    ),
}


def train_stages(args: BandStudyArgs) -> BandStudyArgs:
    """Base model, bands, and one GRPO run per band x seed (each resumable), on the chosen executor beside the hook
    rule's jobs (``hook_stage``: they read only the base model); returns the arguments at the chosen hook."""
    pretrain.main(args.pretrain_args)
    bands.main(args.bands_args)
    # band-major: the first wave holds distinct seeds, so each seed's step-0 evaluation is made once and read after
    jobs = [args.grpo_args(band, seed) for band in BANDS for seed in args.seeds]
    for g in jobs:  # config.json is written here, in order, before any worker could race on it
        init_run(g.run, g.stage, g)
    rule = sae_groups.hook_jobs(args)
    scores, _ = args.run_together((sae_groups.hook_scores, rule), (grpo.main, jobs))  # the longer jobs first
    return sae_groups.chosen_hook(args, rule, scores)


def match_and_feature_stages(args: BandStudyArgs) -> dict[str, dict]:
    """Every run's matching (``match_run`` per run) beside the shared SAEs' features (``sae_features`` per
    architecture), which read only the base model; returns the features by SAE name."""
    saes = (sae_groups.sae_features, sae_groups.feature_jobs(args))
    records, _ = args.run_together(saes, (match_run, match_jobs(args)))
    return sae_groups.by_sae(args, records)


def results(
    args: BandStudyArgs,
    features: dict[str, dict],
    readings: dict[str, dict],
    attributions: dict[str, dict],
    activity: dict[str, dict],
    diffing: dict[str, dict],
) -> BandAnalysis:
    labels = {name: summary(feats) for name, feats in features.items()}
    head = args.sae_args(args.sae_archs[0]).sae_name
    model_diffing = summarise(diffing, readings, head, features[head]["groups"])
    path = RunLayout(args.out).hook_choice
    hook_choice = read_json(path) if path.exists() else {}
    return analyse(
        args.settings, run_data(args), features, labels, readings, attributions, activity, model_diffing, hook_choice
    )


def recorded(run: Path) -> BandStudyArgs:
    """The finished band study in ``run`` as it was run: its section of config.json (fields added since keep their
    defaults), at the hook its rule chose; a one-line RunDirError where no band study finished there."""
    layout = RunLayout(run)
    section = read_json(layout.config)["stages"].get("band_study") if layout.config.is_file() else None
    if section is None or not layout.results.is_file():
        raise RunDirError(f"{run}: no finished band study there (run experiments.band_study --out {run} first)")
    known = {f.name for f in dataclasses.fields(BandStudyArgs)}
    args = BandStudyArgs(out=Path(run), **cli.as_field_values({k: v for k, v in section.items() if k in known}))
    return sae_groups.hook_stage(args)  # reads hook_choice.json: a finished study chose its hook


def replicate(args: BandStudyArgs) -> dict:
    """The study once per pretraining seed; returns (and writes) how often each verdict class came out."""
    runs = []
    for seed in range(args.replicate):
        pre = {**args.stages.get("pretrain", {}), "seed": seed}
        sub = dataclasses.replace(
            args, out=args.out / f"pretrain-seed{seed}", replicate=1, stages={**args.stages, "pretrain": pre}
        )
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

    # every step, on every executor, with the same threads: the numbers do not depend on the machine; one pool of
    # worker processes for every stage's jobs, steps that read only the base model beside those that read runs
    with torch_threads(args.job_threads), kept_pools():
        warm_pool("experiments.band_study", args.executor, args.workers or usable_cpus(), args.job_threads)
        rule = "" if args.hook else "; hook rule: the headline SAE at every block, its groups on the labelling split"
        stage(f"pretrain, bands, GRPO per band x seed{rule}")
        args = train_stages(args)
        stage(f"matched gain by replay; SAEs ({', '.join(args.sae_archs)}): train, label latents, causal checks")
        features = match_and_feature_stages(args)
        stage("gain attribution: patch each group back to base values at the matched checkpoints")
        attributions = gain_stage(args, features)
        stage("deliberation activity on hard-band rollouts, successes vs failures, along training")
        activity = activity_stage(args, features)
        if args.model_diffing:
            stage("model diffing: crosscoder and difference SAE per band, labelled and causally checked")
        diffing = diffing_stage(args, features) if args.model_diffing else {}
        stage("diff every checkpoint in each SAE basis")
        readings = diff_stage(args, features)
        stage("results")
        analysis = results(args, features, readings, attributions, activity, diffing)
        write_json(layout.diff, diff_record(analysis))
    stage.finish()
    write_report(args.out, analysis)  # its profile, not results.json, holds wall times: they vary
    res = analysis.result.to_json()
    write_json(layout.results, res)
    print(
        f"Verdict ({analysis.result.verdict_class}): {analysis.result.verdict}\nReport, figures and every number "
        f"behind it: {layout.report}"
    )
    return res


if __name__ == "__main__":
    cli.run(main, BandStudyArgs, PRESETS)
