"""Remedies for hard samples against plain GRPO at equal compute: ``python -m experiments.remedies --run runs/NAME``.

On a finished band study (``experiments.band_study``), GRPO on the hard pool with each remedy, beside the study's own
hard-band and medium-band runs and a control that spends the compute a remedy adds. The arms, their settings and the
contrasts were fixed in December 2026, before any remedy result:

- ``plain``: the band study's hard-band runs, as they were trained;
- ``reverse``: reverse curriculum (a backward reformulation, ``experiments.harness.tasks.reverse_curriculum``): each
  hard problem posed with all but one of its trace steps already written, falling linearly to none by the middle of
  the run; the reward is the task's own on the full problem;
- ``shaping``: feature-guided credit (``experiments.harness.training.shaping``): a failed rollout is paid 0.1 times
  the share of its tokens on which the band study's headline deliberation group fires; the dictionary and group are
  the base model's, and the group must have passed its causal check;
- ``more_samples``: plain GRPO with 10 completions per prompt instead of 8, spending the compute feature-guided credit
  adds (its extra forward pass per rollout token, against about four per token of GRPO: one sampled, three trained);
- ``medium``: the band study's medium-band runs (the band the literature says teaches most).

Every arm has the band study's seeds, budget, learning rate and evaluation draws; its runs live in
``<run>/remedies/<arm>/seed<s>/`` (plain and medium: in ``bands/``). Then every final checkpoint and the base model are
read (``experiments.harness.studies.remedy_reads``), every run that hits the band study's matched gain is matched
there and its gain attributed to the headline SAE's groups (the band study's own steps; its runs' records are
reused), and the statistics, the verdict and the report written to ``<run>/remedies/``
(``experiments.analysis.remedies_results``). Rerunning resumes.
"""

# No `from __future__ import annotations`: a spawned pool worker re-runs this module as __mp_main__,
# where string ClassVar annotations read as dataclass fields.
import dataclasses
import math
from pathlib import Path
from typing import ClassVar

from experiments import band_study, grpo
from experiments.analysis.remedies_report import write_report
from experiments.analysis.remedies_results import RemediesResult, analyse
from experiments.band_steps.attribution import attribute_run, attribution_job
from experiments.band_steps.matching import match_one
from experiments.harness import cli
from experiments.harness.executors import EXECUTORS, kept_pools, run_jobs, torch_threads, usable_cpus
from experiments.harness.rundir import check_writable, init_run, write_json
from experiments.harness.studies.remedy_reads import ModelRead, read_model
from probes.layout import (
    FEATURES,
    METRICS,
    RewardStudyLayout,
    RunLayout,
    checkpoint_dir,
    latest_checkpoint,
    read_json,
    read_jsonl,
)

ARMS = ("plain", "reverse", "shaping", "more_samples", "medium")
"""Every arm, in the order the report shows them."""
FROM_BAND_STUDY = {"plain": "hard", "medium": "medium"}
"""Arms that are the band study's own runs, and their band."""


@dataclasses.dataclass(frozen=True)
class RemediesArgs:
    """GRPO remedies for hard samples against plain GRPO at equal compute, read with the band study's instruments."""

    HOW_TO_RUN: ClassVar[tuple[str, ...]] = ("executor", "workers")

    run: Path = Path("runs/default")
    """A finished band study's run directory."""
    preset: str = "default"
    """Named defaults (smoke, default, gpu): every field not set here comes from the band study's own run."""
    arms: tuple[str, ...] = ARMS
    """The arms to train and read (plain, reverse, shaping, more_samples, medium); a contrast runs where both its
    arms do."""
    seeds: tuple[int, ...] = ()
    """GRPO seeds per arm (empty: the band study's)."""
    reverse_share: float = 0.5
    """Reverse curriculum: the share of updates over which the given steps fall to none (fixed before any result)."""
    shaping_group: str = "deliberation"
    """The headline SAE's group that pays feature-guided credit."""
    shaping_weight: float = 0.1
    """A failed rollout's bonus when the group fires on all its tokens (fixed before any result)."""
    more_samples: int = 10
    """Completions per prompt of the more-samples control (the band study's 8 plus the compute shaping adds)."""
    executor: str = "pool"
    """Where the runs and reads go: pool (worker processes), local or ray (``experiments.band_study``'s)."""
    workers: int = 0
    """Jobs at once (0: one per CPU this process may use)."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        if not self.arms or set(self.arms) - set(ARMS) or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms: must be distinct, from {', '.join(ARMS)}; got {self.arms}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: need distinct seeds, got {self.seeds}")
        if not 0 < self.reverse_share <= 1:
            raise ValueError(f"reverse_share: must lie in (0, 1], got {self.reverse_share}")
        if not 0 < self.shaping_weight < 1:
            raise ValueError(f"shaping_weight: must lie in (0, 1), got {self.shaping_weight}")
        if self.more_samples < 2:
            raise ValueError(f"more_samples: must be >= 2, got {self.more_samples}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor: must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.workers < 0:
            raise ValueError(f"workers: must be >= 0 (0: one per usable CPU), got {self.workers}")


PRESETS: dict[str, dict] = {"default": {}, "smoke": dict(seeds=(0, 1)), "gpu": {}}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the study trains and reads on one band study."""

    study: band_study.BandStudyArgs
    seeds: tuple[int, ...]
    runs: dict[str, dict[int, grpo.GRPOArgs]]
    """Per arm that runs, per seed: its GRPO run."""
    not_run: dict[str, str]
    """Arms that cannot run here, and why."""
    sae: Path
    """The headline SAE."""
    features: dict

    @property
    def confirmed(self) -> list[str]:
        """The headline SAE's groups whose causal check passed."""
        return [g for g, c in self.features["causal"]["checks"].items() if c.get("passed")]


def plan(args: RemediesArgs) -> Plan:
    """Every arm's runs on the band study in ``args.run`` (a one-line RunDirError where there is none)."""
    study = band_study.recorded(args.run)
    seeds = args.seeds or study.seeds
    sae = RunLayout(args.run).sae(study.sae_args(study.sae_archs[0]).sae_name)
    features = read_json(sae / FEATURES)
    hard = {s: study.grpo_args("hard", s) for s in seeds}
    remedy = {
        "reverse": dict(reverse_curriculum=args.reverse_share),
        "shaping": dict(
            shaping=str(sae / FEATURES), shaping_group=args.shaping_group, shaping_weight=args.shaping_weight
        ),
        "more_samples": dict(group_size=args.more_samples),
    }
    check = features["causal"]["checks"].get(args.shaping_group, {})
    not_run = {}
    if "shaping" in args.arms and not check.get("passed"):
        not_run["shaping"] = f"the {args.shaping_group} group did not pass its causal check, so nothing confirms it"
    runs = {}
    for arm in (a for a in args.arms if a not in not_run):
        if arm in FROM_BAND_STUDY:
            runs[arm] = {s: study.grpo_args(FROM_BAND_STUDY[arm], s) for s in seeds}
        else:
            runs[arm] = {s: dataclasses.replace(g, study=f"remedies/{arm}", **remedy[arm]) for s, g in hard.items()}
    return Plan(study, seeds, runs, not_run, sae, features)


@dataclasses.dataclass(frozen=True)
class ShareJob:
    """Match one run at the band study's gain and attribute its gain there to the headline SAE's groups."""

    run: grpo.GRPOArgs
    target: float
    tol: float
    key: str
    sae: Path
    features: dict
    device: str


def shares_of_run(job: ShareJob) -> dict | None:
    """The run's gain attribution record at its matched point, made as the band study makes its own (a band run's
    own record is reused), or None where the run does not hit the target."""
    point, row = match_one(job.run, job.target, job.tol, job.key)
    if not row:
        return None
    base = read_jsonl(job.run.out / METRICS)[0][job.key]
    return attribute_run(attribution_job(job.run, point.step, job.sae, job.features, base, row[job.key], job.device))


def model_reads(p: Plan, out: RewardStudyLayout) -> dict[str, ModelRead]:
    """Every model to read: the base model and each run's final checkpoint, by name (``base``, ``<arm>/seed<s>``)."""
    any_run = next(iter(next(iter(p.runs.values())).values()))
    inputs = grpo.RunInputs.read(any_run)
    problems = tuple(inputs.task.from_record(r) for r in inputs.eval_set)
    read = lambda name, ckpt: ModelRead(  # noqa: E731
        ckpt,
        out.samples(name),
        problems,
        p.study.diff_source,
        p.sae,
        {g: tuple(v) for g, v in p.features["groups"].items()},
        p.study.run_device,
    )
    models = {"base": read("base", RunLayout(p.study.out).base)}
    for arm, by_seed in p.runs.items():
        models |= {f"{arm}/seed{s}": read(f"{arm}/seed{s}", checkpoint_dir(g.out, g.steps)) for s, g in by_seed.items()}
    return models


def main(args: RemediesArgs) -> RemediesResult:
    """Train (or resume) every arm's runs, read every final checkpoint, write results.json and report.md."""
    p = plan(args)
    out = RunLayout(args.run).remedies
    check_writable(out.root)
    init_run(args.run, "remedies", args)
    clock = cli.StageClock("remedies", out.profile)
    jobs = lambda fn, items: run_jobs(  # noqa: E731
        fn, items, args.executor, args.workers or usable_cpus(), threads=p.study.job_threads
    )
    with torch_threads(p.study.job_threads), kept_pools():  # the band study's threads: its runs and these compute alike
        runs = [g for by_seed in p.runs.values() for g in by_seed.values()]
        clock(f"GRPO: {len(p.runs)} arms x {len(p.seeds)} seeds ({len(runs)} runs; plain and medium: the band study's)")
        for g in runs:  # config.json is written here, in order, before any worker could race on it
            init_run(g.run, g.stage, g)
        jobs(grpo.main, [g for g in runs if latest_checkpoint(g.out) < g.steps])
        clock("read the base model and every final checkpoint: greedy outcomes, group activity")
        models = model_reads(p, out)
        jobs(read_model, [m for m in models.values() if not m.record.is_file()])
        reads = {name: read_json(m.record) for name, m in models.items()}
        clock("carried shares: every run matched at the band study's gain (replay) and its gain attributed there")
        matched = read_json(RunLayout(args.run).results)
        target = matched["matched_gain_target"] if matched.get("verdict_class") != "no_target" else None
        share_jobs = {
            f"{arm}/seed{s}": ShareJob(
                g, target, matched["matched_tol"], p.study.matched_key, p.sae, p.features, p.study.run_device
            )
            for arm, by_seed in p.runs.items()
            for s, g in by_seed.items()
        }
        made = jobs(shares_of_run, list(share_jobs.values())) if target is not None else []
        attributions = dict(zip(share_jobs, made))
        clock("statistics, figure and report")
        metrics = {arm: {s: read_jsonl(g.out / METRICS) for s, g in by_seed.items()} for arm, by_seed in p.runs.items()}
        result = analyse(
            metrics,
            reads,
            attributions,
            p.confirmed,
            target=math.nan if target is None else target,
            preset=args.preset,
            seeds=p.seeds,
            not_run=p.not_run,
        )
        write_json(out.results, result.to_json())
    clock.finish()
    write_report(out, result)
    print(f"Verdict: {result.verdict}\nReport: {out.report}")
    return result


if __name__ == "__main__":
    cli.run(main, RemediesArgs, PRESETS)
